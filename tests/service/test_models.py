"""The request and response models of the API: what a batch request accepts and rejects, what
the response models require, and which models pass unknown fields through."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from sparecast.service.models import (
    DependencyOut,
    ErrorOut,
    ForecastBatchIn,
    ForecastBatchOut,
    FreshnessOut,
    HealthOut,
    ItemForecastOut,
    ItemPolicyOut,
    JobOut,
)


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[tuple[object, ...], str]]:
    return [(e["loc"], e["type"]) for e in exc.value.errors()]


def test_batch_request_defaults() -> None:
    req = ForecastBatchIn(item_ids=["a", "b"])
    assert req.item_ids == ["a", "b"] and req.horizon is None and req.quantiles is None
    assert ForecastBatchIn(item_ids=["a"], quantiles=[]).quantiles == []


def test_batch_request_rejects_unknown_fields_empty_lists_and_bad_horizons() -> None:
    with pytest.raises(ValidationError) as extra:
        ForecastBatchIn.model_validate({"item_ids": ["a"], "items": ["b"]})
    assert _errors(extra) == [(("items",), "extra_forbidden")]
    with pytest.raises(ValidationError) as empty:
        ForecastBatchIn(item_ids=[])
    assert _errors(empty) == [(("item_ids",), "too_short")]
    for horizon in (0, -1, "0d", "soon", "6m"):
        with pytest.raises(ValidationError) as bad:
            ForecastBatchIn(item_ids=["a"], horizon=horizon)
        assert _errors(bad) == [(("horizon",), "value_error")]
    for wrong_type in (True, 1.5, [3]):
        with pytest.raises(ValidationError):
            ForecastBatchIn.model_validate({"item_ids": ["a"], "horizon": wrong_type})
    with pytest.raises(ValidationError):
        ForecastBatchIn(item_ids=["a"], horizon="9" * 40)  # at most 32 characters
    assert ForecastBatchIn(item_ids=["a"], horizon=1).horizon == 1
    assert ForecastBatchIn(item_ids=["a"], horizon=100_000).horizon == 100_000
    # a duration is kept (the route converts it with the run's frequency); "14" is 14 periods
    assert ForecastBatchIn(item_ids=["a"], horizon="13 weeks").horizon == "13w"
    assert ForecastBatchIn(item_ids=["a"], horizon="14").horizon == 14
    with pytest.raises(ValidationError) as missing:
        ForecastBatchIn.model_validate({})
    assert _errors(missing) == [(("item_ids",), "missing")]


def test_item_forecast_parses_json_dates_and_null_quantiles() -> None:
    out = ItemForecastOut.model_validate_json(
        '{"item_id": "a", "model_version": "v1", "run_id": 3, "method": "sba",'
        ' "dates": ["2026-11-01", "2026-11-02"], "forecast": [1.5, null],'
        ' "quantiles": {"q90": [3.0, null]}}'
    )
    assert out.dates == [date(2026, 11, 1), date(2026, 11, 2)]
    assert out.forecast == [1.5, None] and out.quantiles == {"q90": [3.0, None]}
    with pytest.raises(ValidationError) as bad:
        ItemForecastOut.model_validate_json(
            '{"item_id": "a", "model_version": "v1", "run_id": 3, "method": "sba",'
            ' "dates": ["not a date"], "forecast": [1.0], "quantiles": {}}'
        )
    assert _errors(bad) == [(("dates", 0), "date_from_datetime_parsing")]


def test_batch_response_holds_item_forecasts() -> None:
    item = {
        "item_id": "a",
        "model_version": "v1",
        "run_id": 1,
        "method": "ma",
        "dates": [],
        "forecast": [],
        "quantiles": {},
    }
    out = ForecastBatchOut.model_validate({"model_version": "v1", "run_id": 1, "items": [item]})
    assert isinstance(out.items[0], ItemForecastOut) and out.items[0].item_id == "a"


def test_policy_rows_pass_unknown_columns_through() -> None:
    row = ItemPolicyOut.model_validate({"unique_id": "a", "reorder_point": 4.0, "abc_class": "A"})
    assert row.reorder_point == 4.0 and row.safety_stock is None
    assert row.model_dump()["abc_class"] == "A"
    with pytest.raises(ValidationError) as missing:
        ItemPolicyOut.model_validate({"reorder_point": 4.0})
    assert _errors(missing) == [(("unique_id",), "missing")]


def test_states_are_closed_lists() -> None:
    assert DependencyOut(state="degraded", kind="redis").detail == ""
    with pytest.raises(ValidationError) as dep:
        DependencyOut(state="broken", kind="redis")  # type: ignore[arg-type]
    assert _errors(dep) == [(("state",), "literal_error")]
    created = datetime(2026, 11, 1, tzinfo=UTC)
    job = JobOut(job_id="j1", state="queued", created_at=created, source="demo")
    assert (job.progress, job.started_at, job.model_version, job.error) == ("", None, None, None)
    with pytest.raises(ValidationError) as bad:
        JobOut(job_id="j1", state="paused", created_at=created, source="demo")  # type: ignore[arg-type]
    assert _errors(bad) == [(("state",), "literal_error")]


def test_health_requires_freshness_and_dependencies() -> None:
    fresh = FreshnessOut(
        run_created_at=None,
        run_age_s=None,
        data_window_start=None,
        data_window_end=None,
        data_age_days=None,
    )
    health = HealthOut(
        status="ok",
        model_version=None,
        run_id=None,
        freshness=fresh,
        dependencies={"store": DependencyOut(state="ok", kind="sqlite")},
    )
    assert health.model_dump()["dependencies"] == {
        "store": {"state": "ok", "kind": "sqlite", "detail": ""}
    }
    with pytest.raises(ValidationError) as missing:
        HealthOut.model_validate({"status": "ok", "model_version": None, "run_id": None})
    assert sorted(loc for loc, _ in _errors(missing)) == [("dependencies",), ("freshness",)]
    assert ErrorOut(detail="x").model_dump() == {"detail": "x"}
    with pytest.raises(ValidationError):
        ErrorOut.model_validate({})
