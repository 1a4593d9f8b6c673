"""The store's data classes and naming rules: quantile column labels, model versions, the JSON
form of runs and item forecasts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sparecast.store import (
    ItemForecast,
    RunInfo,
    model_version_of,
    quantile_columns,
    quantile_label,
)


def test_model_version_ignores_where_forecasts_are_stored_and_served() -> None:
    base = {"horizon": 28, "store": {"url": "sqlite:///a"}, "service": {"api_key_hashes": ["x"]}}
    moved = {**base, "store": {"url": "postgresql://b"}, "service": {"api_key_hashes": ["y"]}}
    changed = {**base, "horizon": 14}
    day = date(2026, 10, 31)
    assert model_version_of("0.1.0", base, day, 1) == model_version_of("0.1.0", moved, day, 1)
    assert model_version_of("0.1.0", base, day, 1) != model_version_of("0.1.0", changed, day, 1)


def test_quantile_labels_and_columns() -> None:
    assert [quantile_label(q) for q in (50, 90.0, 97.5, 99.9)] == ["q50", "q90", "q97.5", "q99.9"]
    columns = ["unique_id", "q50", "q97.5", "forecast", "q", "qx", "q90a", "sba"]
    assert quantile_columns(columns) == {"q50": 50.0, "q97.5": 97.5}


def test_run_info_to_dict_and_actuals_range() -> None:
    info = RunInfo(
        run_id=3,
        created_at=datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        model_version="0.1.0+abcd1234.20261031.r3",
        sparecast_version="0.1.0",
        config={"horizon": 2},
        source="erp.sqlite",
        data_start=date(2025, 11, 1),
        data_end=date(2026, 10, 31),
        freq="D",
        n_items=1,
        n_periods=365,
        horizon=2,
        forecast_dates=[date(2026, 11, 1), date(2026, 11, 2)],
        quantile_levels=[90.0],
        actuals_dates=[date(2026, 10, 30), date(2026, 10, 31)],
        notes=[],
    )
    assert (info.actuals_start, info.actuals_end) == (date(2026, 10, 30), date(2026, 10, 31))
    out = info.to_dict()
    assert out["created_at"] == "2026-11-01T06:30:00+00:00"
    assert out["data_end"] == "2026-10-31"
    assert out["forecast_dates"] == ["2026-11-01", "2026-11-02"]
    assert out["notes"] == [] and out["config"] == {"horizon": 2}
    none = RunInfo(**{**info.__dict__, "actuals_dates": []})
    assert none.actuals_start is None and none.actuals_end is None


def test_item_forecast_to_dict() -> None:
    item = ItemForecast("A-1", 3, "v", "sba", [date(2026, 11, 1)], [1.5], {"q90": [None]})
    assert item.to_dict() == {
        "item_id": "A-1",
        "run_id": 3,
        "model_version": "v",
        "method": "sba",
        "dates": ["2026-11-01"],
        "forecast": [1.5],
        "quantiles": {"q90": [None]},
    }
