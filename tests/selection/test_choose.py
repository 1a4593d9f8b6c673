"""Choosing methods from a backtest: by item, by class, the classification default, bad
arguments."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from utils.panels import make_panel, method_score, two_method_panel

from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError, SparecastError
from sparecast.evaluate.backtest import backtest
from sparecast.selection.choose import select


def test_select_by_item_picks_best_metric() -> None:
    panel, _ = two_method_panel()
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma"], seasonality=1)
    sel = select(res, by="item", metric="rmsse")
    assert sel.columns == ["unique_id", "method", "reason"]
    picks = dict(zip(sel["unique_id"], sel["method"], strict=True))
    for item in ("item0", "item1"):
        best = min(("naive", "ma"), key=lambda m, i=item: method_score(res, i, m, "rmsse"))
        assert picks[item] == best
    assert picks["item0"] == "naive" and picks["item1"] == "ma"
    assert picks["item2"] == "ma"
    reasons = dict(zip(sel["unique_id"], sel["reason"], strict=True))
    assert reasons["item2"] == "fallback ma: no history"
    assert reasons["item0"].startswith("best rmsse")
    # another fallback
    sel = select(res, by="item", fallback="naive")
    assert sel.filter(pl.col("unique_id") == "item2")["reason"][0] == "fallback naive: no history"


def test_select_by_class_picks_best_mean_in_class() -> None:
    panel, classes = two_method_panel()
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma"], seasonality=1)
    # put both items with history in one class: the lower mean rmsse over the two wins
    one_class = classes.with_columns(
        pl.when(pl.col("unique_id") == "item2")
        .then(pl.lit("no_demand"))
        .otherwise(pl.lit("lumpy"))
        .alias("sb_class")
    )
    sel = select(res, one_class, by="class", metric="rmsse")
    means = {
        m: np.mean([method_score(res, i, m, "rmsse") for i in ("item0", "item1")])
        for m in ("naive", "ma")
    }
    best = min(means, key=means.get)
    row = sel.filter(pl.col("unique_id") == "item1").row(0, named=True)
    assert row["method"] == best
    assert row["reason"] == f"best rmsse in class lumpy ({round(means[best], 3)})"
    row2 = sel.filter(pl.col("unique_id") == "item2").row(0, named=True)
    assert row2 == {"unique_id": "item2", "method": "ma", "reason": "fallback ma: no history"}
    # per-class: each item in its own class gets its own best
    sel = select(res, classes, by="class", metric="mase")
    picks = dict(zip(sel["unique_id"], sel["method"], strict=True))
    assert picks == {"item0": "naive", "item1": "ma", "item2": "ma"}


def test_select_classifies_the_panel_when_not_given() -> None:
    panel, _ = two_method_panel()
    res = backtest(panel, h=7, n_windows=2, methods=["naive", "ma"], seasonality=1)
    sel = select(res)
    assert sel.height == 3
    assert sel.filter(pl.col("unique_id") == "item2")["reason"][0] == "fallback ma: no history"


def test_select_rejects_bad_arguments() -> None:
    panel, _ = two_method_panel()
    res = backtest(panel, h=7, n_windows=2, methods=["naive", "ma"], seasonality=1)
    with pytest.raises(SparecastError, match="metric"):
        select(res, metric="nope")
    with pytest.raises(SparecastError, match="by"):
        select(res, by="nope")  # type: ignore[arg-type]
    with pytest.raises(MethodError, match="unknown method"):
        select(res, fallback="nope")


# ---------------------------------------------------------------------------- robust default
def test_paired_test_matches_scipy() -> None:
    from scipy import stats

    from sparecast.selection.choose import paired_test

    rng = np.random.default_rng(0)
    a = rng.gamma(2.0, 1.0, 50)
    b = a - rng.normal(0.1, 0.5, 50)
    p, n = paired_test(a, b)
    assert n == 50
    assert p == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue, rel=1e-9)
    # NaN pairs are left out; fewer than 3 pairs cannot show anything
    a[:48] = np.nan
    assert paired_test(a, b) == (1.0, 2)
    assert paired_test(np.ones(4), np.zeros(4)) == (0.0, 4)
    assert paired_test(np.zeros(4), np.ones(4)) == (1.0, 4)


def _trend_and_level_panel(n_trend: int, n_level: int) -> DemandPanel:
    """Smooth items: ``n_trend`` strong linear trends (naive beats any smoother by far) and
    ``n_level`` noisy constant levels (naive is worse than ma)."""
    rng = np.random.default_rng(11)
    t = 120
    trend = [np.arange(t, dtype=float) * (1 + i % 3) + 50 for i in range(n_trend)]
    level = [20 + rng.normal(0, 3, t).round() for _ in range(n_level)]
    return make_panel(np.vstack([*trend, *level]))


def test_a_class_departs_from_the_default_only_on_significant_evidence() -> None:
    panel = _trend_and_level_panel(8, 0)
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma", "robust"], seasonality=1)
    sel = select(res, metric="rmsse", default="robust")
    assert set(sel["method"]) == {"naive"}
    assert "beats robust default robust: naive rmsse" in sel["reason"][0]
    assert "p=0.000, 8 items" in sel["reason"][0]
    # a margin no method reaches keeps the default even where the test is significant
    sel = select(res, metric="rmsse", default="robust", margin=0.99)
    assert set(sel["method"]) == {"robust"}
    assert sel["reason"][0].startswith("robust default robust kept: naive rmsse")
    assert sel["reason"][0].endswith("less than 99% better")
    # two items are too few to show anything: the default stays although naive is far better
    panel = _trend_and_level_panel(2, 0)
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma", "robust"], seasonality=1)
    sel = select(res, metric="rmsse", default="robust")
    assert set(sel["method"]) == {"robust"}
    assert sel["reason"][0].endswith("p=1.000, 2 items), not significant")
    # without a default the lowest mean wins, as before
    best = select(res, metric="rmsse")["method"][0]
    means = {m: res.scores.filter(pl.col("method") == m)["rmsse"].mean() for m in res.methods}
    assert best == min(means, key=lambda m: means[m])


def test_a_default_that_was_not_backtested_is_an_error() -> None:
    panel, _ = two_method_panel()
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma"], seasonality=1)
    with pytest.raises(SparecastError, match="robust default 'robust' was not backtested"):
        select(res, default="robust")
    with pytest.raises(SparecastError, match="alpha"):
        select(res, default="ma", alpha=0.0)


def test_the_summary_ranks_a_sum_of_metrics_like_select() -> None:
    panel, classes = two_method_panel()
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma", "ses"], seasonality=1)
    summ = res.summary(classes, metric="mase+asym")
    chosen = dict(summ.filter(pl.col("chosen")).select("sb_class", "method").iter_rows())
    sel = select(res, classes, by="class", metric="mase+asym", top_k=1)
    picks = dict(sel.join(classes, on="unique_id").select("sb_class", "method").iter_rows())
    assert chosen["smooth"] == picks["smooth"] and chosen["erratic"] == picks["erratic"]
    with pytest.raises(SparecastError, match="signed"):
        res.summary(classes, metric="mase+me")


def test_select_ignores_the_zero_reference_unless_asked_for() -> None:
    """Sparse demand: the zero forecast has the lowest MAE of every item, yet select never
    chooses it unless it was one of the methods backtested."""
    y = np.zeros((2, 60))
    y[0, ::9] = 4.0
    y[1, ::13] = 2.0
    panel = make_panel(y)
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma"], seasonality=1)
    for item in ("item0", "item1"):
        zero = method_score(res, item, "zero", "mae")
        assert all(zero < method_score(res, item, m, "mae") for m in ("naive", "ma"))
    for by in ("item", "class"):
        sel = select(res, by=by, metric="mae")  # type: ignore[arg-type]
        assert "zero" not in sel["method"].to_list()
    asked = backtest(panel, h=7, n_windows=3, methods=["naive", "ma", "zero"], seasonality=1)
    assert select(asked, by="item", metric="mae")["method"].to_list() == ["zero", "zero"]


def test_a_biased_method_does_not_replace_the_default() -> None:
    """On sparse items the last value is mostly 0: naive wins RMSSE (which rewards low
    forecasts there) but runs far below the demand; the default stays, and says why."""
    rng = np.random.default_rng(2)
    y = (rng.random((60, 150)) < 0.08) * rng.integers(1, 4, (60, 150))
    y[:, -22:-14] = 0  # the last value before each origin is 0
    y[:, -8:-7] = 0
    res = backtest(make_panel(y), h=7, n_windows=3, methods=["naive", "robust"], seasonality=1)
    naive = res.scores.filter(pl.col("method") == "naive")
    assert naive["error_sum"].sum() / naive["actual_sum"].sum() < -0.5
    free = select(res, metric="rmsse")  # no default: the lowest mean wins
    assert set(free["method"]) == {"naive"}
    sel = select(res, metric="rmsse", default="robust")
    assert set(sel["method"]) == {"robust"}
    assert "but biased -" in sel["reason"][0] and "(robust default " in sel["reason"][0]
