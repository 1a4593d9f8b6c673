"""`sparecast.plan`: the policy of a demand panel and an items table, from Python; quoted lead
times, defaults and their notes, rejected item rows, items without demand."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import sparecast
from sparecast.config import load_settings
from sparecast.data.panel import DemandPanel
from sparecast.inventory.plan import POLICY_COLUMNS

TODAY = date(2026, 1, 1)


def _demand(weeks: int = 40) -> pl.DataFrame:
    """A and B: 2 units every week; C: 1 unit every 4th week (Mondays from 2025-01-06)."""
    rows = []
    for w in range(weeks):
        day = date(2025, 1, 6) + timedelta(weeks=w)
        rows += [("A", day, 2.0), ("B", day, 2.0), ("C", day, 1.0 if w % 4 == 0 else 0.0)]
    return pl.DataFrame(rows, schema=["unique_id", "ds", "y"], orient="row")


def test_quoted_lead_times_set_the_lead_time_demand() -> None:
    items = pl.DataFrame(
        {
            "unique_id": ["A", "B", "C"],
            "lead_time_days": ["14", "", "7"],
            "unit_cost": ["2.5", "1", "10"],
            "on_hand": ["3", "0", "1"],
            "on_order": ["2", "", "0"],
        }
    )
    plan = sparecast.plan(_demand(), items, today=TODAY)
    pol = plan.policy
    assert pol.columns == list(POLICY_COLUMNS)
    by = {r["unique_id"]: r for r in pol.iter_rows(named=True)}
    assert [by[i]["lead_time_source"] for i in "ABC"] == ["quoted", "default", "quoted"]
    default = load_settings().inventory.default_lead_time_days
    assert by["B"]["lead_time_mean_days"] == default
    # weekly data, sQ reviewed every week: protection = lead time + 1 week; 2 units a week
    assert by["A"]["mean_lead_time_demand"] == pytest.approx(2 * (14 / 7 + 1), rel=0.03)
    assert by["B"]["mean_lead_time_demand"] == pytest.approx(2 * (default / 7 + 1), rel=0.03)
    assert by["A"]["reorder_point"] < by["B"]["reorder_point"]  # same demand, shorter lead time
    # stock and open quantity from the items: IP = on hand + on order
    assert (by["A"]["on_hand"], by["A"]["open_quantity"], by["A"]["inventory_position"]) == (
        3.0,
        2.0,
        5.0,
    )
    ordered = pol.filter(pl.col("suggested_order") > 0)
    np.testing.assert_allclose(
        ordered["order_value"], ordered["suggested_order"] * ordered["unit_cost"]
    )
    assert plan.rejected.height == 0
    assert "1 item(s) have no learned or quoted lead time" in "\n".join(plan.notes)


def test_defaults_notes_rejected_rows_and_items_without_demand(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("unique_id,moq,lot_size\nA,6,3\nB,-1,1\nB,2,1\nZ,4,1\n")
    settings = load_settings(inventory={"moq": 2.0, "default_lead_time_days": 21.0})
    plan = sparecast.plan(_demand(), path, settings=settings, today=TODAY)
    # B's first row is rejected (negative moq); its second row is then kept
    assert plan.rejected.select("input_row", "unique_id", "reason").rows() == [
        (1, "B", "negative_moq")
    ]
    notes = "\n".join(plan.notes)
    assert notes.startswith("1 row(s) of the items file rejected (negative_moq 1)")
    assert "lead_time_days (default: inventory.default_lead_time_days" in notes
    assert "1 item(s) of the demand have no row in the items file" in notes  # C
    assert "1 item(s) of the items file have no demand history" in notes  # Z
    pol = plan.policy.sort("unique_id")
    assert pol["unique_id"].to_list() == ["A", "B", "C", "Z"]
    assert pol["lead_time_mean_days"].to_list() == [21.0] * 4
    assert set(pol["lead_time_source"]) == {"default"}
    # order quantities honour each item's MOQ and lot size; C takes inventory.moq = 2
    q = dict(zip(pol["unique_id"], pol["order_quantity"], strict=True))
    assert q["A"] >= 6 and q["A"] % 3 == 0
    assert q["B"] >= 2 and q["C"] >= 2
    # Z has no demand history: a policy row, nothing to hold or order (reorder point -1:
    # ordered only after a demand)
    z = pol.filter(pl.col("unique_id") == "Z").row(0, named=True)
    assert (z["reorder_point"], z["suggested_order"], z["on_hand"]) == (-1.0, 0.0, 0.0)
    assert z["stocking_rule"] == "no_demand"
    assert plan.summary["n_items"] == 4


def test_a_panel_without_items_plans_on_every_default() -> None:
    panel = DemandPanel.from_long(_demand())
    plan = sparecast.plan(panel, today=TODAY)
    assert plan.policy.height == 3
    assert set(plan.policy["lead_time_source"]) == {"default"}
    assert plan.policy["unit_cost"].null_count() == 3
    assert "3 item(s) of the demand have no row in the items file" in "\n".join(plan.notes)


def test_overrides_reach_the_library_plan() -> None:
    """``sparecast.plan(..., overrides=...)``: do-not-order stops B's order, a fixed
    order-up-to re-decides A's, an expired override changes nothing."""
    items = pl.DataFrame({"unique_id": ["A", "B", "C"], "on_hand": ["0", "0", "0"]})
    before = sparecast.plan(_demand(), items, today=TODAY).policy
    assert (before.filter(pl.col("unique_id") == "B")["suggested_order"] > 0).all()
    until = TODAY + timedelta(days=10)
    overrides = {
        "A": sparecast.Override("A", "alice", "critical", until, order_up_to=50.0),
        "B": sparecast.Override("B", "alice", "obsolete", until, do_not_order=True),
        "C": sparecast.Override("C", "bob", "old", TODAY, do_not_order=True),  # expired
    }
    plan = sparecast.plan(_demand(), items, today=TODAY, overrides=overrides)
    by = {r["unique_id"]: r for r in plan.policy.iter_rows(named=True)}
    assert by["A"]["order_up_to"] == 50.0 and by["A"]["suggested_order"] == 50.0  # IP 0
    assert by["B"]["suggested_order"] == 0.0 and by["B"]["override"] == "do_not_order"
    c = before.filter(pl.col("unique_id") == "C").row(0, named=True)
    assert by["C"]["suggested_order"] == c["suggested_order"] and by["C"]["override"] is None
    assert plan.summary["n_overrides"] == 2
    assert "2 item(s) with a planner override" in "\n".join(plan.notes)
