"""Quantile calibration in a rolling-origin backtest: coverage and pinball loss.

For every origin the quantiles are computed from the history before it only, then compared with
what happened after it:

- per-period quantiles (:func:`sparecast.methods.quantiles.forecast_quantiles` around a
  point forecast of ``forecast_method``) against each of the next ``h`` periods;
- lead-time quantiles (:func:`sparecast.methods.distributions.lead_time_demand`) against the
  demand actually observed over the item's protection interval: the rounded median of its
  lead-time samples plus the review period, summed from the origin on (lead times are fixed to
  that interval here, so the quantile and the actual cover the same periods).

Coverage is the share of actuals at or below the quantile (nominal: the level); the pinball
(quantile) loss of level ``a`` is ``a (y - q)`` when ``y >= q`` and ``(1 - a)(q - y)`` otherwise
(:func:`sparecast.evaluate.metrics.pinball`, the registry's).
For integer demand with many zeros the coverage of a low level is above nominal by construction
(``P(D <= 0)`` may exceed it), which is why coverage is reported next to the pinball loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from sparecast.errors import ConfigError
from sparecast.evaluate.metrics import pinball
from sparecast.methods import forecast_matrix
from sparecast.methods._check import check_levels
from sparecast.methods.distributions import lead_time_demand, lead_time_matrix
from sparecast.methods.quantiles import forecast_quantiles

__all__ = [
    "CalibrationResult",
    "quantile_coverage",
    "pinball_loss",
    "rolling_calibration",
]

DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class CalibrationResult:
    """``per_period`` and ``lead_time``: one row per level with ``coverage``, ``pinball``,
    ``scaled_pinball`` (pinball / mean actual) and ``n`` (actuals compared)."""

    per_period: pl.DataFrame
    lead_time: pl.DataFrame


def quantile_coverage(actual: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Share of ``actual[...]`` at or below ``quantiles[..., level]``: float64[levels]."""
    a = np.asarray(actual, dtype=np.float64)[..., None]
    q = np.asarray(quantiles, dtype=np.float64)
    hit = (a <= q).reshape(-1, q.shape[-1])
    return hit.mean(axis=0)


def pinball_loss(
    actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Mean pinball loss per level: float64[levels] (``actual[...]``, ``quantiles[..., level]``),
    :func:`sparecast.evaluate.metrics.pinball` over all actuals as one series."""
    lv = check_levels(levels, error=ConfigError, allow_empty=False)
    a = np.asarray(actual, dtype=np.float64).reshape(1, -1)
    q = np.asarray(quantiles, dtype=np.float64).reshape(-1, lv.size)
    return np.array([pinball(a, q[None, :, j], quantile=level)[0] for j, level in enumerate(lv)])


def _frame(lv: np.ndarray, actual_parts: list[np.ndarray], q_parts: list[np.ndarray]):
    if not actual_parts:
        return pl.DataFrame(
            {"level": lv, "coverage": np.nan, "pinball": np.nan, "scaled_pinball": np.nan, "n": 0}
        )
    a = np.concatenate([x.reshape(-1) for x in actual_parts])
    q = np.concatenate([x.reshape(-1, lv.size) for x in q_parts])
    pin = pinball_loss(a, q, lv)
    scale = float(np.abs(a).mean())
    return pl.DataFrame(
        {
            "level": lv,
            "coverage": quantile_coverage(a, q),
            "pinball": pin,
            "scaled_pinball": pin / scale if scale > 0 else np.full(lv.size, np.nan),
            "n": np.full(lv.size, a.size, dtype=np.int64),
        }
    )


def rolling_calibration(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray | None = None,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    h: int = 28,
    n_windows: int = 3,
    step: int | None = None,
    forecast_method: str = "sba",
    distribution: str = "auto",
    review_period: float = 0.0,
    n_samples: int = 1000,
    seed: int = 0,
) -> CalibrationResult:
    """Coverage and pinball loss of per-period and lead-time quantiles over rolling origins.

    ``y[items, periods]``; origins at ``T - h - k * step`` for ``k < n_windows`` (``step``
    defaults to ``h``); an origin needs at least ``h`` periods before it. ``lead_times`` as for
    ``lead_time_demand`` (periods); without them only the per-period table is filled. Lead-time
    windows that run past the end of the history are left out.
    """
    lv = check_levels(levels, error=ConfigError, allow_empty=False)
    hist = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    n_items, n_t = hist.shape
    if h < 1 or n_windows < 1:
        raise ConfigError(f"h and n_windows must be >= 1, got {h}, {n_windows}")
    step = h if step is None else step
    origins = [n_t - h - k * step for k in range(n_windows)]
    origins = sorted(o for o in origins if o >= h)
    if not origins:
        raise ConfigError(
            f"history of {n_t} periods is too short for h={h}: needs at least {2 * h} periods"
        )
    horizon = None
    if lead_times is not None:
        lt, _ = lead_time_matrix(lead_times, n_items)
        horizon = np.maximum(np.rint(np.nanmedian(lt, axis=1) + review_period), 1).astype(int)
    pp_a: list[np.ndarray] = []
    pp_q: list[np.ndarray] = []
    lt_a: list[np.ndarray] = []
    lt_q: list[np.ndarray] = []
    csum = np.concatenate([np.zeros((n_items, 1)), np.cumsum(hist, axis=1)], axis=1)
    for k, o in enumerate(origins):
        past = hist[:, :o]
        fc = forecast_matrix(past, h, forecast_method)
        pp_q.append(forecast_quantiles(past, fc, lv))
        pp_a.append(hist[:, o : o + h])
        if horizon is None:
            continue
        fits = o + horizon <= n_t
        if not fits.any():
            continue
        idx = np.flatnonzero(fits)
        ltd = lead_time_demand(
            past[idx],
            horizon[idx].astype(np.float64),
            method=distribution,
            n_samples=n_samples,
            seed=seed + k,
        )
        lt_q.append(ltd.quantiles(lv))
        lt_a.append(csum[idx, o + horizon[idx]] - csum[idx, o])
    return CalibrationResult(
        per_period=_frame(lv, pp_a, pp_q),
        lead_time=_frame(lv, lt_a, lt_q),
    )
