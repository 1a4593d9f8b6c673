"""Baseline methods: naive, seasonal naive, moving average, simple exponential smoothing.

Every kernel takes ``y[items, periods]`` and a horizon ``h`` and returns ``float64[items, h]``.
They are vectorised over items (loop over time, never over items).
"""

from __future__ import annotations

import numpy as np

__all__ = ["naive", "moving_average"]


def naive(y: np.ndarray, h: int) -> np.ndarray:
    """Last observed value repeated over the horizon (statsforecast ``Naive``)."""
    last = np.asarray(y, dtype=np.float64)[:, -1]
    return np.repeat(last[:, None], h, axis=1)


def moving_average(y: np.ndarray, h: int, window: int = 28) -> np.ndarray:
    """Mean of the last ``window`` periods (statsforecast ``WindowAverage``); all history if shorter."""
    tail = np.asarray(y, dtype=np.float64)[:, -window:]
    return np.repeat(tail.mean(axis=1)[:, None], h, axis=1)
