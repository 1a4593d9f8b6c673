"""The smoothing weight of the demand level."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.errors import MethodError
from sparecast.methods.level_alpha import resolve_level_alpha, select_level_alpha


def test_select_level_alpha_stationary_vs_shift() -> None:
    rng = np.random.default_rng(7)
    flat = rng.poisson(2.0, (200, 400)).astype(float)
    assert select_level_alpha(flat, 20) <= 0.01
    shift = flat.copy()
    shift[:, 200:] *= 3.0  # the level triples half-way
    assert select_level_alpha(shift, 20) >= 0.02


def test_resolve_level_alpha() -> None:
    y = np.ones((2, 40))
    assert resolve_level_alpha(0.1, y, lambda: 5) == 0.1
    assert resolve_level_alpha("auto", y, lambda: 5) == select_level_alpha(y, 5)
    with pytest.raises(MethodError, match="level_alpha"):
        resolve_level_alpha("recent", y, lambda: 5)
