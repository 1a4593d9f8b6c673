"""plan_policy: the plan's rules in one function (level shift, calibration, sparse rule,
obsolescence, aggregate mode)."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.config import load_settings
from sparecast.errors import ConfigError
from sparecast.inventory.calibration import calibrated_targets, calibration_window
from sparecast.inventory.decide import plan_policy, target_level_sigma, uncalibrated_aggregate_sigma
from sparecast.inventory.policy import distribution_policy, level_weight, level_weight_sums
from sparecast.methods.distributions import lead_time_demand


def _history() -> np.ndarray:
    rng = np.random.default_rng(5)
    y = rng.poisson(1.0, (12, 300)).astype(float)
    y[0] = 0.0  # never demanded
    y[1, 100:] = 0.0  # stopped 200 periods ago: obsolete
    y[2] = 0.0
    y[2, [40, 200]] = 5.0  # sparse: 2 demands in 300 periods
    y[3, 240:] *= 4.0  # grew over the last 60 periods
    return y


def test_the_rules_per_item() -> None:
    y = _history()
    settings = load_settings(
        inventory={"n_samples": 400, "calibrate": False, "level": "recent", "level_window_days": 60}
    )
    lead = [np.array([5.0])] * 12
    q = np.full(12, 10.0)
    d = plan_policy(y, lead, 0.95, q, settings)
    assert d.rule[:4].tolist() == ["no_demand", "obsolete", "sparse", "target"]
    assert d.obsolete_reason[:2].tolist() == ["no_demand", "no_demand_for_k_intervals"]
    assert (d.policy.reorder_point[:2] == -1).all()
    assert d.replenished.tolist() == [False, False] + [True] * 10
    # the grown item is planned at its recent level (4 a period), not its history's (1.6)
    assert d.lead_time_demand.mean[3] / 6 == pytest.approx(y[3, -60:].mean(), rel=0.15)
    assert d.level_factor[4:].min() > 0.5
    # the other items: the distribution policy at the target on the shifted lead-time demand;
    # with level = history, on lead_time_demand's own
    ref = distribution_policy(d.lead_time_demand, np.full(12, 0.95), q)
    assert np.array_equal(d.policy.reorder_point[4:], ref.reorder_point[4:])
    hist = plan_policy(y, lead, 0.95, q, load_settings(inventory={"n_samples": 400,
                       "calibrate": False, "level": "history"}))  # fmt: skip
    ltd = lead_time_demand(y, lead, review_period=1, n_samples=400, seed=settings.inventory.seed)
    ref = distribution_policy(ltd, np.full(12, 0.95), q)
    assert np.array_equal(hist.policy.reorder_point[3:], ref.reorder_point[3:])
    assert (hist.level_factor == 1).all()
    assert any("sparse item" in n for n in d.notes) and any("recent" in n for n in d.notes)


def test_the_adaptive_level_moves_part_of_the_way_to_the_recent_one() -> None:
    """``level = "adaptive"``: the recent level's factors moved by the weight (given, or
    measured on the history by ``policy.level_weight``): 0 is the history's level, 1 the
    recent one."""
    y = _history()
    base = {"n_samples": 400, "calibrate": False, "level_window_days": 60}
    lead = [np.array([5.0])] * 12
    q = np.full(12, 10.0)
    recent = plan_policy(y, lead, 0.95, q, load_settings(inventory={**base, "level": "recent"}))
    adaptive = load_settings(inventory={**base, "level": "adaptive"})
    for w in (0.0, 0.4, 1.0):
        d = plan_policy(y, lead, 0.95, q, adaptive, level_weight=w)
        assert d.level_factor == pytest.approx(1.0 + w * (recent.level_factor - 1.0))
        assert any(f"a share {w:.3f} of the way" in n for n in d.notes)
    one = plan_policy(y, lead, 0.95, q, adaptive, level_weight=1.0)
    assert np.array_equal(one.policy.reorder_point, recent.policy.reorder_point)
    with pytest.raises(ConfigError, match="weight"):
        plan_policy(y, lead, 0.95, q, adaptive, level_weight=float("nan"))
    # measured on the history when not given: half the items' shifts persist, half revert
    rng = np.random.default_rng(3)
    z = rng.poisson(2.0, (12, 300)).astype(float)
    z[:6, 150:] *= 2.0  # up from period 150 on: in the window before the cut and after it
    z[6:, 150:200] *= 2.0  # up in the window before the cut (200) only
    measured = level_weight(level_weight_sums(z, 60))
    assert 0.2 < measured < 0.8
    d = plan_policy(z, lead, 0.95, q, adaptive)
    ref = plan_policy(z, lead, 0.95, q, load_settings(inventory={**base, "level": "recent"}))
    assert d.level_factor == pytest.approx(1.0 + measured * (ref.level_factor - 1.0))
    assert (d.level_factor != 1.0).any() and (d.level_factor != ref.level_factor).any()


def test_the_sparse_value_policy_is_the_plans_rule() -> None:
    """``sparse_policy = value``: the plan's sparse items (a cheap and a dear one with the same
    history) get ``sparse_value_rule``'s reorder points, the others are untouched."""
    from sparecast.inventory.optimize import sparse_value_rule

    y = _history()
    y[4] = y[2]  # a second sparse item, ten times dearer
    cost = np.ones(12)
    cost[4] = 10.0
    lead, q = [np.array([5.0])] * 12, np.full(12, 10.0)
    base = {"n_samples": 400, "calibrate": False}
    lump = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "sparse_policy": "lump"}), unit_cost=cost)  # fmt: skip
    value = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "sparse_policy": "value"}), unit_cost=cost)  # fmt: skip
    assert value.rule[[2, 4]].tolist() == ["sparse", "sparse"]
    keep = np.setdiff1d(np.arange(12), [2, 4])
    assert np.array_equal(value.policy.reorder_point[keep], lump.policy.reorder_point[keep])
    ref = distribution_policy(value.lead_time_demand, np.full(12, 0.95), q)
    want, _ = sparse_value_rule(ref, value.lead_time_demand, y, np.full(12, 0.95), 0.02, cost)
    assert value.policy.reorder_point[[2, 4]].tolist() == want.reorder_point[[2, 4]].tolist()
    # same demand, the dear item never holds more than the cheap one
    assert value.policy.reorder_point[4] <= value.policy.reorder_point[2]
    assert any("sparse_policy = value" in n for n in value.notes)


def test_the_aggregate_mode() -> None:
    y = _history()
    settings = load_settings(
        inventory={"n_samples": 400, "calibrate": False, "service_mode": "aggregate",
                   "aggregate_target": 0.9}
    )  # fmt: skip
    d = plan_policy(y, [np.array([5.0])] * 12, 0.95, np.full(12, 10.0), settings,
                    unit_cost=np.linspace(1, 5, 12))  # fmt: skip
    assert set(d.rule[3:]) == {"aggregate"} and d.rule[0] == "no_demand"
    assert (d.policy.target[2:] == 0.9).all()
    w = d.lead_time_demand.mean
    live = d.replenished
    fill = (w[live] * d.policy.expected_fill_rate[live]).sum() / w[live].sum()
    assert fill >= 0.9 - 0.01


def test_the_aggregate_mode_plans_for_level_uncertainty() -> None:
    y = _history()
    lead, q, cost = [np.array([5.0])] * 12, np.full(12, 10.0), np.linspace(1, 5, 12)
    base = {"n_samples": 400, "calibrate": False, "service_mode": "aggregate",
            "aggregate_target": 0.95}  # fmt: skip
    plain = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "aggregate_level_sigma": 0.0}), unit_cost=cost)  # fmt: skip
    wide = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "aggregate_level_sigma": 0.5}), unit_cost=cost)  # fmt: skip
    live = plain.replenished
    # the same aggregate target over a wider lead-time demand needs more stock, never less
    assert (cost * wide.policy.reorder_point)[live].sum() > (cost * plain.policy.reorder_point)[
        live
    ].sum()
    # the stationary lead-time demand of the decision is not the mixed one
    np.testing.assert_array_equal(plain.lead_time_demand.samples, wide.lead_time_demand.samples)
    again = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "aggregate_level_sigma": 0.5}), unit_cost=cost)  # fmt: skip
    np.testing.assert_array_equal(again.policy.reorder_point, wide.policy.reorder_point)


def test_the_aggregate_calibration_picks_a_level_sigma_from_its_grid() -> None:
    # stationary Poisson demand: no level uncertainty is needed, so the grid's cheapest
    # member reaching the target is sigma 0; the note lists every sigma tried
    rng = np.random.default_rng(2)
    y = rng.poisson(2.0, (40, 120)).astype(float)
    lead, q, cost = [np.array([3.0])] * 40, np.full(40, 8.0), np.linspace(1, 4, 40)
    base = {"n_samples": 300, "service_mode": "aggregate", "aggregate_target": 0.95}
    d = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "aggregate_level_sigmas": [0.0, 0.6, 1.0]}), unit_cost=cost)  # fmt: skip
    note = next(x for x in d.notes if "aggregate target calibrated" in x)
    assert "with level sigma 0 " in note
    assert all(f"level sigma {k}: value" in note for k in ("0", "0.6", "1"))
    # a grid of one sigma is used as given
    wide = plan_policy(y, lead, 0.95, q, load_settings(
        inventory={**base, "aggregate_level_sigmas": [1.0]}), unit_cost=cost)  # fmt: skip
    note = next(x for x in wide.notes if "aggregate target calibrated" in x)
    assert "with level sigma 1 " in note and "level sigma 0:" not in note


def test_the_aggregate_calibration_adds_the_margin_of_an_earlier_window() -> None:
    # demand flat for 3 years, then growing (to 1.4x at 72 months): the nominal chosen one
    # window earlier (holdout 32-48, little growth) falls short on the holdout (48-72), so the
    # plan aims above its holdout's own choice (as the per-item calibration's margin);
    # without the margin it plans at that choice
    rng = np.random.default_rng(3)
    n, months = 120, 72
    t = np.arange(months)
    shape = np.where(t < 36, 1.0, 1.0 + (t - 36) / 90.0)
    y = rng.poisson(rng.uniform(0.3, 3.0, n)[:, None] * shape[None, :]).astype(float)
    lead, q, cost = [np.array([float(1 + i % 3)]) for i in range(n)], np.full(n, 3.0), 1.0
    base = {"n_samples": 200, "service_mode": "aggregate", "aggregate_target": 0.9,
            "aggregate_level_sigmas": [0.0], "level": "history"}  # fmt: skip

    def nominal(margin: float) -> tuple[float, str]:
        settings = load_settings(inventory={**base, "calibration_margin": margin})
        d = plan_policy(y, lead, 0.9, q, settings, unit_cost=cost, period_days=30.44)
        note = next(x for x in d.notes if "aggregate target calibrated" in x)
        return float(note.split("planned at a nominal ")[1].split(" ")[0]), note

    with_margin, note = nominal(0.5)
    without, plain = nominal(0.0)
    assert "out-of-sample margin from an earlier window" in note and "margin" not in plain
    added = float(note.split(" on the holdout, +")[1].split(":")[0])
    assert 0 < added <= 0.05 and with_margin > without


def test_an_unchecked_aggregate_calibration_only_raises_the_level_sigma() -> None:
    """Lead times long against the history (``decide.unchecked``: a third of the items
    measured, no earlier window): the aggregate calibration runs on the short-lead items, an
    easier test than the plan's, so its level sigma is floored at the uncalibrated one; with
    every lead time short it is checked and kept as calibrated."""
    rng = np.random.default_rng(4)
    y = np.vstack([rng.poisson(3.0, (6, 60)), rng.poisson(0.4, (6, 60))]).astype(float)
    cost, q = np.array([1.0] * 6 + [20.0] * 6), np.full(12, 4.0)
    lead = [np.array([v]) for v in [2.0, 9.0, 20.0, 20.0, 20.0, 20.0] * 2]
    settings = load_settings(inventory={
        "n_samples": 400, "level": "history", "service_mode": "aggregate",
        "aggregate_target": 0.9})  # fmt: skip
    floor = uncalibrated_aggregate_sigma(settings)

    def sigma(leads: list[np.ndarray]) -> tuple[float, str]:
        d = plan_policy(y, leads, 0.9, q, settings, unit_cost=cost)
        note = next(x for x in d.notes if "aggregate target calibrated" in x)
        return float(note.split("with level sigma ")[1].split(" ")[0]), note

    raised, note = sigma(lead)
    assert "not checked (under 50% of the items measured, no earlier window)" in note
    assert raised == pytest.approx(floor, abs=5e-3)
    calibrated = float(note.split("(the uncalibrated one), not ")[1].rstrip(")"))
    assert calibrated < floor
    kept, plain = sigma([np.array([2.0])] * 12)
    assert "not checked" not in plain and kept != pytest.approx(floor, abs=5e-3)


def test_the_aggregate_floor_keeps_every_item_stocked() -> None:
    y = _history()
    lead, q = [np.array([5.0])] * 12, np.full(12, 10.0)
    cost = np.where(np.arange(12) % 2 == 0, 1.0, 100.0)  # dear items the greedy skips
    base = {"n_samples": 400, "calibrate": False, "service_mode": "aggregate",
            "aggregate_target": 0.6, "aggregate_level_sigma": 0.0}  # fmt: skip
    free = plan_policy(y, lead, 0.6, q, load_settings(inventory=base), unit_cost=cost)
    floor = plan_policy(y, lead, 0.6, q, load_settings(
        inventory={**base, "aggregate_min_fill": 0.8}), unit_cost=cost)  # fmt: skip
    live = free.replenished
    assert free.policy.expected_fill_rate[live].min() < 0.8
    assert floor.policy.expected_fill_rate[live].min() >= 0.8 - 1e-9
    with pytest.raises(Exception, match="aggregate_min_fill"):
        load_settings(inventory={"aggregate_min_fill": 1.0})


def test_the_aggregate_mode_on_demand_periods() -> None:
    # the demand-period metric: the note gives the predicted share of demand periods served
    # in full, at the target; the plan's expected_fill_rate stays a fill rate per item
    import re

    y = _history()
    lead, q, cost = [np.array([5.0])] * 12, np.full(12, 10.0), np.linspace(1, 5, 12)
    base = {"n_samples": 400, "calibrate": False, "service_mode": "aggregate",
            "aggregate_target": 0.9, "aggregate_level_sigma": 0.0}  # fmt: skip
    d = plan_policy(y, lead, 0.9, q, load_settings(
        inventory={**base, "aggregate_metric": "demand_periods"}), unit_cost=cost)  # fmt: skip
    note = next(x for x in d.notes if "share of demand periods served in full" in x)
    predicted = float(re.search(r"predicted ([0-9.]+)", note).group(1))  # type: ignore[union-attr]
    assert 0.9 <= predicted < 0.95
    units = plan_policy(y, lead, 0.9, q, load_settings(
        inventory={**base, "aggregate_metric": "fill_rate"}), unit_cost=cost)  # fmt: skip
    assert any("aggregate fill rate of" in x for x in units.notes)
    assert not np.array_equal(units.policy.reorder_point, d.policy.reorder_point)
    # the default counts both: its predicted lower share at the target, a plan of its own
    both = plan_policy(y, lead, 0.9, q, load_settings(inventory=base), unit_cost=cost)
    note = next(x for x in both.notes if "fill rate and share of demand periods" in x)
    assert float(re.search(r"predicted ([0-9.]+)", note).group(1)) >= 0.9  # type: ignore[union-attr]
    assert not np.array_equal(both.policy.reorder_point, units.policy.reorder_point)


def _uncalibratable() -> tuple[
    np.ndarray, np.ndarray, list[np.ndarray], np.ndarray, dict[str, object]
]:
    """Six cheap fast movers and six dear slow ones over 200 periods, lead time 4, and
    inventory settings under which the history is too short to calibrate."""
    rng = np.random.default_rng(3)
    y = np.vstack([rng.poisson(5.0, (6, 200)), rng.poisson(0.3, (6, 200))]).astype(float)
    cost = np.array([1.0] * 6 + [50.0] * 6)
    lead = [np.array([4.0])] * 12
    q = np.full(12, 5.0)
    base = {"n_samples": 400, "calibration_min_periods": 1000, "level": "history"}
    return y, cost, lead, q, base


def test_targets_the_calibration_cannot_measure_are_allocated_by_the_model() -> None:
    """Calibration on, but the history too short for it: the cost-aware modes plan by marginal
    analysis on the model (``decide.allocated_item_targets``, at
    ``decide.target_level_sigma``): no item under the target minus
    ``calibration_floor_gap``, the model's fill over the items (weighted by their demand) at
    the target, with less stock value than every item at the target; the cheap fast movers
    above the target on average, the dear slow ones under it. The group mode plans every item
    at its target."""
    y, cost, lead, q, base = _uncalibratable()
    d = plan_policy(y, lead, 0.9, q, load_settings(inventory=base), unit_cost=cost)
    assert any("targets not calibrated" in n for n in d.notes)
    assert any("marginal analysis on the model" in n for n in d.notes)
    pol = d.policy
    assert pol.target.min() >= 0.8 - 1e-9
    assert pol.target[:6].mean() > 0.9 > pol.target[6:].max()
    assert np.all(pol.expected_fill_rate >= pol.target - 1e-12)
    rate = y.mean(axis=1)
    assert (rate * pol.expected_fill_rate).sum() / rate.sum() >= 0.9 - 1e-9
    # the same lead-time demand with every item at the target: more stock value
    even = distribution_policy(d.lead_time_demand, np.full(12, 0.9), q)
    assert (cost * pol.reorder_point).sum() < (cost * even.reorder_point).sum()
    # at decide.target_level_sigma (0.53 at 90%): a wider lead-time demand than without it
    ltd0 = lead_time_demand(y, lead, review_period=1, n_samples=400, seed=0)
    assert d.lead_time_demand.samples[:6].std() > 1.2 * ltd0.samples[:6].std()

    g = plan_policy(
        y, lead, 0.9, q, load_settings(inventory={**base, "calibration_mode": "group"}),
        unit_cost=cost,
    )  # fmt: skip
    assert np.array_equal(g.policy.target, np.full(12, 0.9))
    assert not any("marginal analysis" in n for n in g.notes)


def test_the_uncalibrated_level_sigma_grows_with_the_target() -> None:
    """``decide.target_level_sigma``: the sigma given for 95%, scaled by ``(z(t) / z(0.95)) **
    level_sigma_power`` (hand-computed with z(0.90) = 1.28155, z(0.95) = 1.64485, z(0.98) =
    2.05375); 0 at 50%; power 0: one sigma. In the plan, the per-item allocation and the
    uncalibrated aggregate mode at 98% then hold more stock than with one sigma."""
    s = load_settings()
    got = target_level_sigma(0.6, np.array([0.5, 0.9, 0.95, 0.98]), s)
    want = [0.0, 0.6 * (1.28155 / 1.64485) ** 0.5, 0.6, 0.6 * (2.05375 / 1.64485) ** 0.5]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    np.testing.assert_allclose(got[1:], [0.52963, 0.6, 0.67044], rtol=1e-4)
    flat = load_settings(inventory={"level_sigma_power": 0.0})
    np.testing.assert_allclose(target_level_sigma(0.6, np.array([0.9, 0.98]), flat), [0.6, 0.6])
    whole = load_settings(inventory={"level_sigma_power": 1.0})
    np.testing.assert_allclose(
        target_level_sigma(0.3, 0.98, whole), 0.3 * 2.05375 / 1.64485, rtol=1e-4
    )
    agg = load_settings(inventory={"aggregate_target": 0.98, "aggregate_level_sigma": 0.3})
    assert uncalibrated_aggregate_sigma(agg) == pytest.approx(0.3 * 1.11739, rel=1e-4)

    y, cost, lead, q, base = _uncalibratable()
    value: dict[tuple[str, float], float] = {}
    for mode, calibrate in (("item", True), ("aggregate", True), ("aggregate", False)):
        for power in (0.0, 0.5):
            inv = {
                **base,
                "level_sigma_power": power,
                "service_mode": mode,
                "aggregate_target": 0.98,
                "calibrate": calibrate,
            }
            d = plan_policy(y, lead, 0.98, q, load_settings(inventory=inv), unit_cost=cost)
            if mode == "item":
                note = next(n for n in d.notes if "marginal analysis on the model" in n)
                assert f"target 0.9800 (level sigma {0.67 if power else 0.6:.2f})" in note
            elif calibrate:
                assert any("aggregate target not calibrated" in n for n in d.notes)
            value[(f"{mode}{calibrate}", power)] = float((cost * d.policy.reorder_point).sum())
    for key in ("itemTrue", "aggregateTrue", "aggregateFalse"):
        assert value[(key, 0.5)] > value[(key, 0.0)], key
    # calibrate on but not possible and calibrate off: the same aggregate plan
    assert value[("aggregateTrue", 0.5)] == value[("aggregateFalse", 0.5)]


def test_a_calibration_of_a_few_short_lead_times_without_an_earlier_window_is_not_used() -> None:
    """Lead times long against the history: the calibration runs (a third of the items fit
    its holdout, over the quarter it needs) but measures under half of them
    (``decide.ALLOCATE_MEASURED_SHARE``) and one window earlier too few to check it, so the
    cost-aware modes plan by the model's allocation, as where it cannot run at all; with
    every lead time short, the same history is planned at its calibrated targets. The group
    mode keeps the calibration."""
    rng = np.random.default_rng(4)
    y = np.vstack([rng.poisson(3.0, (6, 60)), rng.poisson(0.4, (6, 60))]).astype(float)
    cost = np.array([1.0] * 6 + [20.0] * 6)
    q = np.full(12, 4.0)
    # holdout 20 periods: lead time 2 (warm-up 3) and 9 (10) measured there, 20 not; one
    # window earlier (holdout 13) only lead time 2: 2 items of 12
    lead = [np.array([v]) for v in [2.0, 9.0, 20.0, 20.0, 20.0, 20.0] * 2]
    base = {"n_samples": 400, "level": "history"}
    settings = load_settings(inventory=base)
    cal = calibrated_targets(y, lead, np.full(12, 0.9), q, settings, unit_cost=cost)
    win = calibration_window(60, lead, settings)
    assert cal.calibrated and win.measured.mean() == pytest.approx(4 / 12)
    assert "under 25%" in calibration_window(60 - win.holdout, lead, settings).why
    d = plan_policy(y, lead, 0.9, q, settings, unit_cost=cost)
    assert any(n.startswith("calibration not used: it measured 33% of the items") for n in d.notes)
    assert any("marginal analysis on the model" in n for n in d.notes)
    assert d.policy.target.min() >= 0.8 - 1e-9
    rate = y.mean(axis=1)
    assert (rate * d.policy.expected_fill_rate).sum() / rate.sum() >= 0.9 - 1e-9

    short = [np.array([2.0])] * 12
    assert calibration_window(60 - win.holdout, short, settings).why == ""
    s = plan_policy(y, short, 0.9, q, settings, unit_cost=cost)
    assert any("targets calibrated" in n for n in s.notes)
    assert not any("not used" in n or "marginal analysis" in n for n in s.notes)

    g = plan_policy(
        y, lead, 0.9, q, load_settings(inventory={**base, "calibration_mode": "group"}),
        unit_cost=cost,
    )  # fmt: skip
    assert any("targets calibrated" in n for n in g.notes)
    assert not any("not used" in n or "marginal analysis" in n for n in g.notes)
