"""The core run (sparecast.pipeline.core): how many backtest windows fit, the router the
settings describe, and a run on a history too short to backtest."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from sparecast.config import load_settings
from sparecast.data.panel import DemandPanel
from sparecast.evaluate.backtest import windows_that_fit
from sparecast.pipeline.core import make_router, run_core


@pytest.mark.parametrize(
    ("n_periods", "expected"),
    [(12, 0), (13, 1), (17, 1), (18, 2), (100, 3)],
)
def test_windows_that_fit_the_settings(n_periods: int, expected: int) -> None:
    """h = 5, seasonality 7: a window needs h + 7 + 1 = 13 periods, each further one 5 more
    (step = h); never more than the 3 configured."""
    settings = load_settings(backtest={"n_windows": 3, "seasonality": 7})
    b = settings.backtest
    assert windows_that_fit(n_periods, 5, b.n_windows, b.step, b.seasonality) == expected


def test_make_router_takes_the_settings() -> None:
    settings = load_settings(
        methods=["ma", "sba"],
        router={"mode": "auto", "metric": "mase", "top_k": 1, "fallback": "sba"},
        backtest={"n_windows": 2, "seasonality": 7},
    )
    router = make_router(settings)
    assert router.mode == "auto"
    assert router.metric == "mase" and router.top_k == 1 and router.fallback == "sba"
    assert router.n_windows == 2 and router.seasonality == 7
    assert router.backtest_methods() == ["ma", "sba"]


def test_run_core_on_a_short_history_serves_the_fallback() -> None:
    """Three periods cannot hold a backtest of h = 2: no backtest, every item gets the
    fallback, and the forecast column is the fallback's."""
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(3)]
    long = pl.DataFrame(
        {"unique_id": ["A"] * 3 + ["B"] * 3, "ds": days * 2, "y": [1.0, 2.0, 3.0, 0.0, 4.0, 0.0]}
    )
    panel = DemandPanel.from_long(long, freq="D")
    settings = load_settings(horizon=2, methods=["ma", "sba"], router={"fallback": "ma"})
    result = run_core(panel, settings)
    assert result.backtest is None and result.summary is None
    assert any(n.startswith("backtest skipped: fallback ma") for n in result.notes)
    assert result.selection["method"].to_list() == ["ma", "ma"]
    assert result.classification["unique_id"].to_list() == ["A", "B"]
    fc = result.forecasts
    assert fc is not None and fc.height == 2 * 2
    np.testing.assert_array_equal(fc["forecast"].to_numpy(), fc["ma"].to_numpy())
    assert fc["method"].to_list() == ["ma"] * 4
    assert {"classify_s", "backtest_s", "forecast_s"} <= set(result.timings)


@pytest.mark.parametrize("metric", ["mae", "rmsse", "mase+asym"])
def test_the_summary_chooses_by_the_router_metric_and_shows_zero(metric: str) -> None:
    """The summary's ``chosen`` is the lowest mean of the router's metric per group among the
    methods (the zero reference scored beside them, never chosen), and the forecasts have no
    zero column."""
    rng = np.random.default_rng(5)
    y = (rng.random((12, 80)) < 0.3) * rng.integers(1, 6, (12, 80))
    panel = DemandPanel(
        y.astype(np.float32), np.array([f"I{i}" for i in range(12)]), np.datetime64("2026-01-01")
    )
    settings = load_settings(
        horizon=7,
        methods=["naive", "ma", "sba"],
        router={"metric": metric, "top_k": 1, "fallback": "ma"},
    )
    result = run_core(panel, settings)
    summary = result.summary
    assert summary is not None and result.forecasts is not None
    assert "zero" not in result.forecasts.columns
    assert set(summary["method"]) == {"naive", "ma", "sba", "zero"}
    for (_, _), rows in summary.group_by("grouping", "group"):
        candidates = rows.filter(pl.col("method") != "zero")
        if metric == "mase+asym":  # each relative to the group's best candidate, added
            candidates = candidates.with_columns(
                (
                    pl.col("mase") / pl.col("mase").min() + pl.col("asym") / pl.col("asym").min()
                ).alias(metric)
            )
        candidates = candidates.filter(pl.col(metric).is_not_null())
        if candidates.height:
            best = candidates.sort(metric, maintain_order=True)["method"][0]
            assert rows.filter(pl.col("chosen"))["method"].to_list() == [best]
