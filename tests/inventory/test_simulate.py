"""Inventory simulation: deterministic cases computed by hand, properties, the comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparecast.errors import ConfigError
from sparecast.inventory.simulate import (
    TARGET_FACTORS,
    CalibrationCurves,
    calibrate_targets,
    compare_policies,
    cost_aware_factors,
    frequency_groups,
    nominal_targets,
    simulate_policy,
    solve_factors,
)


def test_constant_demand_no_stockout_by_hand() -> None:
    # demand 1/day, lead time 3, s = 4, Q = 5, start with S = 9 on hand.
    # on hand at the end of days 0..6: 8 7 6 5 4 3 2 (order on day 4 arrives at the end of 7),
    # then cycles of 6 5 4 3 2 (orders on days 4, 9, 14, 19; receipts on 7, 12, 17)
    sim = simulate_policy(np.ones((1, 20)), np.array([4.0]), np.array([5.0]), np.array([3.0]))
    r = sim.per_item.row(0, named=True)
    assert r["fill_rate"] == 1.0
    assert r["demand"] == 20 and r["filled"] == 20
    assert r["n_orders"] == 4
    assert r["cycles"] == 3 and r["cycle_service_level"] == 1.0
    assert r["stockout_days"] == 0 and r["stockout_demand_days"] == 0
    assert r["avg_on_hand"] == pytest.approx(90 / 20)


def test_constant_demand_with_stockouts_by_hand() -> None:
    # s = 1, Q = 5, L = 3, start with 6: on hand 5 4 3 2 1 (order day 4 -> end of day 7),
    # day 5: 0, day 6: short (net -1), day 7: short, +5 -> 3; 2, 1 (order day 9 -> day 12),
    # day 10: 0, day 11: short (-1), day 12: short, +5 -> 3
    sim = simulate_policy(
        np.ones((1, 13)), np.array([1.0]), np.array([5.0]), np.array([3.0]), unit_cost=2.0
    )
    r = sim.per_item.row(0, named=True)
    assert r["filled"] == 9 and r["fill_rate"] == pytest.approx(9 / 13)
    assert r["stockout_demand_days"] == 4
    assert r["stockout_days"] == 2  # days 6 and 11 end with a backorder
    assert r["cycles"] == 2 and r["cycle_service_level"] == 0.0
    assert r["n_orders"] == 2
    assert r["avg_on_hand"] == pytest.approx(24 / 13)
    assert r["avg_on_hand_value"] == pytest.approx(48 / 13)
    t = sim.totals
    assert t["fill_rate"] == pytest.approx(9 / 13)
    assert t["stockout_rate"] == pytest.approx(4 / 13)


def test_warmup_is_not_measured() -> None:
    sim = simulate_policy(
        np.ones((1, 13)), np.array([1.0]), np.array([5.0]), np.array([3.0]), warmup=8
    )
    r = sim.per_item.row(0, named=True)
    # days 8..12: on hand 2 1 0 (short) (short, +5 -> 3): demand 5, filled 3
    assert r["demand"] == 5 and r["filled"] == 3
    assert r["avg_on_hand"] == pytest.approx((2 + 1 + 0 + 0 + 3) / 5)
    assert r["n_orders"] == 1  # day 9


def test_periodic_review_by_hand() -> None:
    # R = 2, s = 2, S = 5, L = 1, start with 5; reviews on even days.
    # day 0: 4; 1: 3; 2: 2 -> order 3 (end of 3); 3: 1 + 3 = 4; 4: 3; 5: 2; 6: 1 -> order 4;
    # 7: 0 + 4 = 4
    sim = simulate_policy(
        np.ones((1, 8)),
        np.array([2.0]),
        np.array([3.0]),
        np.array([1.0]),
        policy="RsS",
        review_period=2,
        order_up_to=np.array([5.0]),
    )
    r = sim.per_item.row(0, named=True)
    assert r["n_orders"] == 2
    assert r["fill_rate"] == 1.0
    assert r["avg_on_hand"] == pytest.approx((4 + 3 + 2 + 4 + 3 + 2 + 1 + 4) / 8)


def test_order_rounding_in_the_simulation() -> None:
    # MOQ 12 with s = 0, Q = 1: every order is 12 units
    sim = simulate_policy(
        np.ones((1, 30)), np.array([0.0]), np.array([1.0]), np.array([2.0]), moq=12.0
    )
    r = sim.per_item.row(0, named=True)
    # start with 1: day 0 -> 0, order 12 arrives at the end of day 2; days 1, 2 short, 2 -> 10;
    # then 12-day cycles: on hand reaches 0 on days 12 and 24 (orders), short on 13, 14, 25, 26
    assert r["n_orders"] == 3
    assert r["stockout_demand_days"] == 6
    assert r["filled"] == 24


def test_returns_are_not_negative_demand() -> None:
    y = np.array([[1.0, -5.0, 1.0]])
    sim = simulate_policy(y, np.array([0.0]), np.array([3.0]), np.array([1.0]))
    assert sim.per_item["demand"][0] == 2.0


@settings(max_examples=40, deadline=None)
@given(
    y=arrays(np.float64, (3, 60), elements=st.integers(0, 6).map(float)),
    s=st.integers(0, 10),
    k=st.integers(1, 5),
    lead=st.integers(1, 9),
)
def test_higher_reorder_point_never_serves_less(y: np.ndarray, s: int, k: int, lead: int) -> None:
    # with fixed lead times, s + k shifts the inventory by k at all times
    q = np.full(3, 4.0)
    lt = np.full(3, float(lead))
    a = simulate_policy(y, np.full(3, float(s)), q, lt)
    b = simulate_policy(y, np.full(3, float(s + k)), q, lt)
    fa = a.per_item["filled"].to_numpy()
    fb = b.per_item["filled"].to_numpy()
    assert (fb >= fa).all()
    assert (b.per_item["avg_on_hand"].to_numpy() >= a.per_item["avg_on_hand"].to_numpy()).all()
    np.testing.assert_array_equal(a.per_item["n_orders"], b.per_item["n_orders"])
    fr = a.per_item["fill_rate"].drop_nulls().to_numpy()
    assert ((fr >= 0) & (fr <= 1)).all()


def test_random_lead_times_are_drawn_per_order() -> None:
    y = np.ones((1, 400))
    slow = simulate_policy(y, np.array([3.0]), np.array([5.0]), [np.array([2.0, 12.0])], seed=1)
    fixed = simulate_policy(y, np.array([3.0]), np.array([5.0]), np.array([2.0]), seed=1)
    long = simulate_policy(y, np.array([3.0]), np.array([5.0]), np.array([12.0]), seed=1)
    assert fixed.totals["fill_rate"] == 1.0  # s = 3 covers a 2-day lead time + 1
    # a mix of 2 and 12 days serves more than 12 days always and less than 2 days always
    assert long.totals["fill_rate"] < slow.totals["fill_rate"] < 1.0
    again = simulate_policy(y, np.array([3.0]), np.array([5.0]), [np.array([2.0, 12.0])], seed=1)
    assert again.totals == slow.totals


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="policy"):
        simulate_policy(np.ones((1, 5)), [1.0], [1.0], np.array([1.0]), policy="x")
    with pytest.raises(ConfigError, match="warmup"):
        simulate_policy(np.ones((1, 5)), [1.0], [1.0], np.array([1.0]), warmup=5)
    with pytest.raises(ConfigError, match="order_quantity"):
        simulate_policy(np.ones((1, 5)), [1.0], [0.0], np.array([1.0]))


def test_frequency_groups() -> None:
    y = np.zeros((4, 100))
    y[1, :5] = 1  # 5%
    y[2, :20] = 1  # 20%
    y[3] = 1
    assert frequency_groups(y).tolist() == [0, 2, 3, 4]  # 0: no demand, its own group
    y[0, 0] = 1  # 1%: the sparse group, not the no-demand one
    assert frequency_groups(y).tolist() == [1, 2, 3, 4]


def _poisson_panel(n: int = 60, days: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.3, 3.0, n)[:, None]
    return rng.poisson(rate, (n, days)).astype(float)


def test_distribution_policy_meets_its_target_on_stationary_demand() -> None:
    y = _poisson_panel()
    table, policies = compare_policies(
        y, 250, np.full(60, 6.0), 0.95, order_cover_periods=10, warmup=30, calibrate=False
    )
    rows = {r["policy"]: r for r in table.to_dicts()}
    assert set(policies) == {"normal", "distribution"}
    assert rows["distribution"]["fill_rate"] == pytest.approx(0.95, abs=0.015)
    assert rows["distribution"]["demand_share_without_history"] == 0.0


def test_calibrate_targets_stays_near_the_target_on_stationary_demand() -> None:
    # Poisson demand, 150 periods to fit: little estimation error, so the nominal target stays
    # close to the target (it may now go below it when the backtest overshoots)
    y = _poisson_panel(days=300)
    q = np.maximum(np.round(y.mean(axis=1) * 10), 1)
    nominal = calibrate_targets(y, np.full(60, 6.0), np.full(60, 0.9), q, holdout=150, warmup=30)
    assert (np.abs(nominal - 0.9) < 0.04).all() and (nominal < 1).all()
    with pytest.raises(ConfigError, match="holdout"):
        calibrate_targets(y, np.full(60, 6.0), np.full(60, 0.9), q, holdout=20, warmup=30)


@pytest.mark.parametrize(("policy", "review"), [("sQ", 1), ("RsS", 7)])
def test_predicted_fill_rate_is_what_the_simulation_delivers(policy: str, review: int) -> None:
    # the model is the truth (Poisson demand, fixed lead time, exact parameters): the policy's
    # expected fill rate must be what the replay achieves
    from sparecast.inventory.policy import (
        distribution_policy,
        order_quantity,
        protection_review_periods,
    )
    from sparecast.methods.distributions import lead_time_demand

    rng = np.random.default_rng(5)
    y = rng.poisson(2.0, (40, 3000)).astype(float)
    lt = np.full(40, 6.0)
    ltd = lead_time_demand(
        y[:, :1000],
        lt,
        review_period=protection_review_periods(policy, review),
        method="poisson",
        n_samples=4000,
        parameter_uncertainty=False,
        level_alpha=0.0,
    )
    q = order_quantity(y[:, :1000].mean(axis=1), 10.0)
    for target in (0.9, 0.98):
        pol = distribution_policy(ltd, np.full(40, target), q, policy=policy)
        sim = simulate_policy(
            y[:, 1000:], pol.reorder_point, q, lt, policy=policy, review_period=review, warmup=100
        )
        predicted = float(np.mean(pol.expected_fill_rate))
        achieved = sim.totals["fill_rate"]
        if policy == "sQ":  # exact for (s, nQ)
            assert achieved == pytest.approx(predicted, abs=0.012)
        else:  # (R, s, S): IP after a review is not uniform (S after an order): conservative
            assert predicted - 0.005 <= achieved <= predicted + 0.03
        assert achieved >= target - 0.012


def test_compare_policies_with_calibration_has_three_rows() -> None:
    y = _poisson_panel(n=30, days=400)
    table, policies = compare_policies(
        y, 250, np.full(30, 5.0), 0.9, order_cover_periods=10, warmup=20, n_samples=300
    )
    assert table["policy"].to_list() == ["normal", "distribution", "distribution_calibrated"]
    # the calibration may raise or lower the nominal target, within its factors' range
    calibrated = policies["distribution_calibrated"].target
    assert (calibrated >= nominal_targets(0.9, TARGET_FACTORS[0]) - 1e-12).all()
    assert (calibrated <= nominal_targets(0.9, TARGET_FACTORS[-1]) + 1e-12).all()


def test_items_the_policy_does_not_stock_start_at_zero_and_never_order() -> None:
    # two identical items, demand 1 on days 2 and 5; s = 1, Q = 3, L = 1: the stocked item
    # starts with S = 4 (on hand 4 4 3 3 3 2 2 2: orders none), the other starts empty, never
    # orders and fills nothing
    y = np.zeros((2, 8))
    y[:, [2, 5]] = 1.0
    sim = simulate_policy(
        y, np.array([1.0, 1.0]), np.array([3.0, 3.0]), np.array([1.0, 1.0]),
        replenish=np.array([True, False]), unit_cost=10.0,
    )  # fmt: skip
    stocked, never = sim.per_item.rows(named=True)
    assert stocked["filled"] == 2 and stocked["n_orders"] == 0
    assert stocked["avg_on_hand"] == pytest.approx((4 + 4 + 3 + 3 + 3 + 2 + 2 + 2) / 8)
    assert never["filled"] == 0 and never["n_orders"] == 0
    assert never["avg_on_hand"] == 0 and never["avg_on_hand_value"] == 0
    assert never["stockout_demand_days"] == 2
    # a policy that holds nothing (s = -1, Q = 1: S = 0) starts at 0, not at a negative stock
    sim = simulate_policy(y[:1], np.array([-1.0]), np.array([1.0]), np.array([1.0]))
    r = sim.per_item.row(0, named=True)
    # day 2: short (-1), order 1 (IP -1 <= -1) arriving at the end of day 3; day 5 likewise
    assert r["filled"] == 0 and r["n_orders"] == 2 and r["avg_on_hand"] == 0


def test_warmup_per_item_by_hand() -> None:
    y = np.ones((3, 13))
    sim = simulate_policy(
        y, np.full(3, 1.0), np.full(3, 5.0), np.full(3, 3.0), warmup=np.array([0, 8, 13])
    )
    full, late, never = sim.per_item.rows(named=True)
    # as test_constant_demand_with_stockouts_by_hand and test_warmup_is_not_measured
    assert full["demand"] == 13 and full["filled"] == 9 and full["measured_periods"] == 13
    assert late["demand"] == 5 and late["filled"] == 3 and late["measured_periods"] == 5
    assert never["demand"] == 0 and never["measured_periods"] == 0 and never["n_orders"] == 0
    assert sim.totals["items_measured"] == 2
    with pytest.raises(ConfigError, match="warmup per item"):
        simulate_policy(y, np.full(3, 1.0), np.full(3, 5.0), np.full(3, 3.0), warmup=np.ones(2))


def test_protection_warmup_is_lead_time_plus_review_rounded_up() -> None:
    from sparecast.inventory.simulate import protection_warmup

    lts = [np.array([2.0, 3.0]), np.array([6.0]), np.array([0.2])]
    # sQ: mean lead time + 1 (2.5 + 1 -> 4; 6 + 1; lead times below 1 period count as 1: 1 + 1)
    assert protection_warmup(lts).tolist() == [4, 7, 2]
    assert protection_warmup(lts, "RsS", 7).tolist() == [10, 13, 8]


def test_never_demanded_items_do_not_push_sparse_items_to_the_cap() -> None:
    # 30 sparse items (one unit every 60 periods: 1.7% of periods) and 30 items without demand
    # in the fit part that come alive in the check part (one unit every 5 periods). Before
    # issue 12 both were one group: the newcomers (never stocked) kept the group's fill rate
    # below any target and its factor at the cap (nominal 1 - 0.1 * 0.05 = 0.995).
    n_t, holdout = 600, 200
    y = np.zeros((60, n_t))
    y[:30, 7::60] = 1.0
    y[30:, n_t - holdout :: 5] = 1.0
    groups = frequency_groups(y[:, : n_t - holdout])
    assert set(groups[:30]) == {1} and set(groups[30:]) == {0}
    q, lt, tgt = np.ones(60), np.full(60, 2.0), np.full(60, 0.9)
    cap = float(nominal_targets(0.9, TARGET_FACTORS[-1]))
    mixed = calibrate_targets(
        y, lt, tgt, q, holdout=holdout, groups=np.ones(60, dtype=int), n_samples=200
    )
    assert mixed[:30] == pytest.approx(cap)  # the fault, reproduced with the groups forced
    fixed = calibrate_targets(y, lt, tgt, q, holdout=holdout, n_samples=200)
    assert (fixed[:30] < cap).all()


def test_calibrate_targets_sets_the_policies_with_the_plans_rules() -> None:
    """``adjust_policy`` decides the simulated policies: with every item not replenished
    nothing is served, no factor reaches the target and every item gets the smallest one."""
    y = _poisson_panel(days=300)
    q = np.maximum(np.round(y.mean(axis=1) * 10), 1)
    seen: list[tuple[int, int]] = []

    def nothing(fit, ltd, pol, targets, unit_cost):  # type: ignore[no-untyped-def]
        seen.append(fit.shape)
        # called at each factor's nominal targets (the sparse rule follows the calibration)
        assert np.unique(targets).size == 1 and targets[0] in set(nominal_targets(0.9, fs))
        return pol, np.zeros(fit.shape[0], dtype=bool)

    fs = np.asarray(TARGET_FACTORS)

    nominal = calibrate_targets(
        y, np.full(60, 6.0), np.full(60, 0.9), q, holdout=150, warmup=30, adjust_policy=nothing
    )
    assert nominal == pytest.approx(np.full(60, nominal_targets(0.9, TARGET_FACTORS[-1])))
    assert len(seen) == len(TARGET_FACTORS) and all(s == (60, 150) for s in seen)


def _curves(achieved: list[list[float]], demand: list[float], items: list[int],
            target: float = 0.9) -> CalibrationCurves:  # fmt: skip
    k = len(achieved)
    keys = np.array([[g + 1.0, target] for g in range(k)])
    return CalibrationCurves(
        keys, np.asarray(TARGET_FACTORS), np.array(achieved), np.array(items),
        np.array(demand, dtype=float), np.ones((k, 1), dtype=bool),
    )  # fmt: skip


def _line(start: float, stop: float) -> list[float]:
    return np.linspace(start, stop, len(TARGET_FACTORS)).tolist()


def test_solve_factors_lowers_the_target_of_a_group_that_overshoots() -> None:
    # one group that already fills 95-99% at every factor: the largest factor (the nominal
    # target below the service target); one that reaches 90% inside the grid
    f = solve_factors(_curves([_line(0.95, 0.99), _line(0.80, 0.99)], [100, 100], [500, 500]))
    assert f[0] == TARGET_FACTORS[0]
    assert TARGET_FACTORS[-1] < f[1] < TARGET_FACTORS[0]


def test_solve_factors_compensates_a_group_that_cannot_reach_the_target() -> None:
    # a lumpy group saturates at 80% (10% of the demand): the other must fill more than 90%
    # so that the demand-weighted fill is the target
    curves = _curves([_line(0.5, 0.8), _line(0.8, 0.99)], [10, 90], [500, 500])
    f = solve_factors(curves)
    assert f[0] == pytest.approx(TARGET_FACTORS[-1])
    log_fs = np.log(np.asarray(TARGET_FACTORS))
    fill = [np.interp(-np.log(f[k]), -log_fs, curves.achieved[k]) for k in range(2)]
    assert fill[1] > 0.9
    assert np.dot(fill, [10, 90]) / 100 == pytest.approx(0.9, abs=1e-3)


def test_solve_factors_shrinks_a_small_group_towards_the_pooled_shortfall() -> None:
    # the same curves, the small group (3 items) alone would need far more than the others;
    # shrunk, its factor moves towards theirs
    big, small = _line(0.8, 0.99), _line(0.6, 0.95)
    alone = solve_factors(_curves([big, small], [1000, 1], [1000, 100_000]))
    shrunk = solve_factors(_curves([big, small], [1000, 1], [1000, 3]))
    assert alone[1] < shrunk[1] <= alone[0] + 1e-9


def test_solve_factors_is_monotone_in_the_target() -> None:
    # group 1 at two targets: a noisy backtest must not plan 95% below 90%
    keys = np.array([[1.0, 0.9], [1.0, 0.95]])
    ach = np.array([_line(0.7, 0.99), _line(0.9, 0.999)])
    curves = CalibrationCurves(keys, np.asarray(TARGET_FACTORS), ach, np.array([500, 500]),
                               np.array([100.0, 100.0]), np.ones((2, 1), dtype=bool))  # fmt: skip
    f = solve_factors(curves)
    nominal = nominal_targets(keys[:, 1], f)
    assert nominal[1] >= nominal[0] - 1e-12


def _costed(achieved: list[list[float]], stock: list[list[float]], demand: list[float],
            target: float = 0.9) -> CalibrationCurves:  # fmt: skip
    c = _curves(achieved, demand, [500] * len(achieved), target)
    return CalibrationCurves(c.keys, c.factors, c.achieved, c.items, c.demand, c.members,
                             np.array(stock, dtype=float))  # fmt: skip


def _fill(curves: CalibrationCurves, f: np.ndarray) -> np.ndarray:
    log_fs = np.log(np.asarray(TARGET_FACTORS))
    return np.array([np.interp(-np.log(f[k]), -log_fs, curves.achieved[k]) for k in range(len(f))])


def test_cost_aware_factors_raise_the_cheaper_group_first() -> None:
    # two groups with the same demand and the same fill curve (80% .. 99% over the grid); a
    # point of fill costs 10x more stock in group 2. Both start at the floor (85%); group 1
    # is raised alone until the aggregate is 90%: 95% / 85%. Per group (solve_factors) both
    # would be at 90%.
    fill, cheap = _line(0.80, 0.99), np.linspace(1.0, 10.0, len(TARGET_FACTORS))
    curves = _costed([fill, fill], [cheap.tolist(), (10 * cheap).tolist()], [100, 100])
    f = cost_aware_factors(curves, floor_gap=0.05)
    got = _fill(curves, f)
    assert got == pytest.approx([0.95, 0.85], abs=1e-6)
    assert got.mean() == pytest.approx(0.9, abs=1e-6)
    assert _fill(curves, solve_factors(curves)) == pytest.approx([0.9, 0.9], abs=1e-6)
    # the costs swapped: the other group is raised
    swapped = _costed([fill, fill], [(10 * cheap).tolist(), cheap.tolist()], [100, 100])
    assert _fill(swapped, cost_aware_factors(swapped, 0.05)) == pytest.approx([0.85, 0.95])


def test_cost_aware_factors_honour_the_floor() -> None:
    # group 2 (20% of the demand) costs far more per point: without a floor (gap 0.5) it is
    # left at its lowest fill (60%) and group 1 fills (0.9 - 0.2 * 0.6) / 0.8 = 97.5%; with
    # a gap of 5 points it stays at 85% and group 1 fills (0.9 - 0.2 * 0.85) / 0.8 = 91.25%
    # (no shrinkage: the curves as measured)
    cheap = np.linspace(1.0, 10.0, len(TARGET_FACTORS))
    curves = _costed(
        [_line(0.80, 0.99), _line(0.60, 0.99)],
        [cheap.tolist(), (100 * cheap).tolist()],
        [80, 20],
    )
    free = _fill(curves, cost_aware_factors(curves, floor_gap=0.5, shrinkage=0.0))
    assert free == pytest.approx([0.975, 0.60], abs=1e-6)
    floored = _fill(curves, cost_aware_factors(curves, floor_gap=0.05, shrinkage=0.0))
    assert floored == pytest.approx([0.9125, 0.85], abs=1e-6)
    for got in (free, floored):
        assert np.dot(got, [80, 20]) / 100 == pytest.approx(0.9, abs=1e-6)


def test_cost_aware_factors_keep_a_group_that_overshoots_at_its_floor() -> None:
    # group 1 overshoots at every factor (95% .. 99%) and its points cost more than group 2's:
    # it stays at the largest factor; group 2 is raised until the aggregate is reached
    cheap = np.linspace(1.0, 10.0, len(TARGET_FACTORS))
    curves = _costed(
        [_line(0.95, 0.99), _line(0.70, 0.99)], [(20 * cheap).tolist(), cheap.tolist()], [50, 50]
    )
    f = cost_aware_factors(curves, floor_gap=0.05, shrinkage=0.0)  # the curves as measured
    got = _fill(curves, f)
    assert f[0] == TARGET_FACTORS[0]
    assert got == pytest.approx([0.95, 0.85], abs=1e-6)
    flat = np.ones(len(TARGET_FACTORS))
    # a target no factor reaches: every group at its smallest factor
    low = _costed([_line(0.5, 0.7), _line(0.5, 0.8)], [flat.tolist(), flat.tolist()], [50, 50])
    assert cost_aware_factors(low) == pytest.approx(np.full(2, TARGET_FACTORS[-1]))


def test_cost_aware_factors_need_stock_curves_and_a_valid_gap() -> None:
    no_stock = _curves([_line(0.8, 0.99)], [100], [500])
    with pytest.raises(ConfigError, match="stock"):
        cost_aware_factors(no_stock)
    curves = _costed([_line(0.8, 0.99)], [_line(1.0, 2.0)], [100])
    with pytest.raises(ConfigError, match="floor_gap"):
        cost_aware_factors(curves, floor_gap=1.0)


def test_cost_aware_factors_aim_at_the_target_plus_the_margin() -> None:
    # the curves of test_cost_aware_factors_raise_the_cheaper_group_first: a margin of 2 points
    # raises the cheaper group further until the aggregate is 92%; a negative margin is none
    fill, cheap = _line(0.80, 0.99), np.linspace(1.0, 10.0, len(TARGET_FACTORS))
    curves = _costed([fill, fill], [cheap.tolist(), (10 * cheap).tolist()], [100, 100])
    got = _fill(curves, cost_aware_factors(curves, floor_gap=0.05, margin={0.9: 0.02}))
    assert got == pytest.approx([0.99, 0.85], abs=1e-6)
    assert got.mean() == pytest.approx(0.92, abs=1e-6)
    none = _fill(curves, cost_aware_factors(curves, floor_gap=0.05, margin={0.9: -0.02}))
    assert none == pytest.approx([0.95, 0.85], abs=1e-6)
