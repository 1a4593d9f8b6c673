"""Multi-item service optimisation: hand-checked greedy choices, targets, minimums, a brute
force comparison and the trade-off against per-item targets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sparecast.errors import ConfigError, DataValidationError
from sparecast.inventory.optimize import (
    MAX_MARGIN_SHARE,
    aggregate_margin,
    calibrate_aggregate_target,
    nominal_for,
    optimize_service,
)
from sparecast.inventory.policy import fill_rate_from_samples, reorder_point_from_samples
from sparecast.methods.distributions import lead_time_demand


def _two_items() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # demand over the protection interval is always 2, Q = 2: the classical fill rate is
    # 1 - (E[(D-s)+] - E[(D-s-Q)+]) / Q = 0, 0.5, 1 at s = 0, 1, 2 for both items
    samples = np.full((2, 10), 2.0, dtype=np.float32)
    return samples, np.array([2.0, 2.0]), np.array([1.0, 1.0])


def test_greedy_raises_the_cheapest_gain_first() -> None:
    samples, q, w = _two_items()
    cost = np.array([1.0, 10.0])
    half = optimize_service(samples, q, w, cost, 0.5)
    # 0.5 aggregate = one item at fill 1: the cheap item gets it, the dear one stays at 0
    assert half.reorder_point.tolist() == [2.0, 0.0]
    assert half.expected_fill_rate.tolist() == [1.0, 0.0]
    assert half.aggregate_fill_rate == pytest.approx(0.5)
    assert half.added_value == pytest.approx(2.0)
    assert half.reached
    # 0.75: the cheap item is full, the dear one gets one unit (fill 0.5): (1 + 0.5) / 2
    more = optimize_service(samples, q, w, cost, 0.75)
    assert more.reorder_point.tolist() == [2.0, 1.0]
    assert more.aggregate_fill_rate == pytest.approx(0.75)
    assert more.added_value == pytest.approx(12.0)


def test_greedy_weighs_gain_by_demand() -> None:
    samples, q, _ = _two_items()
    # same cost, but the second item carries 3 times the demand: its units gain 3 times more
    res = optimize_service(samples, q, np.array([1.0, 3.0]), np.array([1.0, 1.0]), 0.7)
    assert res.reorder_point.tolist() == [0.0, 2.0]
    assert res.aggregate_fill_rate == pytest.approx(0.75)


def test_minimum_fill_rates_are_respected() -> None:
    samples, q, w = _two_items()
    cost = np.array([1.0, 10.0])
    # the dear item must fill at least 50%: it starts at s = 1 and the cheap one rises to 1
    res = optimize_service(samples, q, w, cost, 0.5, min_fill_rate=np.array([0.0, 0.5]))
    assert res.min_reorder_point.tolist() == [0.0, 1.0]
    assert res.reorder_point.tolist() == [1.0, 1.0]
    assert res.expected_fill_rate.min() >= 0.5
    # the minimum alone already reaches a low target: nothing is added
    low = optimize_service(samples, q, w, cost, 0.2, min_fill_rate=np.array([0.0, 0.5]))
    assert low.reorder_point.tolist() == [0.0, 1.0]
    assert low.added_value == 0.0
    assert low.reached


def test_unreachable_target_puts_every_item_at_its_cap() -> None:
    samples, q, w = _two_items()
    res = optimize_service(samples, q, w, np.ones(2), 0.99, max_fill=0.5)
    assert res.reorder_point.tolist() == [1.0, 1.0]
    assert not res.reached
    with pytest.raises(ConfigError, match="target"):
        optimize_service(samples, q, w, np.ones(2), 1.0)


def test_lump_is_bought_whole_by_the_hull() -> None:
    # a lump of 4 (always): fill 0 until s covers it (classical formula with Q = 1): a myopic
    # one-unit greedy would see no gain; the concave hull sees the whole jump
    lump = np.full((1, 8), 4.0, dtype=np.float32)
    dense = np.tile(np.arange(8, dtype=np.float32), (1, 1))  # D uniform on 0..7, Q = 1
    samples = np.vstack([lump, dense])
    q = np.ones(2)
    res = optimize_service(samples, q, np.ones(2), np.ones(2), 0.9)
    assert res.reached
    assert res.reorder_point[0] == pytest.approx(4.0)  # the lump item is covered in one go
    got = fill_rate_from_samples(samples, res.reorder_point, q)
    assert got.mean() == pytest.approx(res.aggregate_fill_rate)
    assert res.aggregate_fill_rate >= 0.9


def test_matches_brute_force_on_small_random_cases() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        n = 3
        samples = rng.poisson(rng.uniform(0.5, 4.0, (n, 1)), (n, 400)).astype(np.float32)
        q = rng.integers(1, 4, n).astype(np.float64)
        w = samples.mean(axis=1, dtype=np.float64)
        cost = rng.uniform(1.0, 5.0, n)
        target = 0.9
        res = optimize_service(samples, q, w, cost, target, max_levels=64)
        assert res.reached
        # the cheapest combination reaching the target, over every reorder point up to the cap
        hi = reorder_point_from_samples(samples, np.full(n, 0.999), q)
        best = np.inf
        for combo in itertools.product(*[range(int(h) + 1) for h in hi]):
            s = np.array(combo, dtype=np.float64)
            f = fill_rate_from_samples(samples, s, q)
            if (w * f).sum() / w.sum() >= target - 1e-12:
                best = min(best, float((cost * s).sum()))
        spent = float((cost * res.reorder_point).sum())
        # greedy on the hull: at most one step's cost above the true optimum
        assert best <= spent <= best + cost.max() * 2 + 1e-9


def test_aggregate_mode_needs_less_stock_than_per_item_targets() -> None:
    # mixed items: cheap fast movers and dear slow ones; the same aggregate fill from item
    # targets costs more than the optimiser's allocation
    rng = np.random.default_rng(0)
    n = 60
    rates = np.concatenate([rng.uniform(2, 6, n // 2), rng.uniform(0.05, 0.3, n // 2)])
    y = rng.poisson(rates[:, None], (n, 120)).astype(np.float64)
    cost = np.concatenate([rng.uniform(1, 3, n // 2), rng.uniform(50, 100, n // 2)])
    ltd = lead_time_demand(y, [np.array([4.0])] * n, review_period=1.0, n_samples=500, seed=1)
    q = np.maximum(np.ceil(ltd.params.mean * 4), 1.0)
    w = ltd.params.mean
    per_item = reorder_point_from_samples(
        ltd.samples, np.full(n, 0.95), q, lead_samples=ltd.lead_samples
    )
    f_item = fill_rate_from_samples(ltd.samples, per_item, q, lead_samples=ltd.lead_samples)
    agg_item = float((w * f_item).sum() / w.sum())
    res = optimize_service(
        ltd.samples, q, w, cost, agg_item, lead_samples=ltd.lead_samples, max_levels=64
    )
    assert res.reached and res.aggregate_fill_rate >= agg_item - 1e-9
    assert (cost * res.reorder_point).sum() < 0.9 * (cost * per_item).sum()


def test_calibrated_aggregate_target_by_hand() -> None:
    # demand of exactly 1 a period, lead time 2: any policy at the target fills everything
    # out of sample, so the nominal target is at most the target itself (factors above 1
    # try lower nominal targets first: 1 - 0.1 * 5 = 0.5, then 0.7, 0.8, 0.86, 0.9, ...)
    y = np.ones((4, 60))
    lead = [np.array([2.0])] * 4
    q = np.full(4, 3.0)
    cal = calibrate_aggregate_target(
        y, lead, q, np.ones(4), 0.9, holdout=20, warmup=5, n_samples=200
    )
    nominal, pairs = cal.nominal, cal.pairs
    assert cal.reached and cal.value > 0
    assert cal.achieved >= 0.9 - 1e-12  # the fill at the chosen nominal (here all filled)
    noms = [a for a, _ in pairs]
    assert noms[:5] == pytest.approx([0.5, 0.7, 0.8, 0.86, 0.9])
    assert nominal <= 0.9 + 1e-12 and dict(pairs)[noms[4]] == pytest.approx(1.0)
    # the smallest nominal target reaching 0.9 or the interpolation just below it
    first = next(a for a, b in pairs if b >= 0.9)
    assert nominal <= first + 1e-12 and nominal >= noms[max(noms.index(first) - 1, 0)] - 1e-12
    # only factors leaving a nominal target of 5% or more are tried
    few = calibrate_aggregate_target(
        y, lead, q, np.ones(4), 0.6, holdout=20, warmup=5, n_samples=200
    ).pairs
    assert min(a for a, _ in few) == pytest.approx(1 - 0.4 * 2.0)
    with pytest.raises(ConfigError, match="holdout"):
        calibrate_aggregate_target(y, lead, q, np.ones(4), 0.9, holdout=5, warmup=5)


def test_nominal_for_a_higher_target_and_the_aggregate_margin_by_hand() -> None:
    # (nominal, achieved) as calibrate_aggregate_target tries them, ascending nominal; the
    # achieved fill is made monotone (0.95 after 0.96 counts as 0.96)
    pairs = [(0.80, 0.85), (0.90, 0.93), (0.95, 0.96), (0.98, 0.95), (0.99, 0.99)]
    assert nominal_for(pairs, 0.85) == pytest.approx(0.80)  # reached at the first
    assert nominal_for(pairs, 0.89) == pytest.approx(0.85)  # halfway from 0.85 to 0.93
    assert nominal_for(pairs, 0.975) == pytest.approx(0.985)  # 0.96 -> 0.99 crosses at half
    assert nominal_for(pairs, 0.995) == pytest.approx(0.99)  # never reached: the highest
    # half the shortfall of the earlier window's choice on the holdout, never negative,
    # at most half of 1 - target
    assert aggregate_margin(0.9, 0.9, 0.88, 0.5) == pytest.approx(0.01)
    assert aggregate_margin(0.9, 0.9, 0.93, 0.5) == 0.0
    assert aggregate_margin(0.98, 0.98, 0.90, 1.0) == pytest.approx(MAX_MARGIN_SHARE * 0.02)
    # an earlier choice that did not reach the target: measured from what it got there
    assert aggregate_margin(0.98, 0.96, 0.95, 0.5) == pytest.approx(0.005)


def test_calibrated_aggregate_target_raises_the_nominal_under_noise() -> None:
    rng = np.random.default_rng(8)
    n = 80
    # over-dispersed demand (gamma-Poisson, shape 0.5 per period), 45 periods to fit
    lam = rng.gamma(0.5, 1.0, (n, 90)) * rng.uniform(0.2, 2.0, (n, 1))
    y = rng.poisson(lam).astype(np.float64)
    lead = [np.array([4.0, 5.0, 6.0])] * n
    q = np.maximum(np.ceil(y.mean(axis=1) * 3), 1.0)
    cal = calibrate_aggregate_target(
        y, lead, q, rng.uniform(1, 10, n), 0.95, holdout=45, warmup=9, n_samples=300
    )
    nominal, pairs = cal.nominal, cal.pairs
    noms = [a for a, _ in pairs]
    fills = np.maximum.accumulate([b for _, b in pairs])
    assert noms == sorted(noms) and noms[4] == pytest.approx(0.95)
    if fills[0] >= 0.95:
        assert nominal == pytest.approx(noms[0])
    elif fills[-1] < 0.95:
        assert nominal == pytest.approx(noms[-1])
    else:  # between the last nominal short of the target and the first reaching it
        j = int(np.argmax(fills >= 0.95))
        assert noms[j - 1] <= nominal <= noms[j]
    assert fills[4] < 0.95  # estimation error: the nominal target alone falls short here


def test_the_aggregate_mode_reaches_a_target_the_old_per_item_ceiling_blocked() -> None:
    # Poisson lead-time demand (mean 20) for 20 items, Q = 1: at the old cap of 99.9% per item
    # the aggregate tops out at ~99.92%, so 99.95% is out of reach; the cap of MAX_ITEM_FILL
    # (99.99%) lets the greedy raise the cheap items further and reach it
    from sparecast.inventory.optimize import MAX_ITEM_FILL

    rng = np.random.default_rng(3)
    samples = rng.poisson(20.0, (20, 20_000)).astype(np.float32)
    q, w = np.ones(20), np.full(20, 20.0)
    cost = np.where(np.arange(20) < 10, 1.0, 50.0)  # ten cheap items, ten dear ones
    old = optimize_service(samples, q, w, cost, 0.9995, max_fill=0.999)
    assert not old.reached and old.aggregate_fill_rate < 0.9995
    new = optimize_service(samples, q, w, cost, 0.9995)
    assert MAX_ITEM_FILL > 0.999 and new.reached and new.aggregate_fill_rate >= 0.9995
    # the cheap items carry the extra service: they fill more than the dear ones
    assert new.expected_fill_rate[:10].mean() > new.expected_fill_rate[10:].mean()


def test_demand_period_service_by_hand() -> None:
    from sparecast.inventory.optimize import demand_period_service

    # every path: 2 units over the lead time, then a demand period of 1 unit: short when the
    # inventory position is under 3. s = 2, Q = 1: IP = 3, never short; s = 1, Q = 1: IP = 2,
    # always short; s = 1, Q = 2: IP is 2 or 3, short half the time
    lead = np.full((3, 5), 2.0, dtype=np.float32)
    size = np.ones((3, 5))
    got = demand_period_service(lead, size, np.array([2.0, 1.0, 1.0]), np.array([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(got, [1.0, 0.0, 0.5])
    # a lump of 4 on one path of four (sizes 1, 1, 1, 4), s = 3, Q = 1 (IP = 4): short on the
    # lump's path only (2 + 4 > 4); an item without demand (sizes 0) is served
    lead2 = np.full((2, 4), 2.0, dtype=np.float32)
    size2 = np.array([[1.0, 1.0, 1.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    got2 = demand_period_service(lead2, size2, np.array([3.0, 0.0]), np.ones(2))
    np.testing.assert_allclose(got2, [0.75, 1.0])


def test_demand_sizes_come_from_the_positive_history() -> None:
    from sparecast.inventory.optimize import demand_sizes

    y = np.array([[0, 3, 0, 5, 0, 0], [0, 0, 0, 0, 0, 0], [2, 2, 2, 2, 2, 2]], dtype=float)
    d = demand_sizes(y, 2000, seed=1)
    assert set(np.unique(d[0])) == {3.0, 5.0} and abs((d[0] == 3.0).mean() - 0.5) < 0.05
    assert (d[1] == 0).all() and (d[2] == 2).all()


def test_demand_period_greedy_buys_the_most_short_periods_avoided_per_money() -> None:
    # two items, each with a demand period every period and no lead-time demand before it,
    # Q = 1 (IP = s + 1): item 0 demands 2 a period (served from s = 1), item 1 demands 11
    # (served from s = 10) and costs half as much a unit
    full = np.array([[2, 2, 2, 2], [11, 11, 11, 11]], dtype=np.float32)
    lead = np.zeros((2, 4), dtype=np.float32)
    sizes = full.astype(np.float64)
    q, cost = np.ones(2), np.array([1.0, 0.5])
    half = optimize_service(
        full, q, np.ones(2), cost, 0.5, lead_samples=lead, metric="demand_periods", sizes=sizes
    )
    # half the demand periods: item 0's, for 1 unit of money (item 1's would cost 5)
    assert half.reorder_point.tolist() == [1.0, 0.0]
    assert half.expected_fill_rate.tolist() == [1.0, 0.0]
    assert half.aggregate_fill_rate == pytest.approx(0.5)
    # the fill rate weighs units: item 1 fills 2 units per unit of money, item 0 only 1; at
    # s = 0 each fills 1 unit of 2 and 11 (2 of 13), so 4.5 more units: item 1 up to s = 5
    by_fill = optimize_service(full, q, np.array([2.0, 11.0]), cost, 0.5, lead_samples=lead)
    assert by_fill.reorder_point.tolist() == [0.0, 5.0]
    # weights are demand periods: item 1 demanding in ten times as many periods as item 0,
    # its periods avoided per money (1 / 5) beat item 0's (0.1 / 1) and reach half alone
    more = optimize_service(
        full, q, np.array([0.1, 1.0]), cost, 0.5, lead_samples=lead, metric="demand_periods",
        sizes=sizes,
    )  # fmt: skip
    assert more.reorder_point.tolist() == [0.0, 10.0]
    with pytest.raises(ConfigError, match="metric"):
        optimize_service(full, q, np.ones(2), cost, 0.5, metric="units")
    with pytest.raises(DataValidationError, match="sizes"):
        optimize_service(full, q, np.ones(2), cost, 0.5, metric="demand_periods")


def test_fill_and_periods_greedy_stops_when_both_reach_the_target() -> None:
    # two items demanding every period, no lead-time demand before it, Q = 1 (IP = s + 1):
    # item 0 demands 10 a period (all its periods served from s = 9) and costs 1, item 1
    # demands 3 (served from s = 2) and costs 10; at s = 0 they fill 1 unit each (2 of 13)
    full = np.array([[10, 10, 10, 10], [3, 3, 3, 3]], dtype=np.float32)
    lead = np.zeros((2, 4), dtype=np.float32)
    sizes = full.astype(np.float64)
    q, cost, units, periods = np.ones(2), np.array([1.0, 10.0]), np.array([10.0, 3.0]), np.ones(2)
    # the fill rate alone: 6.5 units of 13, the cheapest first: item 0 to 6 units (s = 5)
    by_fill = optimize_service(full, q, units, cost, 0.5, lead_samples=lead)
    assert by_fill.reorder_point.tolist() == [5.0, 0.0]
    kw = dict(lead_samples=lead, sizes=sizes, period_weights=periods, metric="fill_and_periods")
    # both at 50%: item 0 up to s = 9 serves half the demand periods, and fills 11 of 13
    half = optimize_service(full, q, units, cost, 0.5, **kw)
    assert half.reorder_point.tolist() == [9.0, 0.0]
    assert half.expected_fill_rate.tolist() == pytest.approx([1.0, 1 / 3])
    assert half.aggregate_fill_rate == pytest.approx(0.5)  # the lower: the periods
    assert half.reached
    # both at 75%: only both items served reach 75% of the demand periods
    most = optimize_service(full, q, units, cost, 0.75, **kw)
    assert most.reorder_point.tolist() == [9.0, 2.0]
    assert most.aggregate_fill_rate == pytest.approx(1.0)
    # no fill weight but demand periods to serve: reached only if the periods are
    capped = optimize_service(full[:1], q[:1], np.zeros(1), cost[:1], 0.98, max_fill=0.5,
                              lead_samples=lead[:1], sizes=sizes[:1], period_weights=periods[:1],
                              metric="fill_and_periods")  # fmt: skip
    assert not capped.reached and capped.aggregate_fill_rate == pytest.approx(0.0)
    with pytest.raises(DataValidationError, match="period weights"):
        optimize_service(full, q, units, cost, 0.5, lead_samples=lead, sizes=sizes,
                         metric="fill_and_periods")  # fmt: skip


def test_aggregate_weights_count_demand_periods() -> None:
    from sparecast.inventory.optimize import aggregate_weights

    # one item with demand every period, one with demand one period in four (a lump of 4):
    # the same units per period, four times the demand periods
    y = np.zeros((2, 200))
    y[0] = 1.0
    y[1, ::4] = 4.0
    ltd = lead_time_demand(y, [np.array([2.0])] * 2, review_period=1.0, n_samples=2000)
    by_units = aggregate_weights(ltd, y, "fill_rate")
    assert by_units[0] == pytest.approx(by_units[1], rel=0.15)
    np.testing.assert_allclose(aggregate_weights(ltd, y, "demand_periods"), [1.0, 0.25])
    with pytest.raises(ConfigError, match="metric"):
        aggregate_weights(ltd, y, "units")
    with pytest.raises(ConfigError, match="history"):
        aggregate_weights(ltd, None, "demand_periods")


def test_calibration_measures_the_demand_period_metric() -> None:
    # constant demand of 1 a period: the highest nominal targets serve every demand period of
    # the holdout; the low ones leave some short, and the share of demand periods served is
    # not the fill rate (a short period still fills part of its demand)
    y = np.ones((4, 60))
    lead = [np.array([2.0])] * 4
    args = dict(holdout=20, warmup=5, n_samples=200)
    periods = calibrate_aggregate_target(
        y, lead, np.full(4, 3.0), np.ones(4), 0.9, metric="demand_periods", **args
    )
    fill = calibrate_aggregate_target(y, lead, np.full(4, 3.0), np.ones(4), 0.9, **args)
    assert periods.reached and periods.pairs[-1][1] == pytest.approx(1.0)
    assert periods.nominal < 0.9
    assert [a for a, _ in periods.pairs] == [a for a, _ in fill.pairs]
    assert any(abs(b - c) > 0.01 for (_, b), (_, c) in zip(periods.pairs, fill.pairs, strict=True))


def test_calibration_of_fill_and_periods_measures_the_lower_of_the_two() -> None:
    # the same constant demand: at every nominal target the pair is the lower of the fill
    # rate and the share of demand periods served (here the periods: a short period still
    # fills part of its demand)
    y = np.ones((4, 60))
    lead = [np.array([2.0])] * 4
    args = dict(holdout=20, warmup=5, n_samples=200)
    q, cost = np.full(4, 3.0), np.ones(4)
    got = {
        m: calibrate_aggregate_target(y, lead, q, cost, 0.9, metric=m, **args)
        for m in ("fill_rate", "demand_periods", "fill_and_periods")
    }
    both = got["fill_and_periods"]
    assert both.reached
    for j, (_, b) in enumerate(both.pairs):
        # planned on both metrics, so at least as high as the lower of the single-metric plans
        fill, per = got["fill_rate"].pairs[j][1], got["demand_periods"].pairs[j][1]
        assert b <= max(fill, per) + 1e-12
    assert both.nominal >= min(got["fill_rate"].nominal, got["demand_periods"].nominal) - 1e-12


def test_sparse_value_rule_stocks_the_cheap_item_and_leaves_the_dear_one() -> None:
    """Two sparse items with the same demand over the protection interval (0 or a lump of 4,
    half the time each), one ten times dearer: a pool target of 45% is bought with the cheap
    item's lump (fill 1 there, 0.5 over the pool), the dear one holds nothing (s = -1, order
    when a demand comes); the lump rule at 45% stocks neither (no demand in half the intervals)."""
    from dataclasses import replace

    from sparecast.inventory.optimize import sparse_value_rule
    from sparecast.inventory.policy import apply_sparse_rule, distribution_policy

    y = np.zeros((2, 200))
    y[:, [30, 150]] = 4.0  # demand in 1% of the periods: sparse
    ltd = lead_time_demand(y, [np.array([5.0])] * 2, n_samples=8)
    lump = np.tile(np.array([0, 4] * 4, dtype=np.float32), (2, 1))
    ltd = replace(ltd, samples=lump, lead_samples=lump)
    q, targets = np.ones(2), np.full(2, 0.45)
    pol = distribution_policy(ltd, targets, q)
    new, mask = sparse_value_rule(pol, ltd, y, targets, 0.02, np.array([1.0, 10.0]))
    assert mask.tolist() == [True, True]
    assert new.reorder_point.tolist() == [4.0, -1.0]
    assert new.expected_fill_rate.tolist() == pytest.approx([1.0, 0.0])
    none_held, _ = apply_sparse_rule(pol, ltd, y, targets, 0.02)
    assert none_held.reorder_point.tolist() == [-1.0, -1.0]  # P(no demand) 0.5 >= 45%
    # threshold 0: unchanged; a low pool target: the cheap item's first unit (fill 0.5 by the
    # classical formula with Q = 1: one cycle short of 1 unit in 2) and nothing more
    same, none = sparse_value_rule(pol, ltd, y, targets, 0.0)
    assert same is pol and not none.any()
    low, _ = sparse_value_rule(pol, ltd, y, np.full(2, 0.01), 0.02, np.array([1.0, 10.0]))
    assert low.reorder_point.tolist() == [0.0, -1.0]
