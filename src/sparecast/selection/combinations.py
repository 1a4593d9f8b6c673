"""Scoring combinations of methods: the mean of several methods' forecasts (``mean(a,b)``, the
router's ``top_k > 1``) scored window by window like a backtested method, so that the outputs
show the combinations the router serves.

The backtest (:mod:`sparecast.evaluate.backtest`) measures single methods; combining them is a
choice, hence this module lives with the router.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from sparecast.errors import MethodError
from sparecast.evaluate.backtest import SCORE_METRICS, BacktestResult, window_scores
from sparecast.evaluate.metrics import TrainScales, seasonal_naive_scales
from sparecast.methods.combine import combination_members, combine

__all__ = ["with_combinations"]


def with_combinations(result: BacktestResult, names: Iterable[str]) -> BacktestResult:
    """``result`` with score rows for each combination ``mean(a,b,...)`` in ``names``: the
    mean of the members' forecasts, scored window by window like a method (needs the errors,
    ``backtest(..., keep_errors=True)``). Names that are already methods are skipped; mape
    and wape of a combination are null."""
    new = [n for n in dict.fromkeys(names) if n not in result.methods]
    if not new:
        return result
    if result.errors is None or (result.panel is None and result.train_scales is None):
        raise MethodError(
            f"scoring the combination(s) {new} needs the per-window errors; run the "
            "backtest with keep_errors=True"
        )
    members = {n: combination_members(n) for n in new}
    missing = sorted({m for ms in members.values() for m in ms} - set(result.errors))
    if missing:
        raise MethodError(f"combination member(s) {missing} were not backtested")
    if result.train_scales is not None:  # computed per chunk (a panel read per chunk)
        scales_abs, scales_sq = result.train_scales
    else:
        assert result.panel is not None
        scales_abs, scales_sq = seasonal_naive_scales(
            result.panel.y, result.seasonality, result.origins
        )
    base = result.scores.filter(pl.col("method") == result.methods[0])
    frames = [result.scores]
    errors = dict(result.errors)
    for name, ms in members.items():
        e_all = combine(name, {m: result.errors[m].astype(np.float64) for m in ms})
        errors[name] = e_all.astype(np.float32)
        n_items = e_all.shape[1]
        sums = {k: np.zeros(n_items) for k in SCORE_METRICS}
        counts = {k: np.zeros(n_items, dtype=np.int64) for k in SCORE_METRICS}
        for w in range(len(result.origins)):
            # scores depend on the errors only: the mean errors as forecasts of zeros
            ws = window_scores(
                np.zeros_like(e_all[w]),
                e_all[w],
                TrainScales(scales_abs[w], scales_sq[w]),
                result.stockout_weight,
            )
            for k, v in ws.items():
                ok = ~np.isnan(v)
                sums[k] += np.where(ok, v, 0.0)
                counts[k] += ok
        cols: dict[str, Any] = {
            "unique_id": base["unique_id"],
            "method": pl.repeat(name, n_items, eager=True, dtype=pl.Utf8),
        }
        for k in SCORE_METRICS:
            mean = np.where(counts[k] > 0, sums[k] / np.maximum(counts[k], 1), np.nan)
            cols[k] = pl.Series(k, mean, dtype=pl.Float64, nan_to_null=True)
        cols["mape"] = pl.repeat(None, n_items, eager=True, dtype=pl.Float64)
        cols["wape"] = pl.repeat(None, n_items, eager=True, dtype=pl.Float64)
        cols["n_windows_scaled"] = pl.Series(counts["mase"], dtype=pl.Int64)
        cols["abs_error_sum"] = pl.Series(np.abs(e_all).sum(axis=(0, 2)), dtype=pl.Float64)
        cols["error_sum"] = pl.Series(e_all.sum(axis=(0, 2)), dtype=pl.Float64)
        cols["actual_sum"] = base["actual_sum"]
        cols["n_train_demands"] = base["n_train_demands"]
        frames.append(pl.DataFrame(cols).select(result.scores.columns))
    labels = dict(result.labels)
    for name, ms in members.items():
        labels[name] = "mean(" + ", ".join(result.labels.get(m, m) for m in ms) + ")"
    return dataclasses.replace(
        result,
        scores=pl.concat(frames),
        # the references (the zero forecast) stay last
        methods=[
            *(m for m in result.methods if m not in result.references),
            *new,
            *result.references,
        ],
        labels=labels,
        errors=errors,
    )
