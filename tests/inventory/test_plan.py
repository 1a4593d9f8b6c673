"""The plan computation (sparecast.inventory.plan.compute_plan) on hand-made and demo tables:
lead times in periods, backorders, inactive and dead items, lot sizes from the forecast, the
calibration of fill-rate targets."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from sparecast.classify import classify
from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.panel import DemandPanel
from sparecast.inventory.plan import compute_plan
from sparecast.inventory.simulate import frequency_groups

END = date(2026, 10, 31)


def _tiny_tables(on_hand: float) -> dict[str, pl.DataFrame]:
    """One item A with a fixed 14-day lead time (three POs) and one item B with no PO."""
    d = date.fromisoformat
    return {
        "items": pl.DataFrame(
            {"item_id": ["A", "B"], "unit_cost": [2.0, 5.0], "active": [True, False]}
        ),
        "suppliers": pl.DataFrame({"supplier_id": ["S"], "name": ["Supplier S"]}),
        "purchase_orders": pl.DataFrame(
            {
                "po_id": ["1", "2", "3", "4"],
                "item_id": ["A", "A", "A", "A"],
                "supplier_id": ["S"] * 4,
                "order_date": [d("2026-01-01"), d("2026-02-01"), d("2026-03-01"), d("2026-05-20")],
                "quantity": [10.0, 10.0, 10.0, 6.0],
            }
        ),
        "receipts": pl.DataFrame(
            {
                "po_id": ["1", "2", "3"],
                "item_id": ["A", "A", "A"],
                "receipt_date": [d("2026-01-15"), d("2026-02-15"), d("2026-03-15")],
                "quantity": [10.0, 10.0, 10.0],
            }
        ),
        "stock": pl.DataFrame(
            {"item_id": ["A", "ZZ"], "on_hand": [on_hand, 1.0], "as_of": [d("2026-05-31")] * 2}
        ),
    }


@pytest.mark.parametrize("freq", ["D", "W"])
def test_compute_plan_converts_lead_times_to_periods(freq: str) -> None:
    """Demand of exactly 1 a day (7 a week) and a 14-day lead time: 14 days are 2 weeks, so the
    Poisson demand over the protection interval (lead time + 1 period for sQ) has mean
    14 + 1 on daily and 7 * (2 + 1) on weekly data; negative stock becomes backorders."""
    n_days = 7 * 20
    start = date(2026, 1, 12)  # a Monday
    days = [start + timedelta(days=i) for i in range(n_days)]
    long = pl.DataFrame(
        {"unique_id": ["A"] * n_days + ["B"] * n_days, "ds": days * 2, "y": [1.0] * 2 * n_days}
    )
    panel = DemandPanel.from_long(long, freq="D", item_ids=["A", "B"])
    if freq == "W":
        panel = panel.bucket("W", complete_only=True)
    settings = load_settings(
        inventory={"distribution": "poisson", "n_samples": 20000, "policy": "sQ"}
    )
    classification = pl.DataFrame({"unique_id": ["A", "B"], "tier": ["high_volume", "regular"]})
    today = date(2026, 5, 31)
    plan = compute_plan(panel, classification, None, _tiny_tables(-3.0), settings, today=today)
    pol = plan.policy
    a = pol.filter(pl.col("unique_id") == "A").row(0, named=True)
    assert a["lead_time_mean_days"] == 14.0 and a["lead_time_source"] == "item_supplier"
    expected = 15.0 if freq == "D" else 21.0
    assert a["mean_lead_time_demand"] == pytest.approx(expected, rel=0.03)
    assert (a["on_hand"], a["backorders"], a["open_quantity"]) == (0.0, 3.0, 6.0)
    assert a["inventory_position"] == 3.0
    assert a["supplier_name"] == "Supplier S"
    assert a["service_target"] == pytest.approx(settings.inventory.targets["high_volume"])
    b = pol.filter(pl.col("unique_id") == "B").row(0, named=True)
    assert b["lead_time_source"] == "global" and b["on_hand"] == 0.0
    # B is inactive: never ordered, although its position (0) is below its reorder point
    assert b["active"] is False and b["inventory_position"] < b["reorder_point"]
    assert b["suggested_order"] == 0.0 and b["order_rank"] is None
    assert any("1 inactive item(s)" in n for n in plan.notes)
    assert plan.rejected.select("table", "item_id", "reason").rows() == [
        ("stock", "ZZ", "unknown_item")
    ]
    assert any("1 item(s) have no stock row" in n for n in plan.notes)


def test_compute_plan_orders_nothing_for_items_without_demand() -> None:
    """B never had demand: s = 0 and IP = 0 would trigger an order of a dead item."""
    n_days = 60
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(n_days)]
    long = pl.DataFrame({"unique_id": ["A"] * n_days, "ds": days, "y": [1.0] * n_days})
    panel = DemandPanel.from_long(long, freq="D", item_ids=["A", "B"])
    classification = pl.DataFrame({"unique_id": ["A", "B"], "tier": ["regular", "regular"]})
    tables = _tiny_tables(0.0)
    tables["items"] = tables["items"].with_columns(pl.lit(True).alias("active"))
    plan = compute_plan(
        panel, classification, None, tables, load_settings(), today=date(2026, 5, 31)
    )
    pol = {r["unique_id"]: r for r in plan.policy.iter_rows(named=True)}
    b = pol["B"]
    # B is its own group: no stock (s = -1), flagged, never ordered
    assert b["mean_lead_time_demand"] == 0.0 and b["reorder_point"] == -1.0
    assert b["stocking_rule"] == "no_demand" and b["obsolete"]
    assert b["obsolete_reason"] == "no_demand"
    assert b["suggested_order"] == 0.0 and b["stockout_risk"] == 0.0
    assert pol["A"]["stocking_rule"] == "target" and not pol["A"]["obsolete"]
    assert pol["A"]["obsolete_reason"] is None and pol["A"]["level_factor"] == 1.0
    assert pol["A"]["suggested_order"] > 0  # A (on hand 0, 6 on order) is below its point
    assert any("1 item(s) without any demand" in n for n in plan.notes)


def test_compute_plan_sizes_orders_from_the_forecast() -> None:
    """The lot Q is the forecast rate (2 a day, twice the history) times order_cover_days; an
    item without a forecast uses its history mean and the plan says so."""
    n_days = 60
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(n_days)]
    long = pl.DataFrame(
        {"unique_id": ["A"] * n_days + ["B"] * n_days, "ds": days * 2, "y": [1.0] * 2 * n_days}
    )
    panel = DemandPanel.from_long(long, freq="D", item_ids=["A", "B"])
    forecasts = pl.DataFrame(
        {"unique_id": ["A"] * 4, "ds": days[:4], "forecast": [2.0, 2.0, 1.0, 3.0]}
    )
    settings = load_settings(inventory={"order_cover_days": 30})
    classification = pl.DataFrame({"unique_id": ["A", "B"], "tier": ["regular", "regular"]})
    tables = _tiny_tables(10.0)
    tables["items"] = tables["items"].with_columns(pl.lit(True).alias("active"))
    plan = compute_plan(panel, classification, forecasts, tables, settings, today=date(2026, 5, 31))
    pol = {r["unique_id"]: r for r in plan.policy.iter_rows(named=True)}
    assert pol["A"]["forecast_per_period"] == 2.0 and pol["A"]["forecast_horizon_total"] == 8.0
    assert pol["A"]["order_quantity"] == 60.0
    assert pol["A"]["days_of_cover"] == pytest.approx(10.0 / 2.0)
    assert pol["B"]["forecast_per_period"] == 1.0 and pol["B"]["forecast_horizon_total"] is None
    assert pol["B"]["order_quantity"] == 30.0
    assert any("1 item(s) have no forecast" in n for n in plan.notes)


def _demo_plan_inputs(
    erp_tables: dict,
) -> tuple[DemandPanel, pl.DataFrame, dict[str, pl.DataFrame]]:
    demand = erp_tables["demand"].select(
        pl.col("item_id").alias("unique_id"),
        pl.col("date").alias("ds"),
        pl.col("quantity").alias("y"),
    )
    ids = erp_tables["items"]["item_id"].to_list()
    panel = DemandPanel.from_long(demand, freq="D", item_ids=ids)
    return panel, classify(panel), erp_tables


@pytest.fixture(scope="module")
def year_tables() -> dict[str, pl.DataFrame]:
    """A year of 300 items: enough history for the calibration to measure a shortfall."""
    return generate_demo_erp(n_items=300, n_days=365, seed=5, end_date=END)


def test_calibration_raises_fill_rate_targets_per_group(year_tables: dict) -> None:
    """Calibrated: each item is planned at a nominal target >= its service target, equal for
    items of the same frequency group and target, also when calibrated on a sample of items;
    the reorder points rise with it. Off: the policy target is the service target."""
    panel, classes, tables = _demo_plan_inputs(year_tables)
    today = END

    def plan(**inventory: object) -> pl.DataFrame:
        settings = load_settings(inventory=inventory)
        return compute_plan(panel, classes, None, tables, settings, today=today).policy

    off = plan(calibrate=False)
    on = plan(calibrate=True)
    sampled = plan(calibrate=True, calibration_max_items=100, seed=1)
    np.testing.assert_array_equal(off["policy_target"], off["service_target"])
    np.testing.assert_array_equal(on["service_target"], off["service_target"])
    assert (on["policy_target"] >= on["service_target"]).all()
    assert (on["policy_target"] > on["service_target"]).any()
    assert (on["reorder_point"] >= off["reorder_point"]).all()
    groups = frequency_groups(panel.y[:, : panel.n_periods - panel.n_periods // 3])
    for frame in (on, sampled):
        keyed = pl.DataFrame(
            {"g": groups, "t": frame["service_target"], "p": frame["policy_target"]}
        )
        assert (keyed.group_by("g", "t").agg(pl.col("p").n_unique())["p"] == 1).all()


def test_short_history_is_not_calibrated(erp_tables: dict) -> None:
    panel, classes, tables = _demo_plan_inputs(erp_tables)
    settings = load_settings(inventory={"calibration_min_periods": panel.n_periods + 1})
    plan = compute_plan(panel, classes, None, tables, settings, today=END)
    np.testing.assert_array_equal(plan.policy["policy_target"], plan.policy["service_target"])
    assert any("targets not calibrated" in n for n in plan.notes)
