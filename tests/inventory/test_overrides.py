"""Applying planner overrides to forecast and policy frames: hand-computed small cases."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from sparecast.inventory.overrides import (
    Override,
    OverrideError,
    active_overrides,
    apply_forecast_overrides,
    apply_policy_overrides,
    overrides_frame,
)

TODAY = date(2026, 12, 6)
LATER = TODAY + timedelta(days=30)


def _o(item: str, **kw: object) -> Override:
    values: dict[str, object] = {"expires": LATER, **kw}
    return Override(item_id=item, set_by="alice", reason="why", **values)  # type: ignore[arg-type]


def _forecasts() -> pl.DataFrame:
    days = [TODAY, TODAY + timedelta(1)]
    return pl.DataFrame(
        {
            "unique_id": ["a", "a", "b", "b", "c", "c"],
            "ds": days * 3,
            "forecast": [1.0, 3.0, 2.0, 2.0, 0.0, 0.0],
            "q90": [2.0, 6.0, 4.0, 4.0, 0.0, 0.0],
            "method": ["sba"] * 6,
        }
    )


def test_forecast_multiplier_and_level() -> None:
    overrides = {
        "a": _o("a", forecast_multiplier=1.5),
        "b": _o("b", forecast_level=4.0),  # mean 2 -> quantiles x 2
        "c": _o("c", forecast_level=1.0),  # mean 0: quantiles unknown
    }
    out = apply_forecast_overrides(_forecasts(), overrides, TODAY)
    assert out["forecast"].to_list() == [1.5, 4.5, 4.0, 4.0, 1.0, 1.0]
    assert out["q90"].to_list() == [3.0, 9.0, 8.0, 8.0, None, None]
    assert out["forecast_model"].to_list() == [1.0, 3.0, 2.0, 2.0, 0.0, 0.0]
    assert out["override"].to_list() == ["forecast_multiplier"] * 2 + ["forecast_level"] * 4
    # idempotent: applying again (or a changed set) starts from the model's values
    again = apply_forecast_overrides(out, overrides, TODAY)
    assert again.equals(out)
    cleared = apply_forecast_overrides(out, {}, TODAY)
    assert cleared["forecast"].to_list() == [1.0, 3.0, 2.0, 2.0, 0.0, 0.0]
    assert cleared["q90"].to_list() == [2.0, 6.0, 4.0, 4.0, 0.0, 0.0]
    assert cleared["override"].null_count() == 6


def test_expired_and_policy_only_overrides_leave_the_forecast() -> None:
    overrides = {
        "a": _o("a", forecast_multiplier=2.0, expires=TODAY),
        "b": _o("b", reorder_point=1.0),
    }
    out = apply_forecast_overrides(_forecasts(), overrides, TODAY)
    assert out["forecast"].to_list() == _forecasts()["forecast"].to_list()
    assert out["override"].null_count() == out.height
    assert list(active_overrides(overrides.values(), TODAY)) == ["b"]


def _policy() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": ["a", "b", "c", "d", "e", "f"],
            "policy": ["RsS", "RsS", "sQ", "RsS", "RsS", "RsS"],
            "inventory_position": [2.0, 10.0, 1.0, 0.0, 0.0, 5.0],
            "reorder_point": [4.0, 4.0, 3.0, 2.0, 2.0, 4.0],
            "order_quantity": [5.0, 5.0, 4.0, 5.0, 5.0, 5.0],
            "order_up_to": [9.0, 9.0, 7.0, 7.0, 7.0, 9.0],
            "suggested_order": [7.0, 0.0, 4.0, 7.0, 7.0, 0.0],
            "unit_cost": [2.0, 2.0, 1.0, 1.0, 1.0, 1.0],
            "order_value": [14.0, 0.0, 4.0, 7.0, 7.0, 0.0],
            "order_rank": [1, None, 2, 3, 4, None],
        }
    )


def test_policy_overrides_hand_computed() -> None:
    overrides = {
        # fixed s and S: IP 2 <= 5 -> order 12 - 2 = 10
        "a": _o("a", reorder_point=5.0, order_up_to=12.0),
        # fixed s = 11 above the model's S 9: S raised to 11, IP 10 <= 11 -> order 11 - 10 = 1
        "b": _o("b", reorder_point=11.0),
        # sQ with only s fixed = 6: IP 1, Q 4 -> floor((6-1)/4)+1 = 2 lots = 8
        "c": _o("c", reorder_point=6.0),
        "d": _o("d", do_not_order=True, forecast_multiplier=1.1),
        "e": _o("e", phase_out_date=TODAY),
        # phase-out in the future: nothing yet
        "f": _o("f", phase_out_date=TODAY + timedelta(1)),
    }
    out = apply_policy_overrides(_policy(), overrides, TODAY)
    assert out["reorder_point"].to_list() == [5.0, 11.0, 6.0, 2.0, 2.0, 4.0]
    assert out["order_up_to"].to_list() == [12.0, 11.0, 7.0, 7.0, 7.0, 9.0]
    assert out["suggested_order"].to_list() == [10.0, 1.0, 8.0, 0.0, 0.0, 0.0]
    assert out["order_value"].to_list() == [20.0, 2.0, 8.0, 0.0, 0.0, 0.0]
    assert out["order_rank"].to_list() == [1, None, 2, None, None, None]
    assert out["override"].to_list() == [
        "reorder_point,order_up_to",
        "reorder_point",
        "reorder_point",
        "forecast_multiplier,do_not_order",
        "phase_out_date",
        None,
    ]
    assert out["override_by"].to_list()[:5] == ["alice"] * 5
    assert out["override_expires"].to_list()[0] == LATER
    assert out["suggested_order_model"].to_list() == _policy()["suggested_order"].to_list()
    # idempotent, and a later application without overrides restores the plan
    assert apply_policy_overrides(out, overrides, TODAY).equals(out)
    back = apply_policy_overrides(out, {}, TODAY)
    assert back["suggested_order"].to_list() == _policy()["suggested_order"].to_list()
    assert back["reorder_point"].to_list() == _policy()["reorder_point"].to_list()
    # the phase-out date of f is reached the next day
    tomorrow = apply_policy_overrides(_policy(), overrides, TODAY + timedelta(1))
    assert tomorrow["override"].to_list()[5] == "phase_out_date"


def test_order_up_to_below_the_model_reorder_point_lowers_it() -> None:
    out = apply_policy_overrides(_policy(), {"a": _o("a", order_up_to=3.0)}, TODAY)
    assert out.row(0, named=True)["reorder_point"] == 3.0
    assert out.row(0, named=True)["suggested_order"] == 1.0  # IP 2 <= 3 -> 3 - 2


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"forecast_multiplier": -1.0}, "must be > 0"),
        ({"forecast_level": -1.0}, "must be >= 0"),
        ({"reorder_point": 5.0, "order_up_to": 4.0}, "must be <= the order-up-to"),
        ({"forecast_multiplier": float("nan")}, "not a finite number"),
        ({"do_not_order": True, "expires": TODAY - timedelta(1)}, "not in the future"),
    ],
)
def test_validation_names_the_field(kw: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"expires": LATER, **kw}
    o = Override(item_id="x", set_by="a", reason="r", **values)  # type: ignore[arg-type]
    with pytest.raises(OverrideError, match=message):
        o.validated(TODAY)


def test_overrides_frame_and_summary() -> None:
    frame = overrides_frame({"a": _o("a", do_not_order=True, phase_out_date=LATER)})
    assert frame.row(0, named=True)["do_not_order"] is True
    summary = _o("a", forecast_level=2.0).summary()
    assert summary["kinds"] == ["forecast_level"] and summary["expires"] == LATER.isoformat()
