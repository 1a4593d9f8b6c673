"""The kernels' one panel-shape check."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.errors import ConfigError, MethodError
from sparecast.methods import baseline, intermittent
from sparecast.methods._check import as_panel, check_levels, check_param


def test_as_panel_keeps_or_converts_the_dtype() -> None:
    y = np.ones((2, 3), dtype=np.float32)
    assert as_panel(y) is y
    assert as_panel(y, np.float64).dtype == np.float64


@pytest.mark.parametrize("kernel", [baseline.naive, baseline.moving_average, intermittent.croston])
def test_every_kernel_raises_the_same_error(kernel) -> None:
    with pytest.raises(MethodError, match="2-D"):
        kernel(np.ones(3), 2)
    with pytest.raises(MethodError, match="no period"):
        kernel(np.ones((2, 0)), 2)


def test_check_param_names_method_parameter_and_range() -> None:
    check_param("ma", "window", 3, minimum=1, integer=True)
    check_param("ses", "alpha", np.float64(1.0), minimum=0, maximum=1, open_minimum=True)
    with pytest.raises(MethodError, match=r"method 'ma': parameter window must be an integer >= 1"):
        check_param("ma", "window", np.float64(3.0), minimum=1, integer=True)
    with pytest.raises(MethodError, match=r"parameter alpha must be in \(0, 1\], got 0"):
        check_param("ses", "alpha", 0, minimum=0, maximum=1, open_minimum=True)
    with pytest.raises(MethodError, match=r"must be >= 2, got 'x'"):
        check_param("m", "k", "x", minimum=2)
    with pytest.raises(MethodError, match=r"must be >= 1, got True"):
        check_param("m", "k", True, minimum=1)


def test_check_levels_raises_each_callers_error_type() -> None:
    assert check_levels([]).size == 0
    with pytest.raises(ConfigError, match="non-empty"):
        check_levels([], error=ConfigError, allow_empty=False)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        check_levels([0.5, 1.0], error=ValueError)
