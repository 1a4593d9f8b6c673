"""Lead-time demand distributions and per-period quantiles: reference distributions (scipy),
hand-computed parameters, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from sparecast.errors import MethodError
from sparecast.methods.distributions import (
    demand_parameters,
    lead_time_demand,
    lead_time_matrix,
    ltd_level_alpha,
    pooled_size_cv2,
    sample_quantiles,
)

EXACT = {"parameter_uncertainty": False, "level_alpha": 0.0}


def _ecdf_gap(samples: np.ndarray, cdf) -> float:
    """Largest gap between the empirical CDF of ``samples`` and ``cdf`` on the integers."""
    grid = np.arange(0, int(samples.max()) + 2)
    emp = (samples[None, :] <= grid[:, None]).mean(axis=1)
    return float(np.abs(emp - cdf(grid)).max())


def test_demand_parameters_by_hand() -> None:
    y = np.array([[0.0, 2.0, 0.0, 4.0]])
    par = demand_parameters(y)
    assert par.mean[0] == pytest.approx(1.5)
    assert par.var[0] == pytest.approx(np.var([0, 2, 0, 4]))
    assert par.p_demand[0] == pytest.approx(0.5)
    assert par.size_mean[0] == pytest.approx(3.0)
    assert par.size_var[0] == pytest.approx(1.0)
    # transitions: 0->1 twice out of two zeros followed by a period, 1->1 never out of one
    assert par.p01[0] == pytest.approx((2 + 0.5) / (2 + 1))
    assert par.p11[0] == pytest.approx((0 + 0.5) / (1 + 1))
    assert par.last_state[0] == 1
    assert par.n_demands[0] == 2
    assert bool(par.integer[0])


def test_demand_parameters_level_weights_by_hand() -> None:
    # weights (1 - 0.5)^(2, 1, 0) = 0.25, 0.5, 1
    par = demand_parameters(np.array([[0.0, 0.0, 4.0]]), level_alpha=0.5)
    assert par.mean[0] == pytest.approx(4.0 / 1.75)
    assert par.p_demand[0] == pytest.approx(1.0 / 1.75)
    assert par.size_mean[0] == pytest.approx(4.0)
    assert par.n_eff_periods == pytest.approx(1.75**2 / (0.0625 + 0.25 + 1.0))


def test_negative_returns_count_as_zero_demand() -> None:
    par = demand_parameters(np.array([[3.0, -2.0, 1.0, 0.0]]))
    assert par.mean[0] == pytest.approx(1.0)
    assert par.n_demands[0] == 2


def test_poisson_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    y = rng.poisson(0.8, (1, 2000)).astype(float)
    lam = y.mean() * 6
    ltd = lead_time_demand(y, np.array([6.0]), method="poisson", n_samples=40_000, **EXACT)
    assert _ecdf_gap(ltd.samples[0], lambda k: stats.poisson.cdf(k, lam)) < 0.01
    q = ltd.quantiles([0.5, 0.9, 0.99])[0]
    assert np.abs(q - stats.poisson.ppf([0.5, 0.9, 0.99], lam)).max() <= 1


def test_negbin_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    y = rng.negative_binomial(2, 0.4, (1, 3000)).astype(float)  # over-dispersed
    mu, var = y.mean(), y.var()
    t = 10.0
    phi = var / mu
    n, p = mu * t / (phi - 1.0), 1.0 / phi  # NB with mean mu t and variance var t
    ltd = lead_time_demand(y, np.array([t]), method="negbin", n_samples=40_000, **EXACT)
    assert _ecdf_gap(ltd.samples[0], lambda k: stats.nbinom.cdf(k, n, p)) < 0.01
    assert ltd.samples[0].mean() == pytest.approx(mu * t, rel=0.02)
    assert ltd.samples[0].var() == pytest.approx(var * t, rel=0.05)


def test_negbin_without_overdispersion_is_poisson() -> None:
    y = np.array([[1.0, 1.0, 1.0, 1.0]])  # variance 0 < mean
    ltd = lead_time_demand(y, np.array([5.0]), method="negbin", n_samples=20_000, **EXACT)
    assert _ecdf_gap(ltd.samples[0], lambda k: stats.poisson.cdf(k, 5.0)) < 0.015


def test_compound_moments() -> None:
    rng = np.random.default_rng(3)
    occ = rng.random((1, 4000)) < 0.1
    sizes = 1 + rng.negative_binomial(1.5, 0.3, (1, 4000))
    y = np.where(occ, sizes, 0).astype(float)
    par = demand_parameters(y)
    p, m, v = par.p_demand[0], par.size_mean[0], par.size_var[0]
    t = 20
    ltd = lead_time_demand(y, np.array([float(t)]), method="compound", n_samples=60_000, **EXACT)
    s = ltd.samples[0].astype(float)
    # binomial number of demands times iid sizes
    assert s.mean() == pytest.approx(t * p * m, rel=0.02)
    assert s.var() == pytest.approx(t * (p * v + p * (1 - p) * m * m), rel=0.05)
    assert (s == np.round(s)).all()


def test_compound_single_size_is_binomial() -> None:
    y = np.array([[0.0, 0.0, 1.0, 0.0]])  # p = 1/4, every size 1
    ltd = lead_time_demand(y, np.array([8.0]), method="compound", n_samples=40_000, **EXACT)
    assert _ecdf_gap(ltd.samples[0], lambda k: stats.binom.cdf(k, 8, 0.25)) < 0.01


def test_bootstrap_resamples_observed_sizes() -> None:
    rng = np.random.default_rng(4)
    y = np.where(rng.random((1, 500)) < 0.2, 3.0, 0.0)  # size 3 only (below the jitter)
    ltd = lead_time_demand(y, np.array([30.0]), method="bootstrap", n_samples=20_000, **EXACT)
    s = ltd.samples[0]
    assert (s % 3 == 0).all()
    assert s.mean() == pytest.approx(30 * y.mean(), rel=0.05)


def test_bootstrap_markov_persistence() -> None:
    # demand comes in runs: after a demand another follows with probability ~0.9
    # (the history ends in state 0: the first demand is ~41 periods away; a long horizon keeps
    # that start from dominating the mean)
    y = np.tile(np.r_[np.ones(9), np.zeros(41)], 40)[None, :]
    ltd = lead_time_demand(y, np.array([600.0]), method="bootstrap", n_samples=20_000, **EXACT)
    iid = lead_time_demand(y, np.array([600.0]), method="compound", n_samples=20_000, **EXACT)
    assert ltd.samples.mean() == pytest.approx(iid.samples.mean(), rel=0.1)
    assert ltd.samples.var() > 2 * iid.samples.var()  # runs: much more variable totals


def test_lead_time_samples_mix() -> None:
    rng = np.random.default_rng(5)
    y = rng.poisson(1.0, (1, 3000)).astype(float)
    lam = y.mean()
    ltd = lead_time_demand(y, [np.array([5.0, 15.0])], method="poisson", n_samples=40_000, **EXACT)

    def mix(k):
        return 0.5 * stats.poisson.cdf(k, 5 * lam) + 0.5 * stats.poisson.cdf(k, 15 * lam)

    assert _ecdf_gap(ltd.samples[0], mix) < 0.012
    assert ltd.mean_lead_time[0] == pytest.approx(10.0)


def test_review_period_adds_demand_and_keeps_lead_samples() -> None:
    y = np.full((1, 100), 2.0)
    ltd = lead_time_demand(
        y, np.array([4.0]), review_period=3, method="poisson", n_samples=20_000, **EXACT
    )
    assert ltd.samples.mean() == pytest.approx(14.0, rel=0.02)
    assert ltd.lead_samples.mean() == pytest.approx(8.0, rel=0.02)
    assert (ltd.samples >= ltd.lead_samples).all()


def test_no_demand_gives_zero() -> None:
    y = np.zeros((2, 50))
    for method in ("poisson", "negbin", "compound", "bootstrap", "auto"):
        ltd = lead_time_demand(y, np.array([5.0, 9.0]), method=method, n_samples=100)
        assert (ltd.samples == 0).all()


def test_auto_picks_negbin_for_dense_and_compound_for_sparse() -> None:
    y = np.zeros((2, 100))
    y[0] = 3.0
    y[1, ::10] = 2.0
    ltd = lead_time_demand(y, np.array([5.0, 5.0]), n_samples=50)
    assert list(ltd.method) == ["negbin", "compound"]


def test_seed_makes_it_deterministic() -> None:
    rng = np.random.default_rng(6)
    y = (rng.random((30, 100)) < 0.2) * rng.integers(1, 9, (30, 100)).astype(float)
    lt = np.full(30, 7.0)
    a = lead_time_demand(y, lt, method="bootstrap", n_samples=200, seed=3, chunk_size=7)
    b = lead_time_demand(y, lt, method="bootstrap", n_samples=200, seed=3, chunk_size=7)
    c = lead_time_demand(y, lt, method="bootstrap", n_samples=200, seed=4, chunk_size=7)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)


@pytest.mark.parametrize("method", ["auto", "bootstrap"])
def test_parts_cut_at_whole_blocks_draw_what_the_whole_draws(method: str) -> None:
    """Items split at multiples of ``chunk_size`` (per chunk on a Dask cluster), each part with
    its ``first_block`` and the whole's level weight, get the whole's samples exactly; a cut
    that is not at a block boundary does not (the draws are per block)."""
    rng = np.random.default_rng(8)
    y = (rng.random((23, 150)) < rng.uniform(0.05, 0.7, (23, 1))) * rng.integers(1, 9, (23, 150))
    lts = [rng.uniform(2, 12, size=rng.integers(1, 5)) for _ in range(23)]
    kw = {"method": method, "n_samples": 300, "seed": 5, "chunk_size": 5, "review_period": 2.0}
    whole = lead_time_demand(y, lts, **kw)
    alpha = ltd_level_alpha(y, lts, 2.0)
    assert alpha == whole.level_alpha
    pooled = pooled_size_cv2(y, alpha, rows=4)  # per block of 4 rows: the whole's
    assert pooled == whole.params.pooled_cv2
    shared = {"level_alpha": alpha, "pooled_cv2": pooled}
    parts = [
        lead_time_demand(y[a:b], lts[a:b], first_block=a // 5, **shared, **kw)
        for a, b in ((0, 10), (10, 15), (15, 23))
    ]
    for name in ("samples", "lead_samples", "mean_lead_time", "method"):
        got = np.concatenate([getattr(p, name) for p in parts])
        np.testing.assert_array_equal(got, getattr(whole, name))
    off = lead_time_demand(y[3:], lts[3:], **shared, **kw)
    assert not np.array_equal(off.samples, whole.samples[3:])


def test_mixed_methods_in_one_chunk_go_to_the_right_rows() -> None:
    y = np.zeros((4, 200))
    y[0] = 5.0  # dense -> negbin
    y[1, ::20] = 1.0  # sparse -> compound
    y[2] = 50.0
    y[3, ::50] = 2.0
    ltd = lead_time_demand(y, np.full(4, 10.0), n_samples=2000, chunk_size=4, **EXACT)
    np.testing.assert_allclose(ltd.mean, [50.0, 0.5, 500.0, 0.4], rtol=0.1)


def test_parameter_uncertainty_widens_a_short_history() -> None:
    y = np.zeros((1, 60))
    y[0, [5, 30]] = 2.0
    exact = lead_time_demand(y, np.array([30.0]), n_samples=40_000, **EXACT)
    wide = lead_time_demand(y, np.array([30.0]), n_samples=40_000, level_alpha=0.0)
    # Jeffreys posterior of p: mean (2 + 1/2) / (60 + 1); sizes around 2
    assert exact.samples.mean() == pytest.approx(30 * 2 / 60 * 2, rel=0.03)
    assert wide.samples.mean() == pytest.approx(30 * 2.5 / 61 * 2, rel=0.06)
    assert wide.quantiles([0.99])[0, 0] > exact.quantiles([0.99])[0, 0]


def test_lead_time_matrix_inputs_and_errors() -> None:
    mat, counts = lead_time_matrix([np.array([3.0]), np.array([1.0, 2.0])], 2)
    assert counts.tolist() == [1, 2]
    assert mat[1].tolist() == [1.0, 2.0]
    mat, counts = lead_time_matrix(np.array([[np.nan, 4.0], [5.0, 6.0]]), 2)
    assert counts.tolist() == [1, 2]
    assert mat[0, 0] == 4.0  # valid values first
    with pytest.raises(MethodError, match="item index 1"):
        lead_time_matrix([np.array([3.0]), np.array([])], 2)
    with pytest.raises(MethodError, match="negative lead time"):
        lead_time_matrix(np.array([-1.0]), 1)
    with pytest.raises(MethodError, match="has 1 items"):
        lead_time_matrix(np.array([1.0]), 2)


def test_bad_arguments() -> None:
    y = np.ones((1, 10))
    with pytest.raises(MethodError, match="unknown distribution"):
        lead_time_demand(y, np.array([1.0]), method="normal")
    with pytest.raises(MethodError, match="2-D"):
        lead_time_demand(np.ones(10), np.array([1.0]))
    with pytest.raises(MethodError, match="NaN"):
        lead_time_demand(np.array([[1.0, np.nan]]), np.array([1.0]))
    with pytest.raises(MethodError, match="level_alpha"):
        lead_time_demand(y, np.array([1.0]), level_alpha=1.5)
    with pytest.raises(MethodError, match="levels"):
        sample_quantiles(np.ones((1, 5)), [0.0, 0.5])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    y=arrays(np.float64, (3, 40), elements=st.integers(0, 30).map(float)),
    lead=st.floats(0.0, 40.0),
    method=st.sampled_from(["poisson", "negbin", "compound", "bootstrap", "auto"]),
)
def test_quantiles_are_nonnegative_integers_rising_with_the_level(
    y: np.ndarray, lead: float, method: str
) -> None:
    ltd = lead_time_demand(y, np.full(3, lead), method=method, n_samples=300, review_period=1)
    q = ltd.quantiles([0.5, 0.8, 0.9, 0.95, 0.99])
    assert (q >= 0).all()
    assert (q == np.round(q)).all()
    assert (np.diff(q, axis=1) >= 0).all()
