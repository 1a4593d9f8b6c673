"""The plan computation (sparecast.inventory.plan.compute_plan) on hand-made and demo tables:
lead times in periods, backorders, inactive and dead items, lot sizes from the forecast, the
calibration of fill-rate targets."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from sparecast.classify import classify
from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.panel import DemandPanel
from sparecast.inventory.calibration import calibration_groups
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
    # steady demand: the recent level (the default) is its history's
    assert pol["A"]["obsolete_reason"] is None
    assert pol["A"]["level_factor"] == pytest.approx(1.0, abs=0.05)
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
    """Calibrated: each item is planned at a nominal target (raised where the backtest falls
    short, lowered where it overshoots), equal for items of the same frequency group (of the
    whole history) and target, also when calibrated on a sample of items; the reorder points
    follow it (at level sigma 0: a wider level distribution can have a lower quantile at a
    higher target). Off: the policy target is the service target."""
    panel, classes, tables = _demo_plan_inputs(year_tables)
    today = END

    def plan(**inventory: object) -> pl.DataFrame:
        settings = load_settings(inventory={"item_level_sigmas": [0.0], **inventory})
        return compute_plan(panel, classes, None, tables, settings, today=today).policy

    off = plan(calibrate=False)
    on = plan(calibrate=True)
    sampled = plan(calibrate=True, calibration_max_items=100, seed=1)
    np.testing.assert_array_equal(off["policy_target"], off["service_target"])
    np.testing.assert_array_equal(on["service_target"], off["service_target"])
    assert (on["policy_target"] >= on["service_target"] / 2).all()
    assert (on["policy_target"] > on["service_target"]).any()
    up = (on["policy_target"] > on["service_target"]).to_numpy()
    assert (on["reorder_point"].to_numpy()[up] >= off["reorder_point"].to_numpy()[up]).all()
    # the calibration groups: frequency group and value class (unit cost x Q / mean demand)
    cost = on["unit_cost"].fill_null(np.nan).to_numpy()
    groups = calibration_groups(panel.y, cost, on["order_quantity"].to_numpy(), 3)
    assert np.array_equal(np.floor(groups), frequency_groups(panel.y))
    for frame in (on, sampled):
        keyed = pl.DataFrame(
            {"g": groups, "t": frame["service_target"], "p": frame["policy_target"]}
        )
        assert (keyed.group_by("g", "t").agg(pl.col("p").n_unique())["p"] == 1).all()


def test_short_history_is_not_calibrated(erp_tables: dict) -> None:
    """Too short a history for the calibration: the group mode plans every item at its
    target; the default (cost-aware) mode by marginal analysis on the model, no item under
    its target minus ``calibration_floor_gap``, the notes saying why."""
    panel, classes, tables = _demo_plan_inputs(erp_tables)
    short = {"calibration_min_periods": panel.n_periods + 1}
    settings = load_settings(inventory={**short, "calibration_mode": "group"})
    plan = compute_plan(panel, classes, None, tables, settings, today=END)
    np.testing.assert_array_equal(plan.policy["policy_target"], plan.policy["service_target"])
    assert any("targets not calibrated" in n for n in plan.notes)
    alloc = compute_plan(panel, classes, None, tables, load_settings(inventory=short), today=END)
    assert any("targets not calibrated" in n for n in alloc.notes)
    assert any("marginal analysis on the model" in n for n in alloc.notes)
    gap = alloc.policy["policy_target"] - alloc.policy["service_target"]
    assert gap.min() >= -0.1 - 1e-9 and gap.max() > 0 > gap.min()


def _shift_panel() -> tuple[DemandPanel, pl.DataFrame, dict[str, pl.DataFrame]]:
    """400 days: A steady (1 a day), S sparse (lumps of 5 on 4 days: 1% of periods), D dying
    (1 a day for 100 days, then nothing), G growing (1 a day, 3 a day over the last 60), and
    30 Poisson(1) items P00..P29 (so that the distributions' own level weight stays small)."""
    n_days = 400
    days = [date(2025, 5, 1) + timedelta(days=i) for i in range(n_days)]
    rng = np.random.default_rng(0)
    y = {
        "A": [1.0] * n_days,
        "S": [5.0 if i in (50, 150, 250, 390) else 0.0 for i in range(n_days)],
        "D": [1.0] * 100 + [0.0] * 300,
        "G": [1.0] * 340 + [3.0] * 60,
    }
    y.update({f"P{i:02d}": rng.poisson(1.0, n_days).astype(float).tolist() for i in range(30)})
    long = pl.DataFrame(
        {
            "unique_id": [k for k in y for _ in range(n_days)],
            "ds": days * len(y),
            "y": [v for k in y for v in y[k]],
        }
    )
    ids = list(y)
    panel = DemandPanel.from_long(long, freq="D", item_ids=ids)
    classification = pl.DataFrame({"unique_id": ids, "tier": ["regular"] * len(ids)})
    tables = _tiny_tables(0.0)
    cost = [1.0, 10.0, 2.0, 1.0] + [1.0] * 30
    tables["items"] = pl.DataFrame({"item_id": ids, "unit_cost": cost, "active": [True] * len(ids)})
    return panel, classification, tables


def _rows(plan) -> dict:  # type: ignore[no-untyped-def]
    return {r["unique_id"]: r for r in plan.policy.iter_rows(named=True)}


def test_compute_plan_sparse_rule_and_obsolete_items() -> None:
    panel, classification, tables = _shift_panel()
    today = date(2026, 6, 5)
    base = {"calibrate": False, "n_samples": 4000, "sparse_policy": "lump"}
    plan = compute_plan(
        panel, classification, None, tables, load_settings(inventory=base), today=today
    )
    off = compute_plan(
        panel,
        classification,
        None,
        tables,
        load_settings(inventory={**base, "sparse_threshold": 0.0, "obsolete_intervals": 0.0}),
        today=today,
    )
    pol, ref = _rows(plan), _rows(off)
    # S: demand in 1% of periods -> the sparse rule: the 95% quantile of the protection
    # interval's demand (no demand 86% of the time: one lump, of a size drawn with parameter
    # uncertainty), not the fill rate's cover of the lump tail
    assert pol["S"]["stocking_rule"] == "sparse" and ref["S"]["stocking_rule"] == "target"
    assert pol["S"]["reorder_point"] < ref["S"]["reorder_point"]
    assert pol["S"]["expected_fill_rate"] < ref["S"]["expected_fill_rate"]
    # D: no demand for 300 days, mean interval 4: obsolete, flagged, never ordered
    d = pol["D"]
    assert d["obsolete"] and d["obsolete_reason"] == "no_demand_for_k_intervals"
    assert d["stocking_rule"] == "obsolete" and d["reorder_point"] == -1.0
    assert d["suggested_order"] == 0.0
    assert not ref["D"]["obsolete"] and ref["D"]["stocking_rule"] == "target"
    assert pol["A"]["stocking_rule"] == "target" and not pol["A"]["obsolete"]
    assert plan.summary["n_obsolete"] == 1
    assert plan.summary["stocking_rules"] == {"obsolete": 1, "sparse": 1, "target": 32}
    json.dumps(plan.summary)  # plain types only
    assert any("1 item(s) without demand for more than 6" in n for n in plan.notes)
    assert any("1 sparse item(s)" in n for n in plan.notes)


def test_compute_plan_moves_the_level_to_recent_demand_or_the_forecast() -> None:
    panel, classification, tables = _shift_panel()
    today = date(2026, 6, 5)
    base = {"calibrate": False, "n_samples": 4000, "obsolete_intervals": 0.0, "level": "history"}
    hist = _rows(
        compute_plan(
            panel, classification, None, tables, load_settings(inventory=base), today=today
        )
    )
    recent = compute_plan(
        panel,
        classification,
        None,
        tables,
        load_settings(inventory={**base, "level": "recent", "level_window_days": 60}),
        today=today,
    )
    rec = _rows(recent)
    assert hist["G"]["level_factor"] == 1.0
    # the last 60 days run at 3 a day: G's lead-time demand is moved up to that level
    per_day = rec["G"]["mean_lead_time_demand"] / 15.0  # 14-day lead time + 1 period
    assert per_day == pytest.approx(3.0, rel=0.05)
    assert rec["G"]["level_factor"] > 1.2
    assert rec["G"]["reorder_point"] > hist["G"]["reorder_point"]
    assert rec["A"]["level_factor"] == pytest.approx(1.0, abs=0.02)
    # D has no demand in the window: too few demands to tell, left as it is
    assert rec["D"]["level_factor"] == 1.0
    assert any("inventory.level = recent" in n for n in recent.notes)
    forecasts = pl.DataFrame(
        {"unique_id": ["G"] * 3, "ds": [today] * 3, "forecast": [3.0, 3.0, 3.0]}
    )
    fc = _rows(
        compute_plan(
            panel,
            classification,
            forecasts,
            tables,
            load_settings(inventory={**base, "level": "forecast"}),
            today=today,
        )
    )
    assert fc["G"]["mean_lead_time_demand"] / 15.0 == pytest.approx(3.0, rel=0.05)


def test_compute_plan_aggregate_service_mode() -> None:
    panel, classification, tables = _shift_panel()
    today = date(2026, 6, 5)
    inv = {
        "calibrate": False,
        "n_samples": 4000,
        "service_mode": "aggregate",
        "aggregate_target": 0.9,
    }
    plan = compute_plan(
        panel, classification, None, tables, load_settings(inventory=inv), today=today
    )
    pol = _rows(plan)
    assert {r["stocking_rule"] for r in pol.values()} == {"aggregate", "obsolete"}
    assert all(r["policy_target"] == 0.9 for r in pol.values())
    assert plan.summary["service_mode"] == "aggregate"
    assert plan.summary["expected_aggregate_fill_rate"] >= 0.9
    assert any("service_mode = aggregate" in n for n in plan.notes)
    # the dear sparse item (cost 10) is the last to get stock
    assert pol["S"]["expected_fill_rate"] < pol["A"]["expected_fill_rate"]
    # a per-tier minimum lifts it
    floor = compute_plan(
        panel,
        classification,
        None,
        tables,
        load_settings(inventory={**inv, "min_fill_rates": {"regular": 0.8}}),
        today=today,
    )
    rows = _rows(floor)
    assert rows["S"]["expected_fill_rate"] >= 0.8
    assert rows["S"]["reorder_point"] >= pol["S"]["reorder_point"]
    # calibrated (400 periods >= calibration_min_periods): a nominal from the backtest (on
    # this stable demand below 0.9: the level uncertainty of the mode overshoots there)
    cal = compute_plan(
        panel,
        classification,
        None,
        tables,
        load_settings(inventory={**inv, "calibrate": True}),
        today=today,
    )
    assert any("aggregate target calibrated" in n and "level sigma" in n for n in cal.notes)
    nominal = cal.policy["policy_target"].unique().to_list()
    assert len(nominal) == 1 and 0.5 <= nominal[0] < 1.0
