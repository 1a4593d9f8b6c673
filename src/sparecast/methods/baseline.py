"""Baseline methods: zero, naive, seasonal naive, moving average, simple exponential smoothing.

Every kernel takes ``y[items, periods]`` and a horizon ``h`` and returns ``float64[items, h]``.
They are vectorised over items (loop over time, never over items) and reproduce the statsforecast
models named in their docstrings.
"""

from __future__ import annotations

import numpy as np

from sparecast.methods._check import as_panel, check_param

__all__ = [
    "zero",
    "naive",
    "seasonal_naive",
    "moving_average",
    "ses",
    "ses_weights",
    "flat",
    "MA_WINDOW",
]

MA_WINDOW = 28
"""Default window of the moving average: about four weeks of daily data (the registry's default
and the daily frequency's; weekly and monthly panels use their own, see FREQ_DEFAULTS)."""


def flat(level: np.ndarray, h: int) -> np.ndarray:
    """A per-item level repeated over the horizon, as a new ``float64[items, h]`` array."""
    return np.repeat(np.asarray(level, dtype=np.float64)[:, None], h, axis=1)


def zero(y: np.ndarray, h: int) -> np.ndarray:
    """Zero forecast ("forecast nothing"): the floor every method must beat. On intermittent
    demand it often scores well on MAE/MASE, which reward forecasts at the median (zero); a
    method that does not beat it on RMSSE serves no purpose."""
    return np.zeros((as_panel(y, np.float64).shape[0], h), dtype=np.float64)


def naive(y: np.ndarray, h: int) -> np.ndarray:
    """Last observed value repeated over the horizon (statsforecast ``Naive``)."""
    return flat(as_panel(y, np.float64)[:, -1], h)


def seasonal_naive(y: np.ndarray, h: int, season_length: int = 7) -> np.ndarray:
    """Value of the same period one season ago (statsforecast ``SeasonalNaive``).

    A history shorter than a season keeps statsforecast's alignment of the observed values to their
    seasonal positions; the positions never observed (NaN in statsforecast) get the last value.
    """
    check_param("seasonal_naive", "season_length", season_length, minimum=1, integer=True)
    arr = as_panel(y, np.float64)
    n = arr.shape[1]
    season = np.repeat(arr[:, -1:], season_length, axis=1)
    avail = min(season_length, n)
    season[:, season_length - avail :] = arr[:, n - avail :]
    reps = -(-h // season_length)
    return np.tile(season, (1, reps))[:, :h].copy()


def moving_average(y: np.ndarray, h: int, window: int = MA_WINDOW) -> np.ndarray:
    """Mean of the last ``window`` periods (statsforecast ``WindowAverage``).

    A history shorter than the window uses all of it (statsforecast returns NaN there).
    """
    check_param("ma", "window", window, minimum=1, integer=True)
    tail = as_panel(y, np.float64)[:, -window:]
    return flat(tail.mean(axis=1), h)


def ses_weights(n: int, alpha: float) -> np.ndarray:
    """Weights ``w[n]`` with ``y @ w`` = the SES one-step forecast of a length-``n`` series.

    statsforecast's recursion starts the level at ``y[0]``: ``l_1 = y_0``, ``l_{t+1} = a y_t +
    (1-a) l_t``, so ``y_0`` weighs ``(1-a)^(n-1)`` and ``y_j`` (j >= 1) weighs ``a (1-a)^(n-1-j)``.
    """
    beta = 1.0 - alpha
    w = alpha * beta ** np.arange(n - 1, -1, -1, dtype=np.float64)
    w[0] = beta ** (n - 1)
    return w


def ses(y: np.ndarray, h: int, alpha: float = 0.1) -> np.ndarray:
    """Simple exponential smoothing with a fixed ``alpha`` (statsforecast
    ``SimpleExponentialSmoothing``).

    The recursion is linear in ``y``, so the whole panel is one matrix-vector product.
    """
    check_param("ses", "alpha", alpha, minimum=0, maximum=1, open_minimum=True)
    arr = as_panel(y, np.float64)
    return flat(arr @ ses_weights(arr.shape[1], alpha), h)
