"""The decision-backtest page: self-contained HTML with one line per policy."""

from __future__ import annotations

import numpy as np

from sparecast.config import load_settings
from sparecast.inventory.decisions import evaluate_plan
from sparecast.inventory.decisions_report import decisions_context, render_decisions_report


def test_page_has_the_tradeoff_curve_and_no_external_resources() -> None:
    rng = np.random.default_rng(0)
    y = rng.poisson(1.0, (12, 240)).astype(float)
    bt = evaluate_plan(
        y,
        np.full(12, 4.0),
        targets=(0.9, 0.95),
        settings=load_settings(inventory={"n_samples": 200}),
        textbook_ladder=(0.8, 0.9, 0.99),
        item_ladder=(0.9, 0.99),
    )
    ctx = decisions_context(bt, source="test.sqlite")
    assert [line["policy"] for line in ctx["chart"]["lines"]] == [
        "textbook ladder", "sparecast ladder", "textbook", "empirical", "sparecast", "aggregate",
    ]  # fmt: skip
    assert len(ctx["chart"]["lines"][4]["dots"]) == 2  # one point per target
    html = render_decisions_report(bt, source="test.sqlite")
    assert html.count('class="policy-line"') == 6
    assert 'data-policy="sparecast"' in html and 'data-policy="aggregate"' in html
    assert "<svg" in html and "aggregate mode fill" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "Goal check" in html and "test.sqlite" in html


def test_page_lists_the_items_the_plan_flagged_obsolete() -> None:
    # item 0 sold until period 40 and then stopped (obsolete at the cut, 160): it comes back
    # after the cut; the page names it with its demand after the cut
    rng = np.random.default_rng(1)
    y = rng.poisson(1.0, (6, 240)).astype(float)
    y[0, 40:160] = 0.0
    y[0, 200:] = 2.0
    bt = evaluate_plan(
        y,
        np.full(6, 3.0),
        targets=(0.9,),
        settings=load_settings(inventory={"n_samples": 200, "calibrate": False}),
        split=160,
        textbook_ladder=(0.9,),
        item_ladder=(0.9,),
    )
    ctx = decisions_context(bt, source="x")
    assert ctx["obsolete_count"] == 1 and ctx["obsolete_revived"] == 1
    assert ctx["obsolete"][0]["unique_id"] == "0" and ctx["obsolete"][0]["demand"] > 0
    assert 0 < ctx["obsolete_demand_share"] < 1
    html = render_decisions_report(bt, source="x")
    assert 'id="obsolete-items"' in html and "Obsolete items" in html
