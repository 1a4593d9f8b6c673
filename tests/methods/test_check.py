"""The kernels' one panel-shape check."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.errors import MethodError
from sparecast.methods import baseline, intermittent
from sparecast.methods._check import as_panel


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
