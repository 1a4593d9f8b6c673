"""The one panel-shape check of the kernels (``y[items, periods]`` with at least one period),
of a demand history and of quantile levels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from sparecast.errors import MethodError

__all__ = ["as_panel", "as_history", "check_levels", "check_param"]


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


def check_param(
    method: str,
    name: str,
    value: Any,
    *,
    minimum: float,
    maximum: float | None = None,
    open_minimum: bool = False,
    integer: bool = False,
) -> None:
    """A MethodError naming the method, the kernel parameter and its valid range unless
    ``value`` lies in it: ``>= minimum`` (``> minimum`` with ``open_minimum``), ``<= maximum``
    when given, and a whole number with ``integer``."""
    if maximum is not None:
        valid = f"in {'(' if open_minimum else '['}{minimum:g}, {maximum:g}]"
    else:
        valid = f"{'>' if open_minimum else '>='} {minimum:g}"
    if integer:
        valid = f"an integer {valid}"
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    ok = (
        is_number
        and (not integer or isinstance(value, (int, np.integer)))
        and (value > minimum if open_minimum else value >= minimum)
        and (maximum is None or value <= maximum)
    )
    if not ok:
        raise MethodError(f"method {method!r}: parameter {name} must be {valid}, got {value!r}")


def as_history(y: np.ndarray) -> np.ndarray:
    """A demand history for the distributions: float64 ``[items, periods]``, finite, negative
    net returns as zero demand."""
    arr = as_panel(y, np.float64, needs="a demand distribution")
    if not np.isfinite(arr).all():
        raise MethodError("y contains NaN or infinite values; fill missing periods with 0")
    return np.maximum(arr, 0.0)


def check_levels(
    levels: Sequence[float] | np.ndarray,
    *,
    error: type[Exception] = MethodError,
    allow_empty: bool = True,
) -> np.ndarray:
    """Quantile levels as float64 ``[levels]``: the one check of quantile levels (kernels,
    calibration, configuration). Raises ``error`` (each caller's own type) unless 1-D, every
    level in (0, 1) and, with ``allow_empty=False``, at least one level."""
    lv = np.asarray(levels, dtype=np.float64)
    empty = lv.ndim == 1 and lv.size == 0 and not allow_empty
    if lv.ndim != 1 or empty or ((lv <= 0) | (lv >= 1)).any():
        what = "a 1-D list" if allow_empty else "a non-empty 1-D list"
        raise error(f"quantile levels must be {what} in (0, 1), got {levels!r}")
    return lv
