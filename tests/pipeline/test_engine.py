"""The single-process engine (sparecast.pipeline.engine.LOCAL): the same results as the
functions it wraps, and a method that cannot forecast the panel reported instead of raised."""

from __future__ import annotations

import numpy as np
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
