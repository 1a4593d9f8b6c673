"""The one panel-shape check of the kernels: ``y[items, periods]`` with at least one period."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from sparecast.errors import MethodError

__all__ = ["as_panel"]


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
