"""Forecast value added of overrides: hand-computed MAE/RMSSE differences and shares."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from sparecast.errors import DataValidationError
from sparecast.evaluate.fva import forecast_value_added
from sparecast.inventory.overrides import forecasts_with_override_history

D0 = date(2027, 1, 1)


def _frame() -> pl.DataFrame:
    # a: model 1, 1 -> override 2, 2 on actuals 2, 4: MAE 2 -> 1 (helped)
    # b: model 3, 3 -> override 6, 6 on actuals 3, 3: MAE 0 -> 3 (hurt)
    # c: no override: not scored
    return pl.DataFrame(
        {
            "unique_id": ["a", "a", "b", "b", "c", "c"],
            "ds": [D0, D0 + timedelta(1)] * 3,
            "y": [2.0, 4.0, 3.0, 3.0, 1.0, 1.0],
            "forecast_model": [1.0, 1.0, 3.0, 3.0, 5.0, 5.0],
            "forecast": [2.0, 2.0, 6.0, 6.0, 5.0, 5.0],
            "override": ["forecast_multiplier"] * 2 + ["forecast_level"] * 2 + [None, None],
        }
    )


def test_fva_hand_computed() -> None:
    result = forecast_value_added(_frame(), scales={"a": 4.0, "b": 1.0})
    a, b = result.per_item.rows(named=True)
    assert (a["mae_model"], a["mae_override"], a["mae_fva"], a["helped"]) == (2.0, 1.0, 1.0, True)
    # RMSE model sqrt((1 + 9) / 2) = sqrt(5); override sqrt((0 + 4) / 2) = sqrt(2); scale 4 -> / 2
    assert a["rmsse_model"] == pytest.approx(5**0.5 / 2)
    assert a["rmsse_override"] == pytest.approx(2**0.5 / 2)
    assert (b["mae_model"], b["mae_override"], b["helped"]) == (0.0, 3.0, False)
    assert b["rmsse_override"] == pytest.approx(3.0) and b["override"] == "forecast_level"
    s = result.summary
    assert (s["n_items"], s["n_periods"]) == (2, 4)
    assert s["mae_model"] == pytest.approx(1.0) and s["mae_override"] == pytest.approx(2.0)
    assert s["mae_fva"] == pytest.approx(-1.0)
    assert s["share_helped"] == 0.5 and s["share_hurt"] == 0.5
    assert s["rmsse_fva"] == pytest.approx((5**0.5 / 2 + 0.0) / 2 - (2**0.5 / 2 + 3.0) / 2)


def test_fva_without_scales_or_overrides() -> None:
    result = forecast_value_added(_frame())
    assert result.per_item["rmsse_model"].null_count() == 2
    assert result.summary["rmsse_fva"] is None
    empty = forecast_value_added(_frame().with_columns(pl.lit(None, pl.String).alias("override")))
    assert empty.summary["n_items"] == 0 and empty.summary["mae_fva"] is None
    with pytest.raises(DataValidationError, match="needs the columns forecast_model"):
        forecast_value_added(_frame().drop("forecast_model"))


def test_forecasts_with_override_history_by_date() -> None:
    frame = pl.DataFrame(
        {
            "unique_id": ["a"] * 4 + ["b"] * 4,
            "ds": [D0 + timedelta(k) for k in range(4)] * 2,
            "forecast": [1.0] * 8,
        }
    )
    at = datetime(2027, 1, 1, 9, 0)
    events = pl.DataFrame(
        {
            "unique_id": ["a", "a", "b", "b"],
            "event_id": [1, 2, 3, 4],
            # a: x2 from day 0, deleted on day 2; b: level 5 from day 1, expires day 3
            "recorded_at": [at, at + timedelta(2), at + timedelta(1), at + timedelta(1)],
            "action": ["set", "deleted", "set", "changed"],
            "forecast_level": [None, None, 9.0, 5.0],
            "forecast_multiplier": [2.0, 2.0, None, None],
            "expires": [D0 + timedelta(30)] * 3 + [D0 + timedelta(3)],
        }
    )
    out = forecasts_with_override_history(frame, events)
    assert out["forecast"].to_list() == [2.0, 2.0, 1.0, 1.0, 1.0, 5.0, 5.0, 1.0]
    assert out["forecast_model"].to_list() == [1.0] * 8
    assert out["override"].to_list() == [
        "forecast_multiplier",
        "forecast_multiplier",
        None,
        None,
        None,
        "forecast_level",
        "forecast_level",
        None,
    ]
