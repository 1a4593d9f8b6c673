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


def test_select_level_alpha_large_panel_uses_an_even_sample_of_items_with_demand() -> None:
    # 12,000 items (float32, as panels are): every second item has demand, drifting upward on
    # half of those; the choice must be that of the 5,000 evenly spaced items with demand
    rng = np.random.default_rng(3)
    n, t = 12_000, 60
    trend = np.where(np.arange(n)[:, None] % 4 == 0, np.linspace(0.2, 3.0, t), 1.0)
    y = rng.poisson(trend).astype(np.float32)
    y[1::2] = 0.0
    active = np.flatnonzero(y.sum(axis=1) > 0)
    sample = active[np.linspace(0, active.size - 1, 5000).round().astype(np.int64)]
    expected = select_level_alpha(y[sample].astype(np.float64), 10)
    assert select_level_alpha(y, 10) == expected
