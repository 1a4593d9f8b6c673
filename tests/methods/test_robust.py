"""Robust combinations and the obsolescence decay: hand-computed factors, the median and trimmed
mean of the members against statsforecast's models, bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sparecast.errors import MethodError
from sparecast.methods import DEFAULT_METHODS, forecast_matrix
from sparecast.methods.robust import (
    COMBINATION_MEMBERS,
    combo_median,
    combo_trimmed,
    decay_factor,
    robust,
)


def _intermittent(n_items: int = 40, n: int = 60, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.where(rng.random((n_items, n)) < 0.25, rng.integers(1, 8, (n_items, n)), 0)
    y[3, 30:] = 0  # an item that died halfway
    y[4] = 0  # an item without demand
    return y.astype(np.float64)


def test_decay_factor_by_hand() -> None:
    y = np.array(
        [
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # p = 10 / 1, s = 9: not overdue -> 1
            [0, 0, 1, 0, 1, 0, 0, 0, 0, 0],  # p = 8 / 2 = 4, s = 5: 1.25 intervals
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # no demand -> 1
            [2, 0, 3, 0, 0, 0, 0, 0, 0, 0],  # p = 10 / 2 = 5, s = 7: 1.4 intervals
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 4],  # p = 1, s = 0
        ],
        dtype=float,
    )
    expected = [1.0, math.exp(-0.5 * 0.25), 1.0, math.exp(-0.5 * 0.4), 1.0]
    np.testing.assert_allclose(decay_factor(y), expected, rtol=1e-12)
    np.testing.assert_allclose(decay_factor(y, 2.0)[1], math.exp(-2.0 * 0.25), rtol=1e-12)
    np.testing.assert_array_equal(decay_factor(y, 0.0), np.ones(5))


def test_median_and_trimmed_mean_of_the_statsforecast_members() -> None:
    from statsforecast import StatsForecast
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        CrostonSBA,
        SimpleExponentialSmoothing,
    )

    y = _intermittent()
    h = 4
    n_items, n = y.shape
    df = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(n_items), n),
            "ds": np.tile(np.arange(1, n + 1), n_items),
            "y": y.reshape(-1),
        }
    )
    models = [SimpleExponentialSmoothing(alpha=0.1), CrostonSBA(), ADIDA(), IMAPA()]
    sf = StatsForecast(models=models, freq=1, n_jobs=1).forecast(df=df, h=h)
    sf = sf.sort_values(["unique_id", "ds"])
    cols = ["SES", "CrostonSBA", "ADIDA", "IMAPA"]
    theirs = [np.maximum(sf[c].to_numpy().reshape(n_items, h), 0.0) for c in cols]
    # TSB with optimised alphas has no statsforecast twin: ours, tested on its own elsewhere
    stacked = np.stack([*theirs, forecast_matrix(y, h, "tsb")])
    np.testing.assert_allclose(combo_median(y, h), np.median(stacked, axis=0), atol=1e-5)
    ordered = np.sort(stacked, axis=0)
    np.testing.assert_allclose(combo_trimmed(y, h), ordered[1:4].mean(axis=0), atol=1e-5)


def test_robust_is_the_decayed_median() -> None:
    y = _intermittent()
    expected = combo_median(y, 3) * decay_factor(y, 0.5)[:, None]
    np.testing.assert_allclose(robust(y, 3), expected, rtol=1e-12)
    np.testing.assert_allclose(forecast_matrix(y, 3, "robust"), expected, rtol=1e-12)
    # the dead item is scaled down, the item without demand forecasts 0
    assert robust(y, 3)[3, 0] < combo_median(y, 3)[3, 0]
    np.testing.assert_array_equal(robust(y, 3)[4], 0.0)
    assert "robust" in DEFAULT_METHODS
    assert COMBINATION_MEMBERS == ("ses", "sba", "tsb", "adida", "imapa")


def test_bad_arguments_name_the_method() -> None:
    y = _intermittent(5, 20)
    with pytest.raises(MethodError, match="combo_median members must be at least 3"):
        combo_median(y, 2, members=("ses", "sba"))
    with pytest.raises(MethodError, match="nope"):
        combo_trimmed(y, 2, members=("ses", "sba", "nope"))
    with pytest.raises(MethodError, match="decay"):
        robust(y, 2, decay=-1.0)
