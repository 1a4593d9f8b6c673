"""The plan's calibration (one code path for plan and evaluate-plan): when it runs, what it
returns."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.config import load_settings
from sparecast.inventory.calibration import (
    MAX_MARGIN_SHARE,
    Calibration,
    calibrated_targets,
    calibration_groups,
    calibration_window,
    factors_by_group,
    group_factors,
    pick_mode,
    replayed_outcome,
    shortfall_margin,
    value_classes,
)
from sparecast.inventory.simulate import (
    TARGET_FACTORS,
    CalibrationCurves,
    calibrated_outcome,
    calibration_curves,
    cost_aware_factors,
    frequency_groups,
    solve_factors,
)


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
    # stationary Poisson: the nominal target stays near the target (raised or lowered; the
    # cost-aware mode may lower a group that overshoots down to the largest factor, 90%)
    assert (np.abs(cal.nominal - 0.95) <= 0.05 + 1e-9).all() and (cal.nominal < 1).all()
    assert cal.curves is not None and cal.curves.achieved.shape[1] > 1
    assert "targets calibrated on the last 18 periods" in cal.note
    # one nominal target per (calibration group, target): frequency group and value class
    groups = calibration_groups(y, 1.0, q, 3)  # of the whole history (what the plan sees)
    assert np.array_equal(np.floor(groups), frequency_groups(y))
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
    # (the shorter span of long lead times, half a protection interval after the warm-up,
    # does not fit either: 13 + 7 > 18)
    assert not cal.calibrated
    assert "holds a protection interval (warm-up) and 0.5 of one" in cal.note and "20%" in cal.note
    # 30% measured: calibrated on those, the others simulated but not counted
    lts = [np.array([3.0 if i < 30 else 12.0]) for i in range(100)]
    cal = calibrated_targets(y, lts, np.full(100, 0.9), np.ones(100), settings)
    assert cal.calibrated and cal.measured == 30 and "long lead times" not in cal.note


def test_long_lead_times_are_measured_over_a_shorter_span() -> None:
    # 56 months, holdout 18: 20% of the items with L = 3 hold two protection intervals, the
    # rest (L = 10, warm-up 11) only a warm-up and 7 periods: under a quarter by the strict
    # rule, so every item is measured over at least half a protection interval (6 periods)
    y = _monthly(n=100)
    lts = [np.array([3.0 if i < 20 else 10.0]) for i in range(100)]
    settings = load_settings(inventory={"n_samples": 200})
    win = calibration_window(56, lts, settings, period_days=30.44)
    assert win.short_span and win.measured.all() and win.why == ""
    cal = calibrated_targets(y, lts, np.full(100, 0.9), np.ones(100), settings, period_days=30.44)
    assert cal.calibrated and cal.measured == 100
    assert "over at least 0.5 of it (long lead times)" in cal.note
    # where a quarter or more fit two protection intervals, the others are measured over the
    # shorter span too (they were left out before: long lead times fill less at the same
    # nominal target, so the calibration must see them)
    short = [np.array([3.0 if i < 30 else 10.0]) for i in range(100)]
    win = calibration_window(56, short, settings, period_days=30.44)
    assert win.short_span and win.measured.all()
    # lead times whose warm-up and half a protection interval do not fit stay unmeasured
    longer = [np.array([3.0 if i < 30 else 13.0]) for i in range(100)]
    win = calibration_window(56, longer, settings, period_days=30.44)
    assert not win.short_span and win.measured.sum() == 30


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


def test_the_sparse_group_moves_towards_the_target_under_calibration() -> None:
    # issue 12: the sparse rule kept the service target while the calibration raised the
    # others, so sparse items filled far below it (demo: 49-78%). Now the calibration applies
    # the sparse rule at each factor's nominal target: the sparse items' fill rate rises
    # towards the target. 120 sparse items (demand on ~1.2% of days, lumps of 1 + Poisson(2))
    # and 80 regular ones; the plan is set on 600 days and replayed on the next 300.
    from sparecast.inventory.decide import plan_policy
    from sparecast.inventory.policy import order_quantity
    from sparecast.inventory.simulate import simulate_policy

    rng = np.random.default_rng(11)
    n_sparse, n, days, cut = 120, 200, 900, 600
    p = np.where(np.arange(n) < n_sparse, 0.012, 0.3)[:, None]
    y = (rng.random((n, days)) < p) * (1.0 + rng.poisson(2.0, (n, days)))
    lts = [np.array([10.0])] * n
    train, test = y[:, :cut], y[:, cut:]
    q = order_quantity(train.mean(axis=1), 30.0)
    fills = {}
    for calibrate in (False, True):
        settings = load_settings(  # the lump rule (the value rule pools them by money)
            inventory={"n_samples": 300, "calibrate": calibrate, "sparse_policy": "lump"}
        )
        d = plan_policy(train, lts, 0.9, q, settings)
        sparse = d.rule == "sparse"
        assert sparse[:n_sparse].mean() > 0.8 and not sparse[n_sparse:].any()
        sim = simulate_policy(
            test, d.policy.reorder_point, q, lts, warmup=11, replenish=d.replenished
        ).per_item
        dem, fil = sim["demand"].to_numpy(), sim["filled"].to_numpy()
        fills[calibrate] = fil[sparse].sum() / dem[sparse].sum()
        if calibrate:
            # planned above the service target (on average: the value classes of the group
            # share its floor)
            assert d.policy.target[sparse].mean() > 0.9
    assert fills[True] > fills[False] + 0.05
    assert abs(fills[True] - 0.9) < abs(fills[False] - 0.9)


def _two_groups(lo: float, hi: float) -> CalibrationCurves:
    k, f = 2, len(TARGET_FACTORS)
    stock = np.tile(np.linspace(1.0, 10.0, f), (k, 1))
    return CalibrationCurves(
        np.array([[1.0, 0.9], [2.0, 0.9]]), np.asarray(TARGET_FACTORS),
        np.tile(np.linspace(lo, hi, f), (k, 1)), np.array([500, 500]), np.array([100.0, 100.0]),
        np.ones((k, 1), dtype=bool), stock,
    )  # fmt: skip


def test_the_shortfall_margin_is_the_earlier_calibration_s_loss_out_of_sample() -> None:
    # the earlier window's groups reach 90% at a factor where the holdout's fill 3 points less
    # (both curves linear over the grid, the holdout's 3 points lower): margin 3 points
    early, holdout = _two_groups(0.80, 0.99), _two_groups(0.77, 0.96)
    margin, note = shortfall_margin(holdout, early, 0.1)
    assert margin[0.9] == pytest.approx(0.03, abs=2e-3)
    assert "out-of-sample margin" in note
    # half of it with weight 0.5; capped at half of 1 - target (5 points)
    assert shortfall_margin(holdout, early, 0.1, 0.5)[0][0.9] == (pytest.approx(0.015, abs=1e-3))
    far = _two_groups(0.50, 0.80)
    assert shortfall_margin(far, early, 0.1)[0][0.9] == pytest.approx(MAX_MARGIN_SHARE * 0.1)
    # a holdout that does better out of sample: no margin (never below the target)
    better = _two_groups(0.85, 0.999)
    assert shortfall_margin(better, early, 0.1)[0][0.9] == 0.0

    # no earlier window: no margin, and the reason in the note
    margin, note = shortfall_margin(holdout, None, 0.1, why="too short")
    assert margin == {} and "too short in the earlier window" in note


def _growing(**inventory: object) -> Calibration:
    """The calibration (90% target, 200 samples, ``inventory`` settings) of 150 monthly items
    whose demand grows through 72 months, lead times of 1-3 months."""
    rng = np.random.default_rng(3)
    n, months = 150, 72
    rate = rng.uniform(0.3, 3.0, n)[:, None] * np.linspace(0.5, 2.0, months)[None, :]
    y = rng.poisson(rate).astype(float)
    lts = [np.array([float(1 + i % 3)]) for i in range(n)]
    q = np.maximum(np.round(y.mean(axis=1)), 1.0)
    settings = load_settings(inventory={"n_samples": 200, **inventory})
    return calibrated_targets(y, lts, np.full(n, 0.9), q, settings, period_days=30.44)


def test_the_calibration_adds_the_margin_of_an_earlier_window() -> None:
    # demand that grows through the history: the earlier window's calibration falls short on
    # the holdout, so with calibration_margin on the nominal targets are at least as high and
    # the backtest's predicted fill is at least the target plus the margin

    def run(margin: float | None) -> Calibration:
        extra = {} if margin is None else {"calibration_margin": margin}
        return _growing(calibration_mode="cost", **extra)

    off, half, full = run(0.0), run(None), run(1.0)  # the default: half the shortfall
    assert "out-of-sample margin" in half.note and "out-of-sample" not in off.note
    for lo, hi in ((off, half), (half, full)):
        assert (hi.nominal >= lo.nominal - 1e-12).all() and hi.nominal.mean() > lo.nominal.mean()
        assert hi.outcome[0.9][0] > lo.outcome[0.9][0]
    # the backtest predicts the target plus the margin the note names (about 2 points here
    # with the whole shortfall, half of it by default)
    m_full = float(full.note.split("0.9: ")[-1].split(", +")[1].rstrip(")"))
    m_half = float(half.note.split("0.9: ")[-1].split(", +")[1].rstrip(")"))
    assert 0.01 < m_full < 0.05 and m_half == pytest.approx(m_full / 2, abs=1e-4)
    assert full.outcome[0.9][0] == pytest.approx(0.9 + m_full, abs=2e-3)
    assert half.outcome[0.9][0] == pytest.approx(0.9 + m_half, abs=2e-3)


def _dear_b(a: np.ndarray, b: np.ndarray) -> CalibrationCurves:
    """Two groups of equal demand, fills ``a`` and ``b`` over the factor grid, B ten times
    dearer to stock than A."""
    k, f = 2, len(TARGET_FACTORS)
    stock = np.stack([np.linspace(1.0, 10.0, f), 10.0 * np.linspace(1.0, 10.0, f)])
    return CalibrationCurves(
        np.array([[1.0, 0.9], [2.0, 0.9]]), np.asarray(TARGET_FACTORS), np.stack([a, b]),
        np.array([500, 500]), np.array([100.0, 100.0]), np.ones((k, 1), dtype=bool), stock,
    )  # fmt: skip


def test_the_auto_mode_picks_the_calibration_that_holds_one_window_later() -> None:
    lin = np.linspace(0.80, 0.99, len(TARGET_FACTORS))
    early = _dear_b(lin, lin)
    # the same curves one window later: both modes reach 90%, the cost-aware one is kept
    chosen, note = pick_mode(early, early, 0.1)
    assert chosen == {0.9: "cost"} and "cost 0.9000, group 0.9000" in note
    # the cheap group A (which the cost-aware mix raises, B lowered towards the floor) tops out
    # at 90% on the holdout: the mix falls 4 points short, each group at the target does not
    chosen, note = pick_mode(_dear_b(np.minimum(lin, 0.90), lin), early, 0.1)
    assert chosen == {0.9: "group"} and "cost 0.8563" in note
    # both 3 points short: the cost-aware one (a tie goes to it)
    assert pick_mode(_dear_b(lin - 0.03, lin - 0.03), early, 0.1)[0] == {0.9: "cost"}
    # neither reaches it and the group mode fills only 0.3 points more: the cost-aware one;
    # from a point more (MODE_MIN_GAIN; here lowered to the gain), the group mode
    short = _dear_b(np.minimum(lin, 0.985) - 0.02, lin - 0.02)
    cost = replayed_outcome(short, early, cost_aware_factors(early, 0.1))[0.9][0]
    group = replayed_outcome(short, early, group_factors(early))[0.9][0]
    gain = group - cost
    assert 0 < gain < 0.005 and group < 0.9 - 1e-4
    assert pick_mode(short, early, 0.1)[0] == {0.9: "cost"}
    assert pick_mode(short, early, 0.1, min_gain=gain - 1e-6)[0] == {0.9: "group"}
    # the group mode reaches the target and the cost-aware one misses it by under a point:
    # the cost-aware one all the same (the difference is within one window's error)
    near = _dear_b(np.minimum(lin, 0.975), lin)
    fills = {
        m: replayed_outcome(near, early, f)[0.9][0]
        for m, f in (("cost", cost_aware_factors(early, 0.1)), ("group", group_factors(early)))
    }
    assert fills["cost"] < 0.9 - 1e-4 <= fills["group"] < fills["cost"] + 0.01
    assert pick_mode(near, early, 0.1)[0] == {0.9: "cost"}


def test_the_auto_mode_in_the_calibration() -> None:
    # growing demand: the calibration with calibration_mode = auto names the mode per target
    # and plans at the factors of that mode (here the same nominal targets as the mode chosen)
    auto = _growing(calibration_mode="auto")
    assert "mode per target by an earlier window" in auto.note
    picked = "group" if "0.9: group" in auto.note else "cost"
    assert np.array_equal(auto.nominal, _growing(calibration_mode=picked).nominal)


def test_value_classes_split_each_frequency_group_by_cycle_value() -> None:
    # cycle value = unit cost x Q / mean demand: group 1 holds six items of values 1, 2, ..., 6
    # (two per class), group 2 two of equal value (one class), item 8 has no demand
    groups = np.array([1, 1, 1, 1, 1, 1, 2, 2, 0])
    mean = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.0])
    cost = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 3.0, 3.0, 9.0])
    q = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 6.0, 2.0, 2.0, 1.0])
    # values: 1, 2, 3, 4, 5, 6 (NaN cost counts as 1: 1 x 6 / 1); 3, 3; none
    classes = value_classes(groups, mean, cost, q, 3)
    assert classes.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 0]
    assert value_classes(groups, mean, cost, q, 1).tolist() == [0] * 9
    assert value_classes(groups, mean, cost, q, 2).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]


def test_calibration_groups_are_frequency_group_plus_class() -> None:
    y = _monthly(n=90)
    q = np.maximum(np.round(y.mean(axis=1)), 1.0)
    cost = np.random.default_rng(1).uniform(1.0, 100.0, 90)
    codes = calibration_groups(y, cost, q, 3)
    freq = frequency_groups(y)
    classes = value_classes(freq, y.mean(axis=1), cost, q, 3)
    assert np.allclose(codes, freq + classes / 10.0) and set(classes) == {0, 1, 2}
    # from the groups and means (a Dask client's way): the same codes
    given = calibration_groups(None, cost, q, 3, groups=freq, mean_demand=y.mean(axis=1))
    assert np.array_equal(given, codes)
    assert np.array_equal(calibration_groups(y, cost, q, 1), freq.astype(float))
    with pytest.raises(ValueError, match="needs the history"):
        calibration_groups(None, cost, q, 3)


def test_the_group_mode_pools_the_value_classes_of_a_frequency_group() -> None:
    # one backtest aggregated by calibration group and by frequency group (the same policies,
    # simulations and seeds): the group mode's factors on the classes are those of the
    # frequency groups
    y = _monthly(n=90)
    lts = [np.array([float(1 + i % 3)]) for i in range(90)]
    q = np.maximum(np.round(y.mean(axis=1)), 1.0)
    cost = np.random.default_rng(1).uniform(1.0, 100.0, 90)
    fit = y[:, :38]
    fine_groups = calibration_groups(fit, cost, q, 3)
    kw = dict(holdout=18, n_samples=200, unit_cost=cost)
    fine = calibration_curves(y, lts, np.full(90, 0.9), q, groups=fine_groups, **kw)
    coarse = calibration_curves(y, lts, np.full(90, 0.9), q, groups=np.floor(fine_groups), **kw)
    assert len(fine.keys) > len(coarse.keys)
    want = dict(zip(coarse.keys[:, 0], solve_factors(coarse), strict=True))
    got = group_factors(fine)
    assert np.allclose(got, [want[g] for g in np.floor(fine.keys[:, 0])])


def test_the_cost_aware_calibration_buys_fill_where_it_is_cheap() -> None:
    # two halves of the same demand (Poisson, equal rates), one 100 times dearer per unit:
    # with value classes the cheap half is planned at a higher nominal target than the dear
    # one, at less stock value for the same predicted fill; without them both get one target
    rng = np.random.default_rng(4)
    n, months = 120, 60
    rate = np.tile(rng.uniform(0.5, 3.0, n // 2), 2)[:, None]
    y = rng.poisson(rate, (n, months)).astype(float)
    lts = [np.array([2.0])] * n
    q = np.maximum(np.round(y.mean(axis=1)), 1.0)
    cost = np.where(np.arange(n) < n // 2, 1.0, 100.0)
    out = {}
    for k in (1, 3):
        settings = load_settings(
            inventory={"n_samples": 200, "calibration_mode": "cost", "calibration_margin": 0,
                       "calibration_value_classes": k}
        )  # fmt: skip
        out[k] = calibrated_targets(
            y, lts, np.full(n, 0.9), q, settings, period_days=30.44, unit_cost=cost
        )
    cheap, dear = np.arange(n) < n // 2, np.arange(n) >= n // 2
    assert out[3].nominal[cheap].mean() > out[3].nominal[dear].mean() + 0.01
    fill1, value1 = out[1].outcome[0.9]
    fill3, value3 = out[3].outcome[0.9]
    assert fill3 == pytest.approx(0.9, abs=2e-3) and fill1 == pytest.approx(0.9, abs=2e-3)
    assert value3 < 0.95 * value1


def test_the_value_classes_of_a_group_share_its_floor() -> None:
    # one frequency group in two classes, the cheap one with 3/4 of the demand, the other ten
    # times dearer; at the largest factor (lowest nominal target) the cheap class fills 84%,
    # the dear one 74%: the dear class alone is under the floor (80% at a 90% target), the
    # group (81.5%) is not, and raising the cheap class reaches the target.
    # Sharing the floor, the dear class stays at its lowest nominal target; as groups of
    # their own (keys 2 and 3), each must fill 80% and the dear one is raised
    f = len(TARGET_FACTORS)
    cheap, dear = np.linspace(0.84, 0.99, f), np.linspace(0.74, 0.99, f)
    stock = np.stack([np.linspace(1.0, 10.0, f), 10.0 * np.linspace(1.0, 10.0, f)])

    def curves(keys: list[float]) -> CalibrationCurves:
        return CalibrationCurves(
            np.array([[k, 0.9] for k in keys]), np.asarray(TARGET_FACTORS),
            np.stack([cheap, dear]), np.array([500, 500]), np.array([300.0, 100.0]),
            np.ones((2, 1), dtype=bool), stock,
        )  # fmt: skip

    shared = cost_aware_factors(curves([2.0, 2.1]), 0.1)
    apart = cost_aware_factors(curves([2.0, 3.0]), 0.1)
    assert shared[1] == pytest.approx(TARGET_FACTORS[0]) and apart[1] < TARGET_FACTORS[0]
    for got in (shared, apart):  # both reach the target, sharing the floor at less stock
        assert replayed_outcome(curves([2.0, 2.1]), curves([2.0, 2.1]), got)[0.9][0] > 0.9 - 1e-3
    value = {
        k: calibrated_outcome(curves([2.0, 2.1]), v)[0.9][1]
        for k, v in (("s", shared), ("a", apart))
    }
    assert value["s"] < value["a"]


def test_a_missing_calibration_group_follows_one_neighbour_frequency_group() -> None:
    # keys of target 0.9: group 2 in three classes, group 4 in two; group 3 was not seen.
    # Every item of group 3 takes group 2's factors (the lower neighbour on a tie), its
    # nearest class there; a missing class of a seen group takes that group's nearest class
    keys = np.array([[2.0, 0.9], [2.1, 0.9], [2.2, 0.9], [4.0, 0.9], [4.1, 0.9]])
    factors = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    groups = np.array([3.0, 3.2, 2.1, 4.2, 1.0, 5.1])
    got = factors_by_group(keys, factors, groups, np.full(groups.size, 0.9))
    assert got.tolist() == [0.5, 0.7, 0.6, 0.9, 0.5, 0.9]
    # plain frequency groups: the nearest group, the lower on a tie (as before value classes)
    plain = factors_by_group(keys[[0, 3]], factors[[0, 3]], np.array([3.0, 5.0]), np.full(2, 0.9))
    assert plain.tolist() == [0.5, 0.8]


def test_the_group_mode_is_unchanged_by_value_classes() -> None:
    # the group mode solves the pooled frequency groups: the same nominal targets and the same
    # predicted outcome with 1 or 3 classes
    y = _monthly(n=90)
    lts = [np.array([float(1 + i % 3)]) for i in range(90)]
    q = np.maximum(np.round(y.mean(axis=1)), 1.0)
    cost = np.random.default_rng(1).uniform(1.0, 100.0, 90)
    out = {}
    for k in (1, 3):
        settings = load_settings(
            inventory={"n_samples": 200, "calibration_mode": "group",
                       "calibration_value_classes": k}
        )  # fmt: skip
        out[k] = calibrated_targets(
            y, lts, np.full(90, 0.9), q, settings, period_days=30.44, unit_cost=cost
        )
    assert out[3].curves is not None and len(out[3].curves.keys) > len(out[1].curves.keys)
    np.testing.assert_allclose(out[3].nominal, out[1].nominal, rtol=0, atol=1e-12)
    assert out[3].outcome[0.9] == pytest.approx(out[1].outcome[0.9], rel=1e-9)
    # keys that are frequency groups already: group_factors is solve_factors
    assert np.array_equal(group_factors(out[1].curves), solve_factors(out[1].curves))
