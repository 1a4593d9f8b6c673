"""The plan's calibration (one code path for plan and evaluate-plan): when it runs, what it
returns."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.config import load_settings
from sparecast.inventory.calibration import calibrated_targets
from sparecast.inventory.simulate import frequency_groups


def _monthly(n: int = 120, months: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.2, 4.0, n)[:, None]
    return rng.poisson(rate, (n, months)).astype(float)


def test_a_monthly_history_of_56_months_calibrates() -> None:
    # issue 12: 56 months could not calibrate with the fixed minimum of 90 periods. Lead times
    # of 1-6 months: protection intervals of 2-7 months; the holdout (18 months) holds two for
    # every item
    y = _monthly()
    lts = [np.array([float(1 + i % 6)]) for i in range(y.shape[0])]
    q = np.maximum(np.round(y.mean(axis=1)), 1.0)
    settings = load_settings(inventory={"n_samples": 200})
    cal = calibrated_targets(y, lts, np.full(120, 0.95), q, settings, period_days=30.44)
    assert cal.calibrated and cal.holdout == 18 and cal.measured == 120
    assert (cal.nominal >= 0.95).all() and (cal.nominal < 1).all()
    assert "targets calibrated on the last 18 periods" in cal.note
    # one nominal target per (frequency group, target)
    groups = frequency_groups(y[:, : 56 - 18])
    for g in np.unique(groups):
        assert np.unique(cal.nominal[groups == g]).size == 1
    # a fixed minimum on top still applies
    fixed = load_settings(inventory={"calibration_min_periods": 60, "n_samples": 200})
    cal = calibrated_targets(y, lts, np.full(120, 0.95), q, fixed, period_days=30.44)
    assert not cal.calibrated and (cal.nominal == 0.95).all()
    assert "56 periods of history, fewer than 60" in cal.note


def test_lead_times_longer_than_the_holdout_allows_are_not_calibrated() -> None:
    # 56 months, holdout 18: an item is measured when 2 x ceil(L + 1) <= 18, i.e. L <= 8.
    # 20% of the items with L = 3, the rest 12 months: under a quarter measured
    y = _monthly(n=100)
    lts = [np.array([3.0 if i < 20 else 12.0]) for i in range(100)]
    settings = load_settings(inventory={"n_samples": 200})
    cal = calibrated_targets(y, lts, np.full(100, 0.9), np.ones(100), settings)
    assert not cal.calibrated
    assert "two protection intervals" in cal.note and "20%" in cal.note
    # 30% measured: calibrated on those, the others simulated but not counted
    lts = [np.array([3.0 if i < 30 else 12.0]) for i in range(100)]
    cal = calibrated_targets(y, lts, np.full(100, 0.9), np.ones(100), settings)
    assert cal.calibrated and cal.measured == 30


def test_short_histories_are_not_calibrated() -> None:
    y = _monthly(n=50, months=11)
    cal = calibrated_targets(y, np.ones(50), np.full(50, 0.9), np.ones(50), load_settings())
    assert not cal.calibrated and "fewer than 12" in cal.note


def test_the_plan_calls_the_public_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    import sparecast.inventory.decide as decide_module
    import sparecast.inventory.plan as plan_module

    # compute_plan and evaluate_plan both set their policy with decide.plan_policy
    assert plan_module.plan_policy is decide_module.plan_policy
    assert decide_module.calibrated_targets is calibrated_targets
    assert not hasattr(plan_module, "_calibrated_targets")
