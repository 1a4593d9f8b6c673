"""The single-process engine (sparecast.pipeline.engine.LOCAL): the same results as the
functions it wraps, and a method that cannot forecast the panel reported instead of raised."""

from __future__ import annotations

import numpy as np
import pytest
from polars.testing import assert_frame_equal
from utils.panels import make_panel

from sparecast.classify import classify
from sparecast.core import forecast_arrays
from sparecast.evaluate.backtest import backtest
from sparecast.pipeline.engine import LOCAL


def test_local_engine_is_the_plain_functions() -> None:
    rng = np.random.default_rng(0)
    panel = make_panel((rng.random((6, 60)) < 0.3) * rng.integers(1, 5, (6, 60)))
    assert_frame_equal(LOCAL.classify(panel, None), classify(panel))
    got = LOCAL.backtest(panel, h=7, methods=["sba", "ma"], n_windows=2)
    ref = backtest(panel, h=7, methods=["sba", "ma"], n_windows=2)
    assert_frame_equal(got.scores, ref.scores)
    steps: list[str] = []
    values, failed = LOCAL.forecast_all(panel, 7, ["sba", "ma"], {}, steps.append)
    assert failed == {} and steps == ["sba", "ma"] and list(values) == ["sba", "ma"]
    expected = forecast_arrays(panel, 7, ["sba", "ma"])
    for name in ("sba", "ma"):
        np.testing.assert_array_equal(values[name], expected[name])


def test_a_method_that_cannot_forecast_is_reported() -> None:
    """LightGBM needs more than one period of history: it is reported, the others forecast."""
    panel = make_panel(np.array([[1.0], [0.0], [2.0]]))
    values, failed = LOCAL.forecast_all(panel, 3, ["naive", "lightgbm"], {}, lambda n: None)
    assert list(values) == ["naive"] and list(failed) == ["lightgbm"]
    assert failed["lightgbm"]


def test_the_engine_shares_the_kernel_levels_between_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One method at a time, yet Croston's levels are computed once for croston, sba and
    robust (which takes SBA as a member), with the same forecasts as separate calls."""
    from sparecast.methods import _numba

    rng = np.random.default_rng(1)
    panel = make_panel((rng.random((8, 90)) < 0.2) * rng.integers(1, 6, (8, 90)))
    names = ["croston", "sba", "robust"]
    expected = {n: forecast_arrays(panel, 7, [n])[n] for n in names}
    calls = [0]
    kernel = _numba.croston_levels

    def counted(*args: object) -> object:
        calls[0] += 1
        return kernel(*args)

    monkeypatch.setattr(_numba, "croston_levels", counted)
    values, failed = LOCAL.forecast_all(panel, 7, names, {}, lambda _: None)
    assert failed == {} and calls[0] == 1
    for name in names:
        np.testing.assert_array_equal(values[name], expected[name])
