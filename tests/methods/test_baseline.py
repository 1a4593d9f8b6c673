"""Baseline kernels against statsforecast, by hand, and by properties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparecast.methods import DEFAULT_METHODS, baseline, forecast_matrix

sf_models = pytest.importorskip("statsforecast.models")


def _panel(seed: int, n_items: int, n_periods: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.choice([0.02, 0.1, 0.4, 1.0], n_items)[:, None]
    y = np.where(
        rng.random((n_items, n_periods)) < p, rng.gamma(0.7, 5.0, (n_items, n_periods)), 0.0
    )
    y[0] = 0.0
    y[1, :-1] = 0.0
    return y


def _reference(model, y: np.ndarray, h: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([model.forecast(y=row, h=h)["mean"] for row in y])


@pytest.mark.parametrize("n_periods", [1, 5, 30, 365])
def test_kernels_equal_statsforecast(n_periods: int) -> None:
    y = _panel(n_periods, 60, n_periods)
    h = 9
    cases = [
        (baseline.naive(y, h), sf_models.Naive()),
        (baseline.seasonal_naive(y, h, season_length=7), sf_models.SeasonalNaive(season_length=7)),
        (baseline.ses(y, h, alpha=0.1), sf_models.SimpleExponentialSmoothing(alpha=0.1)),
        (baseline.ses(y, h, alpha=0.73), sf_models.SimpleExponentialSmoothing(alpha=0.73)),
    ]
    if n_periods >= 28:
        cases.append((baseline.moving_average(y, h, window=28), sf_models.WindowAverage(28)))
    for ours, model in cases:
        ref = _reference(model, y, h)
        if n_periods < 7 and isinstance(model, sf_models.SeasonalNaive):
            known = ~np.isnan(ref)  # statsforecast leaves unobserved season positions NaN
            np.testing.assert_allclose(ours[known], ref[known], rtol=1e-4, atol=1e-8)
            continue
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-8, err_msg=type(model).__name__)


def test_hand_computed() -> None:
    y = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]])
    assert baseline.naive(y, 2).tolist() == [[9.0, 9.0]]
    # season of 3: the last three values repeat
    assert baseline.seasonal_naive(y, 4, season_length=3).tolist() == [[7.0, 8.0, 9.0, 7.0]]
    assert baseline.moving_average(y, 1, window=4).tolist() == [[7.5]]
    # SES, alpha 0.5 on [2, 4, 8]: level 2 -> .5*2+.5*2 = 2 -> .5*4+.5*2 = 3 -> .5*8+.5*3 = 5.5
    assert baseline.ses(np.array([[2.0, 4.0, 8.0]]), 1, alpha=0.5).tolist() == [[5.5]]
    # short history: seasonal positions never observed take the last value
    assert baseline.seasonal_naive(np.array([[4.0, 5.0]]), 3, season_length=3).tolist() == [
        [5.0, 4.0, 5.0]
    ]


def test_float32_input_and_shape() -> None:
    y = _panel(3, 7, 40).astype(np.float32)
    for f in (baseline.naive, baseline.seasonal_naive, baseline.moving_average, baseline.ses):
        out = f(y, 5)
        assert out.shape == (7, 5) and out.dtype == np.float64


panels = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(1, 60)),
    elements=st.one_of(st.just(0.0), st.floats(0.0, 1e4)),
)


@settings(max_examples=60, deadline=None)
@given(panels, st.floats(0.01, 100.0))
def test_properties(y: np.ndarray, scale: float) -> None:
    for f in (baseline.naive, baseline.seasonal_naive, baseline.moving_average, baseline.ses):
        out = f(y, 4)
        assert np.isfinite(out).all()
        assert (out >= 0).all()
        np.testing.assert_allclose(f(y * scale, 4), out * scale, rtol=1e-9, atol=1e-9)


def test_zero_forecasts_nothing_and_is_registered() -> None:
    y = np.array([[0.0, 3.0, 1.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    out = baseline.zero(y, 4)
    assert out.shape == (2, 4) and out.dtype == np.float64 and not out.any()
    np.testing.assert_array_equal(forecast_matrix(y, 2, "zero"), np.zeros((2, 2)))
    assert "zero" not in DEFAULT_METHODS  # a backtest reference, not a router candidate
