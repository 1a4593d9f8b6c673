"""The smoothing weight of the demand level (``level_alpha``) of the demand distributions: a
backtest of the exponentially weighted mean over the second half of the history.

Apart from the sampling (:mod:`sparecast.methods.distributions`) because it is a model choice,
shared by the lead-time distributions and the per-period quantiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sparecast.errors import MethodError
from sparecast.methods._check import as_history

__all__ = [
    "LEVEL_ALPHAS",
    "level_alpha_rows",
    "resolve_level_alpha",
    "select_level_alpha",
    "select_level_alpha_on",
]

# candidate smoothing weights of the demand level (select_level_alpha), and the most items
# (evenly spaced, with demand) that choose it
LEVEL_ALPHAS: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
_ALPHA_MAX_ITEMS = 5000


def select_level_alpha(
    y: np.ndarray,
    horizon: int,
    grid: Sequence[float] = LEVEL_ALPHAS,
) -> float:
    """The smoothing weight of the demand level that best predicts the mean demand of the next
    ``horizon`` periods over the second half of the history (one value for all items).

    For each ``alpha`` of ``grid`` the exponentially weighted mean at every origin is compared
    with the mean of the following ``horizon`` periods; the squared errors are divided by the
    item's mean demand (so that every item counts about alike) and summed over the items with
    demand (at most 5,000, evenly spaced). Stationary demand selects 0 (the plain mean),
    drifting demand a larger weight.
    """
    raw = np.asarray(y)
    if raw.ndim == 2 and raw.shape[0] > _ALPHA_MAX_ITEMS:
        # one value for all: an even subsample of the items with demand suffices, chosen
        # before the float64 copy (which at a million items would be several GiB)
        rows = level_alpha_rows(raw.max(axis=1))
        assert rows is not None
        return select_level_alpha_on(raw[rows], horizon, grid)
    h = as_history(raw)
    return select_level_alpha_on(h[h.sum(axis=1) > 0], horizon, grid)


def level_alpha_rows(row_max: np.ndarray) -> np.ndarray | None:
    """The items :func:`select_level_alpha` chooses by of a history of ``row_max.size`` items
    (``row_max``: each item's largest demand): above 5,000 items, at most 5,000 of those with
    demand, evenly spaced; None up to 5,000 (all items, those with demand kept)."""
    if row_max.size <= _ALPHA_MAX_ITEMS:
        return None
    active_rows = np.flatnonzero(row_max > 0)
    if active_rows.size > _ALPHA_MAX_ITEMS:
        active_rows = active_rows[
            np.linspace(0, active_rows.size - 1, _ALPHA_MAX_ITEMS).round().astype(np.int64)
        ]
    return active_rows


def select_level_alpha_on(
    rows: np.ndarray, horizon: int, grid: Sequence[float] = LEVEL_ALPHAS
) -> float:
    """:func:`select_level_alpha` of the items it chooses (:func:`level_alpha_rows`), given as
    ``rows``: what a client holding only those rows of a history computes."""
    h = as_history(rows)
    n_items, n_t = h.shape
    horizon = max(int(horizon), 1)
    start = n_t // 2
    if n_t - horizon <= start or len(grid) == 1:
        return float(grid[0])
    csum = np.concatenate([np.zeros((n_items, 1)), np.cumsum(h, axis=1)], axis=1)
    scale = np.maximum(h.mean(axis=1), 1e-9)
    active = h.sum(axis=1) > 0
    best, best_loss = float(grid[0]), np.inf
    for alpha in grid:
        num = np.zeros(n_items)
        den = 0.0
        loss = 0.0
        for t in range(n_t - horizon):
            num = (1.0 - alpha) * num + h[:, t]
            den = (1.0 - alpha) * den + 1.0
            if t + 1 < start:
                continue
            actual = (csum[:, t + 1 + horizon] - csum[:, t + 1]) / horizon
            loss += float((np.square(num / den - actual)[active] / scale[active]).sum())
        if loss < best_loss - 1e-12:
            best, best_loss = float(alpha), loss
    return best


def resolve_level_alpha(
    level_alpha: float | str, history: np.ndarray, horizon: Callable[[], int]
) -> float:
    """The weight a ``level_alpha`` parameter asks for: the number itself, or with ``"auto"``
    :func:`select_level_alpha` of ``history`` for ``horizon()`` periods; a MethodError
    otherwise (the range is checked where the weight is used)."""
    if level_alpha == "auto":
        return select_level_alpha(history, horizon())
    if isinstance(level_alpha, int | float):
        return float(level_alpha)
    raise MethodError(f"level_alpha must be a number in [0, 1) or 'auto', got {level_alpha!r}")
