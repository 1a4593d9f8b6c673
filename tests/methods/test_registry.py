"""The method registry (sparecast.methods): registering panel methods from a layer above."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.errors import MethodError
from sparecast.methods import METHODS, Method, baseline, get_method, register_method
from sparecast.selection.router import hybrid_forecast


def test_hybrid_is_registered_by_the_selection_package() -> None:
    m = get_method("hybrid")
    assert m.kernel is hybrid_forecast and m.needs_panel


def test_register_method_adds_and_refuses_a_taken_name() -> None:
    extra = Method("_test_extra", baseline.naive, "naive under another name")
    try:
        register_method(extra)
        register_method(extra)  # the same method again: no error
        assert get_method("_test_extra") is extra
        with pytest.raises(MethodError, match="already registered"):
            register_method(Method("_test_extra", baseline.ses, "another one"))
    finally:
        METHODS.pop("_test_extra", None)


def test_ma_default_window_is_the_kernels() -> None:
    assert get_method("ma").defaults == {"window": baseline.MA_WINDOW}
    y = np.arange(40, dtype=float)[None, :]
    np.testing.assert_allclose(baseline.moving_average(y, 1), y[:, -baseline.MA_WINDOW :].mean())
