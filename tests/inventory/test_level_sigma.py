"""Level uncertainty in the per-item mode: the sigma the calibration picks per target (by hand),
what the backtest predicts at the chosen factors, and one path for plan and evaluate-plan."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.config import load_settings
from sparecast.inventory.calibration import pick_level_sigma, targets_reached
from sparecast.inventory.decide import level_sigma_candidates, plan_policy
from sparecast.inventory.decisions import evaluate_plan
from sparecast.inventory.policy import level_mixture, order_quantity
from sparecast.inventory.simulate import CalibrationCurves, calibrated_outcome


def test_pick_level_sigma_keeps_the_cheapest_sigma_reaching_the_target() -> None:
    # sigma -> (backtest fill over items with history, stock value)
    reached_by_all = {0.0: (0.95, 100.0), 0.3: (0.95, 120.0), 0.6: (0.96, 150.0)}
    assert pick_level_sigma(reached_by_all, 0.95) == 0.0
    # sigma 0 falls short (every group at its cap): the cheaper of the two that reach it
    short_at_0 = {0.0: (0.92, 90.0), 0.3: (0.95, 140.0), 0.6: (0.95, 130.0)}
    assert pick_level_sigma(short_at_0, 0.95) == 0.6
    # equal stock: the smaller sigma
    assert pick_level_sigma({0.0: (0.95, 100.0), 0.3: (0.95, 100.0)}, 0.95) == 0.0
    # within the tolerance counts as reached
    assert pick_level_sigma({0.0: (0.94995, 100.0), 0.3: (0.95, 200.0)}, 0.95) == 0.0
    # none reaches it: the highest fill, ties to the smaller sigma
    none = {0.0: (0.90, 50.0), 0.3: (0.93, 80.0), 0.6: (0.93, 90.0), 1.0: (0.92, 99.0)}
    assert pick_level_sigma(none, 0.98) == 0.3
    with pytest.raises(ValueError):
        pick_level_sigma({}, 0.9)


def test_targets_reached_by_some_sigma_tried() -> None:
    # one calibration outcome per sigma tried: target -> (fill, stock value)
    at_0 = {0.9: (0.91, 10.0), 0.98: (0.95, 20.0)}
    at_03 = {0.9: (0.93, 12.0), 0.98: (0.9799, 30.0)}
    assert not targets_reached([at_0], [0.9, 0.98])
    assert targets_reached([at_0], [0.9])
    # 0.98 reached at 0.3 (within the tolerance), 0.9 at 0: all reached
    assert targets_reached([at_0, at_03], [0.9, 0.98])
    assert not targets_reached([at_0, {0.98: (0.97, 30.0)}], [0.9, 0.98])
    # a target no backtest measured (no item with history) gives no reason to go on
    assert targets_reached([at_0], [0.9, 0.95])


def test_calibrated_outcome_reads_the_curves_at_the_chosen_factors() -> None:
    # two groups with history at target 0.9 and one without (group 0, not counted); factor
    # grid 1 and 0.5; shrinkage 0 reads the achieved fill as measured
    curves = CalibrationCurves(
        keys=np.array([[0.0, 0.9], [1.0, 0.9], [2.0, 0.9]]),
        factors=np.array([1.0, 0.5]),
        achieved=np.array([[0.1, 0.2], [0.8, 0.9], [0.9, 0.96]]),
        items=np.array([3, 4, 5]),
        demand=np.array([10.0, 100.0, 300.0]),
        members=np.zeros((3, 12), dtype=bool),
        stock=np.array([[1.0, 2.0], [10.0, 20.0], [30.0, 40.0]]),
    )
    out = calibrated_outcome(curves, np.array([1.0, 1.0, 0.5]), shrinkage=0.0)
    fill, value = out[0.9]
    assert fill == pytest.approx((100 * 0.8 + 300 * 0.96) / 400)
    assert value == pytest.approx(10.0 + 40.0)
    # half way in log f between the two factors: half way along both curves
    fill, value = calibrated_outcome(curves, np.array([1.0, np.sqrt(0.5), 1.0]), 0.0)[0.9]
    assert fill == pytest.approx((100 * 0.85 + 300 * 0.9) / 400)
    assert value == pytest.approx(15.0 + 30.0)


def test_level_mixture_per_item_sigma() -> None:
    rng = np.random.default_rng(0)
    samples = rng.poisson(5.0, (3, 2000)).astype(np.float64)
    ints = np.array([True, False, True])
    per_item = level_mixture(samples, np.array([0.0, 0.5, 0.5]), ints, seed=4)
    # an item at sigma 0 is unchanged; the others widen, keeping their mean
    np.testing.assert_array_equal(per_item[0], samples[0])
    assert per_item[1].std() > samples[1].std() * 1.2
    assert abs(per_item[1].mean() - samples[1].mean()) < 0.4
    # an item's factors do not depend on the other items: a chunk of items gets what the
    # whole panel gets (the Dask planner plans per chunk)
    sig = np.array([0.3, 0.5, 0.8])
    whole = level_mixture(samples, sig, ints, seed=4)
    np.testing.assert_array_equal(level_mixture(samples[1:], sig[1:], ints[1:], 4), whole[1:])
    np.testing.assert_array_equal(level_mixture(samples[2:], sig[2:], ints[2:], 4), whole[2:])
    # one sigma for all is the same as that sigma given per item
    np.testing.assert_array_equal(
        level_mixture(samples, 0.5, ints, seed=4),
        level_mixture(samples, np.full(3, 0.5), ints, seed=4),
    )
    with pytest.raises(Exception, match="level sigma"):
        level_mixture(samples, np.array([0.0, -0.1, 0.2]), ints)


def test_level_sigma_candidates_stop_at_the_first_step_gaining_under_half_a_point() -> None:
    # sigma -> (backtest fill over items with history, stock value), as in `sparecast demo`'s
    # 90% tier: out of reach at every sigma, 0.1-0.3 points a step for more stock each
    flat = {0.0: (0.8841, 451.0), 0.3: (0.8874, 483.0), 0.6: (0.8894, 573.0), 1.0: (0.8906, 760.0)}
    assert list(level_sigma_candidates(flat, 0.90)) == [0.0]
    assert pick_level_sigma(level_sigma_candidates(flat, 0.90), 0.90) == 0.0
    # oil at 98%: each step gains about 1-2 points, the last reaches the target
    steep = {0.0: (0.9488, 18.8), 0.3: (0.9582, 21.1), 0.6: (0.9775, 28.0), 1.0: (0.9800, 37.8)}
    assert list(level_sigma_candidates(steep, 0.98)) == [0.0, 0.3, 0.6, 1.0]
    assert pick_level_sigma(level_sigma_candidates(steep, 0.98), 0.98) == 1.0
    # a step reaching the target counts even when it gains little; a stall excludes the rest
    assert list(level_sigma_candidates({0.0: (0.9776, 1.0), 0.3: (0.98, 1.1)}, 0.98)) == [0, 0.3]
    stall = {0.0: (0.90, 1.0), 0.3: (0.93, 2.0), 0.6: (0.932, 3.0), 1.0: (0.96, 4.0)}
    assert list(level_sigma_candidates(stall, 0.95)) == [0.0, 0.3]
    assert list(level_sigma_candidates(stall, 0.95, min_gain=0.001)) == [0.0, 0.3, 0.6, 1.0]


def _monthly(growth: float, n: int = 40, months: int = 60, seed: int = 3) -> np.ndarray:
    """Poisson demand whose level grows by ``growth`` over the history (1: stationary)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(1.0, 4.0, n)[:, None] * growth ** (np.arange(months) / months)
    return rng.poisson(level).astype(float)


def _note(d: object) -> str:
    return next(x for x in d.notes if x.startswith("level uncertainty"))  # type: ignore[attr-defined]


def test_the_per_item_calibration_picks_a_level_sigma_per_target() -> None:
    lead, q = [np.array([2.0])] * 40, np.full(40, 6.0)
    grid = {"n_samples": 300, "item_level_sigmas": [0.0, 0.6, 1.0]}
    off = load_settings(inventory={"n_samples": 300, "item_level_sigmas": [0.0]})
    # stationary demand: sigma 0 reaches the target, so the search stops there (one
    # calibration backtest, as without level uncertainty)
    y = _monthly(1.0)
    d = plan_policy(y, lead, 0.95, q, load_settings(inventory=grid), period_days=30.0)
    assert "0.6, 1 not tried: every target reached" in _note(d)
    assert "target 0.9500: level sigma 0 (0: fill " in _note(d)
    assert "; 0.6: fill" not in _note(d)
    plain = plan_policy(y, lead, 0.95, q, off, period_days=30.0)
    np.testing.assert_array_equal(d.policy.reorder_point, plain.policy.reorder_point)
    assert not any(x.startswith("level uncertainty") for x in plain.notes)
    # demand growing 8x over the history: the holdout outgrows the fit part, so the
    # stationary samples cannot reach 98% at any nominal target and a sigma above 0 is planned
    y = _monthly(8.0)
    d = plan_policy(y, lead, 0.98, q, load_settings(inventory=grid), period_days=30.0)
    note = _note(d)
    assert "target 0.9800: level sigma 0 (" not in note
    # the search went on past sigma 0 (which fell short of 98%)
    assert "(0: fill " in note and "; 0.6: fill " in note
    at_zero = plan_policy(y, lead, 0.98, q, off, period_days=30.0)
    assert d.policy.reorder_point.sum() > at_zero.policy.reorder_point.sum()
    # not calibrated: item_level_sigma as given
    fixed = load_settings(inventory={"n_samples": 300, "calibrate": False,
                                     "item_level_sigma": 0.6})  # fmt: skip
    wide = plan_policy(y, lead, 0.98, q, fixed, period_days=30.0)
    flat = plan_policy(y, lead, 0.98, q, load_settings(inventory={"n_samples": 300,
                       "calibrate": False}), period_days=30.0)  # fmt: skip
    assert wide.lead_time_demand.samples.std() > flat.lead_time_demand.samples.std()


def test_evaluate_plan_sets_the_plan_policy_with_its_level_sigma() -> None:
    # the decision backtest's sparecast policy is plan_policy on the training cut, the
    # per-target level sigma included
    y = _monthly(6.0, n=30, months=60, seed=5)
    lead = [np.array([2.0])] * 30
    settings = load_settings(
        inventory={
            "n_samples": 200,
            "item_level_sigmas": [0.0, 1.0],
            "aggregate_level_sigmas": [0.0],
        }  # fmt: skip
    )
    bt = evaluate_plan(y, lead, targets=[0.98], settings=settings, period_days=30.0,
                       textbook_ladder=[0.9], item_ladder=[0.9])  # fmt: skip
    train = y[:, : bt.split]
    inv = settings.inventory
    q = order_quantity(train.mean(axis=1), inv.order_cover_days / 30.0, 1.0, 1.0)
    d = plan_policy(train, lead, 0.98, q, settings, period_days=30.0)
    spare = bt.per_item.filter(bt.per_item["policy"] == "sparecast")
    np.testing.assert_array_equal(spare["reorder_point"].to_numpy(), d.policy.reorder_point)
    assert any("level uncertainty" in x for x in bt.notes)
