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
