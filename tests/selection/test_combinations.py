"""Scoring combinations of methods (sparecast.selection.combinations)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.evaluate import metrics as M
from sparecast.evaluate.backtest import backtest
from sparecast.selection.combinations import with_combinations


def _panel() -> DemandPanel:
    rng = np.random.default_rng(3)
    y = rng.poisson(2.0, size=(5, 60)).astype(np.float32)
    return DemandPanel(y, np.array([f"i{k}" for k in range(5)]), np.datetime64("2025-01-01"), "D")


def test_a_combination_is_scored_like_a_method_and_the_rest_is_kept() -> None:
    panel = _panel()
    bt = backtest(panel, h=5, methods=["naive", "ses"], n_windows=2, keep_errors=True)
    combo = with_combinations(bt, ["mean(naive,ses)", "naive"])
    # the zero forecast is scored as a reference and stays last
    assert combo.methods == ["naive", "ses", "mean(naive,ses)", "zero"]
    assert combo.references == ("zero",)
    assert combo.labels["mean(naive,ses)"] == "mean(naive, SES)"
    assert (combo.h, combo.origins, combo.cutoffs, combo.panel) == (
        bt.h,
        bt.origins,
        bt.cutoffs,
        bt.panel,
    )
    assert bt.methods == ["naive", "ses", "zero"]  # the input is not changed
    rows = combo.scores.filter(pl.col("method") == "mean(naive,ses)")
    assert rows.height == panel.n_items and rows["mape"].null_count() == panel.n_items
    # mae of the combination = mean over windows of the mae of the mean errors
    e = (bt.errors["naive"].astype(np.float64) + bt.errors["ses"].astype(np.float64)) / 2
    want = np.mean([M.mae(np.zeros_like(e[w]), e[w]) for w in range(2)], axis=0)
    np.testing.assert_allclose(rows["mae"].to_numpy(), want, rtol=1e-6)
    assert with_combinations(bt, ["ses"]) is bt  # nothing new


def test_combinations_need_the_errors_and_backtested_members() -> None:
    panel = _panel()
    bt = backtest(panel, h=5, methods=["naive", "ses"], n_windows=2)
    with pytest.raises(MethodError, match="keep_errors=True"):
        with_combinations(bt, ["mean(naive,ses)"])
    kept = backtest(panel, h=5, methods=["naive", "ses"], n_windows=2, keep_errors=True)
    with pytest.raises(MethodError, match=r"\['ma'\] were not backtested"):
        with_combinations(kept, ["mean(naive,ma)"])
