"""Per-period demand quantiles around a point forecast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from sparecast.errors import MethodError
from sparecast.methods.quantiles import forecast_quantiles


def test_forecast_quantiles_by_hand() -> None:
    # p = 1/2, sizes all 1 (cv2 0): forecast 1 -> size mean 2 = 1 + Poisson(1)
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    q = forecast_quantiles(y, np.array([[1.0, 0.5]]), [0.4, 0.6, 0.9])
    # level 0.4 <= 1 - p: zero; 0.6 -> Poisson(1) at 0.2 = 0 -> 1; 0.9 -> at 0.8 = 2 -> 3
    assert q[0, 0].tolist() == [0.0, 1.0, 3.0]
    # forecast 0.5 = p x 1: size exactly 1 -> Bernoulli(1/2)
    assert q[0, 1].tolist() == [0.0, 1.0, 1.0]


def test_forecast_quantiles_small_forecast_is_bernoulli() -> None:
    y = np.array([[2.0, 0.0, 0.0, 0.0]])  # p = 1/4
    q = forecast_quantiles(y, np.array([[0.1]]), [0.85, 0.95])
    # size would be 0.4 < 1: demand 1 with probability 0.1
    assert q[0, 0].tolist() == [0.0, 1.0]


def test_forecast_quantiles_mean_is_the_forecast() -> None:
    rng = np.random.default_rng(8)
    y = np.where(rng.random((3, 300)) < [[0.1], [0.5], [0.9]], 1 + rng.poisson(4, (3, 300)), 0)
    f = np.array([[0.6], [2.0], [7.0]])
    levels = (np.arange(1, 2000) - 0.5) / 2000
    q = forecast_quantiles(y.astype(float), f, levels)
    np.testing.assert_allclose(q[:, 0, :].mean(axis=1), f[:, 0], rtol=0.05)


def test_forecast_quantiles_no_history_is_poisson() -> None:
    q = forecast_quantiles(np.zeros((2, 5)), np.array([[3.0], [0.0]]), [0.5, 0.95])
    assert q[0, 0].tolist() == stats.poisson.ppf([0.5, 0.95], 3.0).tolist()
    assert q[1, 0].tolist() == [0.0, 0.0]


def test_forecast_quantiles_shape_and_errors() -> None:
    y = np.ones((2, 10))
    assert forecast_quantiles(y, np.ones((2, 7)), [0.5, 0.9]).shape == (2, 7, 2)
    with pytest.raises(MethodError, match="2 items"):
        forecast_quantiles(y, np.ones((3, 7)), [0.5])
    with pytest.raises(MethodError, match="levels"):
        forecast_quantiles(y, np.ones((2, 7)), [1.0])


@settings(max_examples=40, deadline=None)
@given(
    y=arrays(np.float64, (2, 30), elements=st.integers(0, 20).map(float)),
    f=arrays(np.float64, (2, 3), elements=st.floats(0.0, 50.0)),
)
def test_forecast_quantiles_properties(y: np.ndarray, f: np.ndarray) -> None:
    q = forecast_quantiles(y, f, [0.1, 0.5, 0.9, 0.99])
    assert (q >= 0).all()
    assert (q == np.round(q)).all()
    assert (np.diff(q, axis=2) >= 0).all()


def test_forecast_quantiles_level_weighting_follows_recent_occurrence() -> None:
    # demand (size 1) every period in the first half, every 10th period in the recent half
    y = np.zeros((1, 200))
    y[0, :100] = 1.0
    y[0, 100::10] = 1.0
    f = np.array([[0.5]])
    # whole history: p = 0.55, size 0.5 / 0.55 < 1 -> one unit with probability 0.5
    assert forecast_quantiles(y, f, [0.4, 0.6, 0.95])[0, 0].tolist() == [0.0, 1.0, 1.0]
    # recent weights: p below 0.1, so the same mean comes as rarer, larger demands
    recent = forecast_quantiles(y, f, [0.6, 0.95], level_alpha=0.1)[0, 0]
    assert recent[0] == 0.0
    assert recent[1] > 1.0
    with pytest.raises(MethodError, match="level_alpha"):
        forecast_quantiles(y, f, [0.5], level_alpha="recent")
