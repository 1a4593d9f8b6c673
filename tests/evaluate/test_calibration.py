"""Quantile calibration: coverage and pinball by hand and against utilsforecast, and coverage on
data drawn from a known distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparecast.errors import ConfigError
from sparecast.evaluate.calibration import pinball_loss, quantile_coverage, rolling_calibration


def test_coverage_by_hand() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    q = np.array([[2.5, 3.0]] * 4)
    assert quantile_coverage(actual, q).tolist() == [0.5, 0.75]


def test_pinball_by_hand() -> None:
    # level 0.9, quantile 3: actual 5 -> 0.9 * 2; actual 1 -> 0.1 * 2
    got = pinball_loss(np.array([5.0, 1.0]), np.array([[3.0], [3.0]]), [0.9])
    assert got[0] == pytest.approx((1.8 + 0.2) / 2)


def test_pinball_matches_utilsforecast() -> None:
    losses = pytest.importorskip("utilsforecast.losses")
    rng = np.random.default_rng(0)
    actual = rng.poisson(3.0, (4, 25)).astype(float)
    q = rng.poisson(4.0, (4, 25)).astype(float)
    df = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(4), 25),
            "ds": np.tile(np.arange(25), 4),
            "y": actual.ravel(),
            "m-q80": q.ravel(),
        }
    )
    ref = losses.quantile_loss(df, models={"m": "m-q80"}, q=0.8)
    ours = pinball_loss(actual, q[..., None], [0.8])[0]
    assert ours == pytest.approx(float(ref["m"].mean()))


def test_coverage_is_nominal_on_poisson_data() -> None:
    # a dense Poisson(20) series is nearly continuous: coverage should match the level
    rng = np.random.default_rng(1)
    y = rng.poisson(20.0, (400, 160)).astype(float)
    res = rolling_calibration(
        y, np.full(400, 9.0), levels=[0.5, 0.8, 0.9, 0.95], h=10, n_windows=3, n_samples=2000
    )
    lt = res.lead_time.to_dicts()
    for row in lt:
        assert row["coverage"] == pytest.approx(row["level"], abs=0.04)
        assert row["n"] == 1200
    pp = res.per_period.to_dicts()
    for row in pp:
        assert row["coverage"] == pytest.approx(row["level"], abs=0.05)
        assert row["n"] == 400 * 10 * 3
    # coverage rises with the level
    assert [r["coverage"] for r in lt] == sorted(r["coverage"] for r in lt)


def test_coverage_on_intermittent_compound_data() -> None:
    # Bernoulli(0.3) occurrences of sizes 1 + Poisson(2): the compound model is the truth
    rng = np.random.default_rng(2)
    occ = rng.random((600, 200)) < 0.3
    y = np.where(occ, 1 + rng.poisson(2.0, (600, 200)), 0).astype(float)
    res = rolling_calibration(
        y, np.full(600, 14.0), levels=[0.8, 0.9, 0.95], h=14, n_windows=2, n_samples=2000
    )
    for row in res.lead_time.to_dicts():
        # discrete: coverage at least nominal, and not far above
        assert row["level"] - 0.02 <= row["coverage"] <= row["level"] + 0.05


def test_without_lead_times_only_per_period() -> None:
    y = np.ones((3, 60))
    res = rolling_calibration(y, None, h=7, n_windows=2)
    assert res.lead_time["n"].to_list() == [0] * 5
    assert res.per_period.height == 5


def test_errors() -> None:
    with pytest.raises(ConfigError, match="too short"):
        rolling_calibration(np.ones((2, 10)), None, h=7)
    with pytest.raises(ConfigError, match="levels"):
        rolling_calibration(np.ones((2, 60)), None, levels=[1.2], h=7)
