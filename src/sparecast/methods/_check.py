"""The one panel-shape check of the kernels (``y[items, periods]`` with at least one period),
of a demand history and of quantile levels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from sparecast.errors import MethodError

__all__ = ["as_panel", "as_history", "check_levels"]


def as_panel(
    y: np.ndarray, dtype: DTypeLike | None = None, *, needs: str = "a forecast"
) -> np.ndarray:
    """``y`` as a 2-D array ``[items, periods]`` (of ``dtype`` when given, no copy otherwise);
    a MethodError when it is not 2-D or has no period. ``needs`` names what needs the history."""
    arr = np.asarray(y, dtype=dtype)
    if arr.ndim != 2:
        raise MethodError(f"y must be a 2-D array [items, periods], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise MethodError(f"y has no period; {needs} needs at least one observation")
    return arr


def as_history(y: np.ndarray) -> np.ndarray:
    """A demand history for the distributions: float64 ``[items, periods]``, finite, negative
    net returns as zero demand."""
    arr = as_panel(y, np.float64, needs="a demand distribution")
    if not np.isfinite(arr).all():
        raise MethodError("y contains NaN or infinite values; fill missing periods with 0")
    return np.maximum(arr, 0.0)


def check_levels(levels: Sequence[float] | np.ndarray) -> np.ndarray:
    """Quantile levels as float64 ``[levels]``; a MethodError unless 1-D and in (0, 1)."""
    lv = np.asarray(levels, dtype=np.float64)
    if lv.ndim != 1 or ((lv <= 0) | (lv >= 1)).any():
        raise MethodError(f"quantile levels must be a 1-D list in (0, 1), got {levels!r}")
    return lv
