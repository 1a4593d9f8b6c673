"""Inventory policy: hand-computed reorder points, fill rates, order rounding; properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from sparecast.config import InventorySettings
from sparecast.errors import ConfigError, DataValidationError
from sparecast.inventory.policy import (
    PolicyResult,
    SortedSamples,
    apply_sparse_rule,
    critical_ratio,
    distribution_policies,
    distribution_policy,
    expected_shortage,
    fill_rate_from_samples,
    fill_rate_sorted,
    inventory_position,
    level_factor,
    level_mixture,
    level_weight,
    level_weight_sums,
    normal_loss,
    normal_policy,
    obsolete_items,
    order_quantity,
    protection_review_periods,
    reorder_point_from_samples,
    rescale_samples,
    resolve_item_column,
    round_order_quantity,
    sba_one_step,
    service_targets,
    sparse_items,
    sparse_reorder_point,
    stockout_probability,
    suggested_order,
    with_reorder_points,
)
from sparecast.methods.distributions import lead_time_demand
from sparecast.methods.intermittent import sba
from sparecast.methods.robust import demand_recency


def test_round_order_quantity_by_hand() -> None:
    q = round_order_quantity(
        np.array([0.0, 3.0, 7.0, 7.0, 8.0, 2.5]), [1, 5, 1, 10, 1, 1], [1, 1, 4, 4, 4, 0.5]
    )
    # 0 stays 0; MOQ 5; 7 -> 8 (lot 4); max(7, MOQ 10) -> 12 (lot 4); 8 exact; 2.5 on lot 0.5
    assert q.tolist() == [0.0, 5.0, 8.0, 12.0, 8.0, 2.5]
    with pytest.raises(ConfigError, match="lot_size"):
        round_order_quantity(np.array([1.0]), 1.0, 0.0)


def test_order_quantity_covers_days_at_least_one() -> None:
    q = order_quantity(np.array([0.0, 0.1, 2.0]), 30.0, moq=1.0, lot_size=5.0)
    assert q.tolist() == [5.0, 5.0, 60.0]


def test_inventory_position_by_hand() -> None:
    assert inventory_position(np.array([5.0]), np.array([3.0]), np.array([2.0])).tolist() == [6.0]


def test_critical_ratio() -> None:
    assert critical_ratio(19.0) == pytest.approx(0.95)
    assert critical_ratio(np.array([1.0, 3.0])).tolist() == [0.5, 0.75]
    with pytest.raises(ConfigError, match="stockout_weight"):
        critical_ratio(0.0)


def test_service_targets_tiers_items_and_overrides() -> None:
    inv = InventorySettings(
        targets={"high_volume": 0.99, "regular": 0.97},
        default_target=0.9,
        item_targets={"B": 0.8},
    )
    t = service_targets(
        ["high_volume", "regular", "lumpy?", "regular"],
        inv,
        item_ids=["A", "B", "C", "D"],
        item_override=np.array([np.nan, np.nan, np.nan, 0.85]),
    )
    assert t.tolist() == [0.99, 0.8, 0.9, 0.85]
    cost = service_targets(["regular"], InventorySettings(target_type="cost", stockout_weight=9))
    assert cost.tolist() == [pytest.approx(0.9)]
    with pytest.raises(ConfigError, match="item_ids"):
        service_targets(["regular"], inv)
    with pytest.raises(DataValidationError, match="service_target"):
        service_targets(["regular"], InventorySettings(), item_override=np.array([1.5]))


def test_settings_reject_bad_targets() -> None:
    with pytest.raises(ValueError, match="unknown tier"):
        InventorySettings(targets={"fast": 0.9})
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        InventorySettings(item_targets={"A": 1.0})


def test_cycle_service_reorder_point_by_hand() -> None:
    samples = np.tile(np.arange(100, dtype=np.float32), (2, 1))  # D uniform on 0..99
    s = reorder_point_from_samples(samples, np.array([0.9, 0.95]), np.ones(2), "cycle_service")
    assert s.tolist() == [89.0, 94.0]  # P(D <= 89) = 0.90, P(D <= 94) = 0.95
    assert stockout_probability(samples, np.array([89.0, 94.0])).tolist() == [
        pytest.approx(0.1),
        pytest.approx(0.05),
    ]


def test_classical_fill_rate_by_hand() -> None:
    samples = np.array([[0.0, 10.0]], dtype=np.float32)  # D = 0 or 10
    # E(D-5)+ = 2.5, E(D-15)+ = 0 -> 1 - 2.5/10
    assert fill_rate_from_samples(samples, np.array([5.0]), np.array([10.0]))[0] == 0.75
    assert expected_shortage(samples, np.array([5.0]))[0] == 2.5


def test_exact_fill_rate_by_hand() -> None:
    # lead-time demand 0, one review period adds 0 or 2; Q = 2, s = 0: IP uniform on {1, 2}.
    # shortage per period = (E(D-1)+ + E(D-2)+) / 2 = (0.5 + 0) / 2; demand per period 1
    lead = np.zeros((1, 2), dtype=np.float32)
    total = np.array([[0.0, 2.0]], dtype=np.float32)
    f = fill_rate_from_samples(total, np.array([0.0]), np.array([2.0]), lead_samples=lead)
    assert f[0] == pytest.approx(0.75)
    # continuous demand: the integral version, (E(D-x)+ over x in (0, 2]) / 2 = (2^2/2 / 2) / 2
    f = fill_rate_from_samples(
        total, np.array([0.0]), np.array([2.0]), lead_samples=lead, integer=np.array([False])
    )
    assert f[0] == pytest.approx(1.0 - (2.0 * 2.0 / 2.0 / 2.0 / 2.0))


def _poisson_loss(mean: float, level: float) -> float:
    k = np.arange(int(level) + 1, int(mean * 10 + 200))
    return float(((k - level) * stats.poisson.pmf(k, mean)).sum())


def test_exact_fill_rate_matches_poisson_base_stock() -> None:
    # Q = 1: base stock S = s + 1; fill = 1 - (E(D_{L+1}-S)+ - E(D_L-S)+) / mu
    mu, lead = 0.8, 5
    ltd = lead_time_demand(
        np.random.default_rng(0).poisson(mu, (1, 20_000)).astype(float),
        np.array([float(lead)]),
        review_period=1,
        method="poisson",
        n_samples=200_000,
        parameter_uncertainty=False,
        level_alpha=0.0,
    )
    rate = ltd.params.mean[0]
    for s in (2, 4, 6):
        big_s = s + 1
        exact = (
            1 - (_poisson_loss(rate * (lead + 1), big_s) - _poisson_loss(rate * lead, big_s)) / rate
        )
        got = fill_rate_from_samples(
            ltd.samples, np.array([float(s)]), np.array([1.0]), lead_samples=ltd.lead_samples
        )[0]
        assert got == pytest.approx(exact, abs=0.006)


def test_fill_rate_reorder_point_is_the_smallest_reaching_the_target() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((20, 300)) < 0.3) * rng.integers(1, 8, (20, 300)).astype(float)
    ltd = lead_time_demand(y, np.full(20, 6.0), review_period=1, n_samples=500)
    q = order_quantity(y.mean(axis=1), 10.0)
    target = np.full(20, 0.95)
    s = reorder_point_from_samples(
        ltd.samples, target, q, lead_samples=ltd.lead_samples, integer=ltd.params.integer
    )
    for i in range(20):
        grid = np.arange(0, ltd.samples[i].max() + 2)
        fills = fill_rate_from_samples(
            np.repeat(ltd.samples[i : i + 1], grid.size, axis=0),
            grid,
            np.full(grid.size, q[i]),
            lead_samples=np.repeat(ltd.lead_samples[i : i + 1], grid.size, axis=0),
        )
        assert s[i] == grid[np.argmax(fills >= 0.95)]


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("with_lead", [True, False])
def test_reorder_point_from_sorted_samples_equals_the_direct_fill_rate(
    integer: bool, with_lead: bool
) -> None:
    # the bisection reads the fill rate from sorted samples and suffix sums (policy.SortedSamples):
    # every reorder point must be the smallest integer whose fill_rate_from_samples (read
    # sample by sample) reaches the target; continuous samples and large volumes included
    rng = np.random.default_rng(7)
    n_items, n = 60, 400
    scale = rng.choice([1.0, 30.0, 5000.0], n_items)[:, None]
    dl = rng.poisson(rng.gamma(0.7, 2.0, (n_items, 1)) * scale * rng.gamma(2, 0.5, (n_items, n)))
    d = dl + rng.poisson(scale / 4, (n_items, n))
    d, dl = d.astype(float), dl.astype(float)
    if not integer:
        d, dl = d * 0.37, dl * 0.37
    lead = dl if with_lead else None
    ints = np.full(n_items, integer)
    q = np.maximum(np.round(rng.gamma(1.0, 10.0, n_items) * scale[:, 0] / 10), 1.0)
    target = rng.uniform(0.5, 0.999, n_items)
    s = reorder_point_from_samples(d, target, q, lead_samples=lead, integer=ints)

    def direct(rows: np.ndarray, s_val: np.ndarray) -> np.ndarray:
        return fill_rate_from_samples(
            d[rows],
            s_val,
            q[rows],
            lead_samples=None if lead is None else lead[rows],
            integer=ints[rows],
        )

    rows = np.arange(n_items)
    assert (direct(rows, s) >= target).all()
    if integer:  # integer=None means all integer, in the sorted path as in the direct one
        tails = SortedSamples(d), None if lead is None else SortedSamples(lead)
        np.testing.assert_array_equal(
            fill_rate_sorted(*tails, rows, s, q),
            fill_rate_from_samples(d, s, q, lead_samples=lead),
        )
    low = s > 0
    assert (direct(rows[low], s[low] - 1) < target[low]).all()
    # the policy of several targets at once: the same as one call per target
    ltd = lead_time_demand(
        (rng.random((8, 200)) < 0.2) * rng.integers(1, 9, (8, 200)).astype(float),
        np.full(8, 4.0),
        review_period=1,
        n_samples=300,
    )
    qq = np.full(8, 5.0)
    tgts = [np.full(8, t) for t in (0.8, 0.95, 0.99)]
    many = distribution_policies(ltd, tgts, qq)
    for t, pol in zip(tgts, many, strict=True):
        one = distribution_policy(ltd, t, qq)
        np.testing.assert_array_equal(pol.reorder_point, one.reorder_point)
        np.testing.assert_array_equal(
            pol.expected_fill_rate,
            fill_rate_from_samples(
                ltd.samples,
                one.reorder_point,
                qq,
                lead_samples=ltd.lead_samples,
                integer=ltd.params.integer,
            ),
        )
        np.testing.assert_array_equal(
            pol.cycle_service_level, (ltd.samples <= one.reorder_point[:, None]).mean(axis=1)
        )


def test_distribution_policy_end_to_end() -> None:
    rng = np.random.default_rng(2)
    y = rng.poisson(2.0, (5, 400)).astype(float)
    ltd = lead_time_demand(y, np.full(5, 9.0), review_period=1, n_samples=2000)
    q = order_quantity(y.mean(axis=1), 7.0)
    pol = distribution_policy(ltd, np.full(5, 0.97), q)
    assert (pol.expected_fill_rate >= 0.97).all()
    assert (pol.order_up_to == pol.reorder_point + q).all()
    np.testing.assert_allclose(pol.safety_stock, pol.reorder_point - ltd.mean)
    csl = distribution_policy(ltd, np.full(5, 0.9), q, target_type="cycle_service")
    assert (csl.cycle_service_level >= 0.9).all()
    frame = pol.to_frame([f"I{i}" for i in range(5)])
    assert frame.columns[:3] == ["item_id", "reorder_point", "order_up_to"]
    assert frame.height == 5
    with pytest.raises(DataValidationError, match="item ids"):
        pol.to_frame(["A"])


@settings(max_examples=30, deadline=None)
@given(
    y=arrays(np.float64, (2, 60), elements=st.integers(0, 12).map(float)),
    t1=st.floats(0.5, 0.99),
    t2=st.floats(0.5, 0.99),
    kind=st.sampled_from(["fill_rate", "cycle_service"]),
)
def test_higher_target_gives_higher_reorder_point(
    y: np.ndarray, t1: float, t2: float, kind: str
) -> None:
    lo, hi = sorted((t1, t2))
    ltd = lead_time_demand(y, np.full(2, 4.0), review_period=1, n_samples=300)
    q = order_quantity(y.mean(axis=1), 5.0)
    s_lo = distribution_policy(ltd, np.full(2, lo), q, target_type=kind).reorder_point
    s_hi = distribution_policy(ltd, np.full(2, hi), q, target_type=kind).reorder_point
    assert (s_hi >= s_lo).all()
    assert (s_lo >= 0).all() and (s_lo == np.round(s_lo)).all()


def test_normal_loss_and_normal_policy_by_hand() -> None:
    assert normal_loss(np.array([0.0]))[0] == pytest.approx(1 / np.sqrt(2 * np.pi))
    assert normal_loss(np.array([np.inf]))[0] == 0.0
    # d = 2, sigma_d = 1, L = 4 +- 1: mu = 8, sigma = sqrt(4 * 1 + 4 * 1)
    args = (np.array([2.0]), np.array([1.0]), np.array([4.0]), np.array([1.0]))
    pol = normal_policy(*args, np.array([0.95]), np.array([10.0]), target_type="cycle_service")
    sigma = np.sqrt(8.0)
    assert pol.reorder_point[0] == np.ceil(8 + stats.norm.ppf(0.95) * sigma)  # 13
    assert pol.reorder_point[0] == 13.0
    fill = normal_policy(*args, np.array([0.99]), np.array([10.0]))
    k = (fill.reorder_point[0] - 8.0) / sigma
    k_exact = (fill.reorder_point[0] - 1 - 8.0) / sigma
    # the rounded-up s reaches G(k) <= (1 - beta) Q / sigma; one unit less does not
    assert normal_loss(np.array([k]))[0] <= 0.01 * 10 / sigma + 1e-9
    assert normal_loss(np.array([k_exact]))[0] > 0.01 * 10 / sigma
    rss = normal_policy(
        *args, np.array([0.95]), np.array([10.0]), review_period=2, target_type="cycle_service"
    )
    assert rss.mean_demand[0] == 12.0  # d (L + R)


def test_sba_one_step_matches_sba_kernel() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((40, 150)) < 0.15) * rng.integers(1, 6, (40, 150)).astype(float)
    forecast, rmse = sba_one_step(y)
    np.testing.assert_allclose(forecast, sba(y, 1)[:, 0], atol=1e-9)
    assert (rmse >= 0).all()
    # by hand: y = [0, 2, 0, 4]: start at period 1 (z=2, p=2); error at 2: 0 - 0.95 * 1
    f, e = sba_one_step(np.array([[0.0, 2.0, 0.0, 4.0]]))
    # period 3: forecast 0.95 * 2 / 2 = 0.95; error 4 - 0.95
    assert e[0] == pytest.approx(np.sqrt(((0.95) ** 2 + (4 - 0.95) ** 2) / 2))
    z, p = 2 + 0.1 * (4 - 2), 2 + 0.1 * (2 - 2)
    assert f[0] == pytest.approx(0.95 * z / p)


def test_suggested_order_by_hand() -> None:
    pol = PolicyResult(
        policy="sQ",
        reorder_point=np.array([5.0, 5.0, 5.0]),
        order_up_to=np.array([15.0, 15.0, 15.0]),
        order_quantity=np.array([10.0, 10.0, 10.0]),
        safety_stock=np.zeros(3),
        mean_demand=np.ones(3),
        target=np.full(3, 0.95),
        expected_fill_rate=np.ones(3),
        cycle_service_level=np.ones(3),
        method=np.array(["x"] * 3),
    )
    # IP -7: two lots lift it to 13 > 5; IP 5: one lot; IP 6: nothing
    assert suggested_order(pol, np.array([-7.0, 5.0, 6.0])).tolist() == [20.0, 10.0, 0.0]
    rss = PolicyResult(**{**pol.__dict__, "policy": "RsS"})
    # up to S = 15, rounded to lots of 4 and at least MOQ 8
    got = suggested_order(rss, np.array([3.0, 12.0, 5.0]), moq=8.0, lot_size=4.0)
    assert got.tolist() == [12.0, 0.0, 12.0]
    got = suggested_order(rss, np.array([4.0, 10.0, 2.0]), moq=[1, 1, 20], lot_size=[1, 1, 1])
    assert got.tolist() == [11.0, 0.0, 20.0]


def test_protection_review_periods() -> None:
    assert protection_review_periods("sQ", 7) == 1.0
    assert protection_review_periods("RsS", 7) == 7.0
    with pytest.raises(ConfigError, match="policy"):
        protection_review_periods("EOQ", 7)


def test_resolve_item_column() -> None:
    items = pl.DataFrame({"item_id": ["A", "B"], "moq": [5.0, None]})
    got = resolve_item_column(items, ["B", "A", "C"], "moq", 1.0)
    assert got.tolist() == [1.0, 5.0, 1.0]
    assert resolve_item_column(items, ["A"], "lot_size", 2.0).tolist() == [2.0]


def test_inventory_settings_from_toml_and_environment(tmp_path, monkeypatch) -> None:
    from sparecast.config import load_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[inventory]\npolicy = "RsS"\nreview_period_days = 14\n'
        'targets = { high_volume = 0.99 }\nitem_targets = { "P-1" = 0.8 }\n'
    )
    monkeypatch.setenv("SPARECAST_INVENTORY__DISTRIBUTION", "bootstrap")
    inv = load_settings(cfg).inventory
    assert (inv.policy, inv.review_period_days, inv.distribution) == ("RsS", 14, "bootstrap")
    assert inv.targets == {"high_volume": 0.99}
    t = service_targets(["high_volume", "regular"], inv, item_ids=["P-1", "P-2"])
    assert t.tolist() == [0.8, inv.default_target]


# --------------------------------------------------------------------------------------------
# Sparse, dying and shifting demand
# --------------------------------------------------------------------------------------------


def test_demand_recency_and_obsolete_items_by_hand() -> None:
    y = np.zeros((4, 20))
    y[0, [0, 5, 10, 15]] = 1.0  # interval 20 / 4 = 5, last demand 4 periods ago: alive
    y[1, [0, 1, 2, 3]] = 2.0  # interval 20 / 4 = 5, 16 periods since: 3.2 intervals
    y[2, [10]] = 1.0  # interval 10 / 1 = 10, 9 periods since
    has, since, interval = demand_recency(y)
    assert has.tolist() == [True, True, True, False]
    assert since.tolist() == [4.0, 16.0, 9.0, 20.0]
    assert interval[:3].tolist() == [5.0, 5.0, 10.0] and np.isnan(interval[3])
    obsolete, reason = obsolete_items(y, 3.0)
    assert obsolete.tolist() == [False, True, False, True]
    assert reason.tolist() == ["", "no_demand_for_k_intervals", "", "no_demand"]
    # 4 intervals: item 1 (3.2) is kept; 0 flags only the item without demand
    assert obsolete_items(y, 4.0)[0].tolist() == [False, False, False, True]
    assert obsolete_items(y, 0.0)[0].tolist() == [False, False, False, True]


def test_obsolete_rule_matches_the_forecasting_decay_factor() -> None:
    """Flagged exactly where the decay factor exp(-decay max(0, s/p - 1)) of
    sparecast.methods.robust falls below exp(-decay (k - 1))."""
    from sparecast.methods.robust import decay_factor

    rng = np.random.default_rng(5)
    y = np.where(rng.random((300, 60)) < rng.uniform(0.02, 0.3, (300, 1)), 1.0, 0.0)
    y[:100, -30:] = 0.0  # some items die
    k, decay = 3.0, 0.5
    obsolete, reason = obsolete_items(y, k)
    has = y.sum(axis=1) > 0
    factor = decay_factor(y, decay)
    assert (obsolete[has] == (factor[has] < np.exp(-decay * (k - 1)) - 1e-12)).all()
    assert obsolete[:100].sum() > obsolete[100:].sum()


def test_sparse_reorder_point_by_hand() -> None:
    # P(D = 0) = 0.9: a 90% target needs no stock at all (s = -1, hold nothing)
    none = np.array([[0.0] * 9 + [5.0]])
    # P(D = 0) = 0.7, then lumps of 3 (0.2) and 8 (0.1): 90% -> cover one lump of 3 (s = 2)
    lump = np.array([[0.0] * 7 + [3.0, 3.0, 8.0]])
    samples = np.vstack([none, lump])
    s = sparse_reorder_point(samples, np.array([0.9, 0.9]), np.array([5.0, 8.0]))
    assert s.tolist() == [-1.0, 2.0]
    # never above the fill-rate reorder point
    assert sparse_reorder_point(lump, np.array([0.9]), np.array([1.0])).tolist() == [1.0]
    # the fill-rate rule covers into the lump tail (Q = 1: 1 - P(D > s) >= 0.9 at s = 5)
    fill_s = reorder_point_from_samples(lump, np.array([0.9]), np.array([1.0]))
    assert fill_s.tolist() == [5.0]


def test_level_factor_by_hand() -> None:
    y = np.zeros((3, 20))
    y[0, -10:] = 2.0  # recent rate 2 (10 demands in the window)
    y[1, -10:] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]  # two demands only: too few to tell
    y[2, :] = 1.0
    f = level_factor(y, np.array([1.0, 0.05, 0.1]), 10)
    # 2 / 1; unchanged (2 < 3 demands); 1 / 0.1 = 10 clipped to 4
    assert f.tolist() == [2.0, 1.0, 4.0]
    assert level_factor(y, np.array([0.0, 1.0, 1.0]), 10)[0] == 1.0
    with pytest.raises(ConfigError, match="window"):
        level_factor(y, np.ones(3), 0)


def test_level_weight_by_hand() -> None:
    """30 periods: the last 10 held out, the recent window the last 6 of the first 20."""
    y = np.zeros((4, 30))
    y[0, :14], y[0, 14:] = 1.0, 3.0  # shifted up and stayed: h 1.6, r 3, f 3
    y[1, :14], y[1, 14:20], y[1, 20:] = 2.0, 0.5, 1.55  # fell and came back: h 1.55, r 0.5
    y[3, :20] = 1.0
    y[3, 14:20] = [0, 0, 0, 0, 5, 5]  # two demands in the window: no recent level (r = h)
    y[3, 20:] = 9.0
    num, den = level_weight_sums(y, 6)
    # item 0: 1.4 * 1.4 / 1.6 in both sums; item 1: 0 and 1.05^2 / 1.55; items 2 (no demand)
    # and 3 (r = h) add nothing
    assert num == pytest.approx(1.4 * 1.4 / 1.6)
    assert den == pytest.approx(1.4 * 1.4 / 1.6 + 1.05**2 / 1.55)
    assert level_weight((num, den)) == round(num / den, 3) == 0.633
    # chunks of items add up to the whole panel
    parts = [level_weight_sums(y[:2], 6), level_weight_sums(y[2:], 6)]
    assert (parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]) == pytest.approx((num, den))
    # clipped to [0, 1]; nothing measurable (too short, no demand): the history's level
    assert level_weight((5.0, 1.0)) == 1.0 and level_weight((-1.0, 1.0)) == 0.0
    assert level_weight(level_weight_sums(y[:, :2], 6)) == 0.0
    assert level_weight_sums(np.zeros((3, 30)), 6) == (0.0, 0.0)
    # a shift that always persists: weight 1; one that always reverts: weight 0
    assert level_weight(level_weight_sums(y[:1], 6)) == 1.0
    assert level_weight(level_weight_sums(y[1:2], 6)) == 0.0


def test_rescale_samples_keeps_means_and_integers() -> None:
    rng = np.random.default_rng(2)
    samples = rng.poisson(3.0, (3, 20000)).astype(np.float32)
    out = rescale_samples(samples, np.array([1.5, 0.4, 1.0]), np.array([True, True, False]))
    assert out.dtype == np.float32
    assert (out[:2] == np.round(out[:2])).all()  # integers stay integers
    assert out.mean(axis=1) == pytest.approx([4.5, 1.2, 3.0], rel=0.02)
    assert np.array_equal(out[2], samples[2])  # factor 1: untouched
    # an item's result depends on its own samples and factor only (the Dask planner rescales
    # per chunk): the last two items alone get what they get beside the first
    alone = rescale_samples(samples[1:], np.array([0.4, 1.0]), np.array([True, False]))
    assert np.array_equal(alone, out[1:])


def test_with_reorder_points_recomputes_the_item() -> None:
    y = np.random.default_rng(4).poisson(1.0, (3, 60)).astype(np.float64)
    ltd = lead_time_demand(y, [np.array([3.0])] * 3, review_period=1.0, n_samples=400)
    q = np.full(3, 4.0)
    pol = distribution_policy(ltd, np.full(3, 0.95), q)
    new = with_reorder_points(pol, ltd, np.array([False, True, False]), np.full(3, -1.0))
    assert new.reorder_point[[0, 2]].tolist() == pol.reorder_point[[0, 2]].tolist()
    assert new.reorder_point[1] == -1.0 and new.order_up_to[1] == 3.0
    assert new.safety_stock[1] == pytest.approx(-1.0 - pol.mean_demand[1])
    want = fill_rate_from_samples(
        ltd.samples[1:2], np.array([-1.0]), q[1:2], lead_samples=ltd.lead_samples[1:2]
    )
    assert new.expected_fill_rate[1] == pytest.approx(want[0])
    assert new.expected_fill_rate[1] < pol.expected_fill_rate[1]


def test_apply_sparse_rule_changes_only_sparse_items() -> None:
    rng = np.random.default_rng(6)
    y = rng.poisson(1.0, (3, 200)).astype(np.float64)
    y[1] = 0.0
    y[1, [20, 120]] = 6.0  # 1% of periods: sparse
    y[2] = 0.0  # no demand: not sparse (its own group)
    assert sparse_items(y, 0.02).tolist() == [False, True, False]
    ltd = lead_time_demand(y, [np.array([10.0])] * 3, review_period=1.0, n_samples=2000)
    q = np.full(3, 2.0)
    targets = np.full(3, 0.9)
    pol = distribution_policy(ltd, targets, q)
    new, mask = apply_sparse_rule(pol, ltd, y, targets, 0.02)
    assert mask.tolist() == [False, True, False]
    want = sparse_reorder_point(ltd.samples[1:2], targets[1:2], pol.reorder_point[1:2])
    assert new.reorder_point[1] == want[0] < pol.reorder_point[1]
    assert new.reorder_point[[0, 2]].tolist() == pol.reorder_point[[0, 2]].tolist()
    same, none = apply_sparse_rule(pol, ltd, y, targets, 0.0)
    assert same is pol and not none.any()


def test_level_mixture_keeps_means_widens_the_tail_and_moves_paths_together() -> None:
    samples = np.full((2, 40000), 10.0, dtype=np.float32)
    ints = np.array([True, False])
    out = level_mixture(samples, 0.5, ints, seed=3)
    assert out.dtype == np.float32
    # mean kept (E exp(sigma z - sigma^2/2) = 1), log-sd sigma on the continuous item
    assert out.mean(axis=1) == pytest.approx([10.0, 10.0], rel=0.01)
    assert np.log(out[1]).std() == pytest.approx(0.5, rel=0.02)
    # P(factor > 2) = P(z > (ln 2 + 0.125) / 0.5) = 1 - Phi(1.636) = 0.051
    assert (out[1] > 20.0).mean() == pytest.approx(0.051, abs=0.005)
    assert (out[0] == np.round(out[0])).all()
    # the same seed gives the same factors: another sample array moves with the same paths
    twice = level_mixture(samples * 2, 0.5, np.array([False, False]), seed=3)
    np.testing.assert_allclose(twice[1], 2 * out[1], rtol=1e-6)
    assert level_mixture(samples, 0.0, ints) is samples
    with pytest.raises(ConfigError, match="sigma"):
        level_mixture(samples, -0.1, ints)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_level_mixture_factors_are_stratified(seed: int) -> None:
    """The factors are shared by all items, so their sample mean and quantiles must follow the
    lognormal's closely for one draw of n = 1000 paths (a plain random draw misses the mean by
    about sigma / sqrt(n) = 1.6% at sigma 0.5, and its quantiles leave their strata)."""
    n, sigma = 1000, 0.5
    samples = np.full((2, n), 10.0)
    out = level_mixture(samples, sigma, np.array([False, False]), seed=seed)
    factor = out[0] / 10.0
    assert factor.mean() == pytest.approx(1.0, abs=0.003)
    # the k-th smallest factor lies in the k-th of n equal-probability strata of the lognormal
    z = np.sort(np.log(factor) + 0.5 * sigma**2) / sigma
    edges = stats.norm.ppf(np.arange(n + 1) / n)
    assert ((z >= edges[:-1] - 1e-9) & (z <= edges[1:] + 1e-9)).all()
    q = np.array([0.05, 0.5, 0.9, 0.98])
    want = stats.lognorm.ppf(q, sigma, scale=np.exp(-0.5 * sigma**2))
    np.testing.assert_allclose(np.quantile(factor, q), want, rtol=0.01)
    # the rounding uniforms too: an integer item of 0.3 per path (at a level sigma too small
    # to move it) rounds up on exactly 300 of 1000 paths (a plain draw: 300 +- 14.5)
    ints = level_mixture(np.full((1, n), 0.3), 1e-9, np.array([True]), seed=seed)
    assert set(np.unique(ints).tolist()) <= {0.0, 1.0}
    assert ints.sum() == 300
