"""Console text (sparecast.pipeline.console) from hand-made results: every number is the one
put in."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

import numpy as np
import polars as pl
import pytest

from sparecast.config import load_settings
from sparecast.evaluate.backtest import BacktestResult
from sparecast.inventory.plan import PlanResult
from sparecast.pipeline.console import (
    format_summary_lines,
    horizon_line,
    plan_summary_lines,
    router_lines,
    selection_score,
)

SELECTION = pl.DataFrame(
    {
        "unique_id": ["a", "b", "c", "d"],
        "method": ["sba", "sba", "sba", "ma"],
        "reason": ["best in class", "best in class", "rule", "fallback"],
    }
)


def test_router_lines_count_items_per_method() -> None:
    settings = load_settings(
        router={"mode": "auto", "metric": "mase", "select_by": "class", "top_k": 1}
    )
    assert router_lines(SELECTION, settings)[0] == (
        "router auto: robust default robust per class unless a method's backtest mase is 2% "
        "better (p < 0.05); items per method (selection.parquet has every item's reason):"
    )
    settings = load_settings(
        router={"mode": "auto", "metric": "mase", "select_by": "class", "top_k": 1, "default": ""}
    )
    assert router_lines(SELECTION, settings) == [
        "router auto: lowest backtest mase per class; items per method "
        "(selection.parquet has every item's reason):",
        "  sba: 3 items (e.g. best in class)",
        "  ma: 1 items (e.g. fallback)",
    ]
    assert router_lines(SELECTION, settings, top=1)[-1] == "  1 more method(s): 1 items"


def test_router_lines_in_rules_mode_name_the_rules() -> None:
    settings = load_settings(router={"mode": "rules", "rules": {"regular": "ma"}})
    head = router_lines(SELECTION, settings)[0]
    assert head.startswith("router rules (tier -> method): ")
    assert "regular -> ma" in head


def test_selection_score_is_the_mean_of_the_chosen_methods() -> None:
    """Item a chose sba (MASE 0.5), item b chose ma (MASE 1.0): selected MASE 0.75; naive's
    MASE is the mean of its rows (2.0) and ma's of its own (1.0, 3.0 -> 2.0)."""
    scores = pl.DataFrame(
        {
            "unique_id": ["a", "a", "a", "b", "b", "b"],
            "method": ["sba", "ma", "naive", "sba", "ma", "naive"],
            "mase": [0.5, 3.0, 2.0, 4.0, 1.0, 2.0],
            "rmsse": [1.0, 1.0, 1.0, 1.0, 3.0, 1.0],
        }
    )
    bt = BacktestResult(scores, ["sba", "ma", "naive"], {}, 1, 1, [0], [np.datetime64("2026-01")])
    chosen = pl.DataFrame({"unique_id": ["a", "b"], "method": ["sba", "ma"]})
    assert selection_score(bt, chosen) == {
        "selected_mase": 0.75,
        "selected_rmsse": 2.0,
        "zero_mase": None,  # no zero forecast in these scores
        "zero_rmsse": None,
        "naive_mase": 2.0,
        "naive_rmsse": 1.0,
        "ma_mase": 2.0,
        "ma_rmsse": 2.0,
    }


def test_plan_summary_lines() -> None:
    summary = {
        "policy": "sQ",
        "target_type": "fill_rate",
        "n_items": 1200,
        "n_to_order": 35,
        "order_value": 12345.678,
        "stock_value": 99000.0,
        "n_at_risk": 4,
        "mean_expected_fill_rate": 0.9731,
        "n_open_orders": 10,
        "n_overdue_orders": 2,
        "lead_time_sources": {"global": 3, "item_supplier": 1197},
        "rejected_rows": 3,
        "rejected_by_reason": {"stock.unknown_item": 1, "receipts.unknown_po": 2},
    }
    plan = PlanResult(
        pl.DataFrame(), cast(Any, None), pl.DataFrame(), date(2026, 1, 1), summary=summary
    )
    assert plan_summary_lines(plan) == [
        "policy sQ (fill_rate targets), 1,200 items: 35 to order now, order value 12,345.68; "
        "stock value 99,000.00",
        "stockout risk >= 50%: 4 items; mean expected fill rate 97.3%",
        "open purchase orders: 10 (2 overdue)",
        "lead times from: global 3, item_supplier 1,197",
        "rejected purchasing/stock rows: 3 (stock.unknown_item 1, receipts.unknown_po 2), "
        "listed in rejected_purchasing.parquet",
    ]
    summary["rejected_rows"] = 0
    assert len(plan_summary_lines(plan)) == 4


@pytest.mark.parametrize("mode", ["auto", "rules"])
def test_router_lines_on_an_empty_selection(mode: str) -> None:
    empty = SELECTION.clear()
    assert len(router_lines(empty, load_settings(router={"mode": mode}))) == 1


def test_format_summary_lines_exact() -> None:
    """Per group the chosen method (*) and the zero row; bias in %, RMSSE vs zero in %."""
    summ = pl.DataFrame(
        {
            "sb_class": ["lumpy", "lumpy", "lumpy", "lumpy", "all", "all"],
            "method": ["naive", "ma", "mean(croston_optimized,lightgbm)", "zero", "ma", "zero"],
            "label": [
                "naive",
                "MA(28)",
                "mean(Croston (optimised), lightgbm)",
                "zero",
                "MA(28)",
                "zero",
            ],
            "n_items": [1234, 1234, 1234, 1234, 2000, 2000],
            "rmsse": [1.16, 0.92, 0.81, 0.9, 0.7, None],
            "rmsse_median": [1.0, 0.8, 0.555, 0.85, 0.6, None],
            "mae": [2.0, 1.5, 1.25, 1.3, 0.5, 0.4],
            "rel_bias": [0.2, -0.05, 0.123, -1.0, 0.0, -1.0],
            "rmsse_vs_zero_pct": [-28.9, -2.2, 10.0, 0.0, None, None],
            "chosen": [False, False, True, False, True, False],
        }
    )
    assert format_summary_lines(summ) == [
        "group               items  method                     "
        " RMSSE median     MAE  bias % vs zero %",
        "lumpy               1,234  mean(Croston (optimis... * "
        "  0.81   0.56    1.25   +12.3     +10.0",
        "                           zero                         0.90   0.85    1.30  -100.0",
        "all                 2,000  MA(28) *                   "
        "  0.70   0.60    0.50    +0.0       n/a",
        "                           zero                          n/a    n/a    0.40  -100.0",
    ]  # fmt: skip


def test_horizon_line_gives_periods_unit_and_windows() -> None:
    def bt(origins: list[int]) -> BacktestResult:
        return BacktestResult(pl.DataFrame(), [], {}, 6, 1, origins, [])

    assert horizon_line(6, "M", bt([38, 44, 50])) == (
        "horizon 6 periods (months); backtest on 3 windows, origins 6 periods apart"
    )
    assert horizon_line(1, "D", bt([9])) == "horizon 1 period (day); backtest on 1 window"
    assert horizon_line(13, "W") == "horizon 13 periods (weeks); no backtest"
