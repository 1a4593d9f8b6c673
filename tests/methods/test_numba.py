"""The compiled kernels of ``methods/_numba.py`` against plain numpy/Python references on small
arrays: compressed SES, golden-section alpha, Croston levels, ADIDA/IMAPA aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from sparecast.methods import _numba

LOWER, UPPER = 0.1, 0.3  # statsforecast's bounds of the optimised SES alpha


def _ses_forecast_dense(x: np.ndarray, alpha: float) -> float:
    """One-step SES forecast of a dense series: f = x[0], f = a x[i-1] + (1-a) f, then a x[-1] +
    (1-a) f; a series of one value forecasts that value."""
    if x.size == 1:
        return float(x[0])
    return _ses_sse_forecast_stepwise(x, alpha)[1]


def _compressed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A dense series as the kernels take it: positions and values of its non-zeros, m, n."""
    pos = np.flatnonzero(x)
    return pos, x[pos].astype(np.float64), pos.size, x.size


def _ses_sse_forecast_stepwise(x: np.ndarray, alpha: float) -> tuple[float, float]:
    """statsforecast's C++ ``ses_sse`` and ``ses_forecast``, step by step (n >= 2)."""
    f = x[0]
    sse = 0.0
    for i in range(1, x.size):
        f = alpha * x[i - 1] + (1 - alpha) * f
        sse += (x[i] - f) ** 2
    return sse, alpha * x[-1] + (1 - alpha) * f


@pytest.mark.parametrize("p", [0.02, 0.3, 1.0])
def test_compressed_ses_equals_stepwise(p: float) -> None:
    rng = np.random.default_rng(int(p * 100))
    for n in (2, 5, 40, 300):
        x = np.where(rng.random(n) < p, rng.gamma(1.0, 4.0, n), 0.0)
        pos = np.flatnonzero(x)
        for alpha in (0.1, 0.2071, 0.3):
            got = _numba.ses_sse_forecast(pos, x[pos], pos.size, n, alpha)
            want = _ses_sse_forecast_stepwise(x, alpha)
            if p == 1.0:  # no zero run: statsforecast's arithmetic, bit for bit
                assert got == want
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def test_ses_of_one_period_is_its_value_or_zero() -> None:
    assert _numba.ses_forecast(*_compressed(np.array([5.0])), 0.2) == 5.0
    assert _numba.ses_forecast(*_compressed(np.array([0.0])), 0.2) == 0.0


def test_ses_by_hand() -> None:
    # x = 2 0 4, alpha 0.5: f = 2; prediction of x[1] = 0.5*2 + 0.5*2 = 2 (error -2);
    # prediction of x[2] = 0.5*0 + 0.5*2 = 1 (error 3); forecast 0.5*4 + 0.5*1 = 2.5
    sse, fc = _numba.ses_sse_forecast(*_compressed(np.array([2.0, 0.0, 4.0])), 0.5)
    assert (sse, fc) == (4.0 + 9.0, 2.5)
    # a series starting with zeros starts its level at 0: 0 0 6 -> predictions 0, 0; sse 36
    sse, fc = _numba.ses_sse_forecast(*_compressed(np.array([0.0, 0.0, 6.0])), 0.5)
    assert (sse, fc) == (36.0, 3.0)


def test_long_zero_runs_in_closed_form_equal_stepping() -> None:
    """A run of zeros longer than the closed-form gap at both ends and in the middle."""
    x = np.zeros(60)
    x[[3, 30, 31]] = [5.0, 2.0, 7.0]
    got = _numba.ses_sse_forecast(*_compressed(x), 0.2)
    np.testing.assert_allclose(got, _ses_sse_forecast_stepwise(x, 0.2), rtol=1e-12)


def test_golden_alpha_minimises_the_sse_within_the_bounds() -> None:
    rng = np.random.default_rng(3)
    grid = np.linspace(LOWER, UPPER, 2001)
    for _ in range(20):
        x = np.where(rng.random(50) < 0.4, rng.gamma(1.0, 4.0, 50), 0.0)
        x[0] = 1.0
        alpha = _numba.golden_alpha(*_compressed(x), LOWER, UPPER)
        assert LOWER <= alpha <= UPPER
        best = min(_ses_sse_forecast_stepwise(x, a)[0] for a in grid)
        assert _ses_sse_forecast_stepwise(x, alpha)[0] <= best * (1 + 1e-9)
        assert _numba.optimized_ses_forecast(*_compressed(x), LOWER, UPPER) == pytest.approx(
            _ses_forecast_dense(x, alpha), rel=1e-12
        )


def test_golden_alpha_of_one_period_is_the_middle_of_the_bounds() -> None:
    assert _numba.golden_alpha(*_compressed(np.array([4.0])), LOWER, UPPER) == pytest.approx(0.2)


def test_parabola_vertex_and_fallback() -> None:
    # (x - 1)^2 through x = 0, 2, 3: vertex at 1
    assert _numba._parabola_vertex(0.0, 1.0, 2.0, 1.0, 3.0, 4.0, -1.0) == pytest.approx(1.0)
    # -(x - 1)^2 is concave: no minimum, the fallback
    assert _numba._parabola_vertex(0.0, -1.0, 2.0, -1.0, 3.0, -4.0, -1.0) == -1.0


def _croston_reference(row: np.ndarray, alpha: float) -> float:
    """Croston by hand: SES of the positive sizes over SES of the intervals between demands
    (the first counted from one period before the start); no demand: the last value."""
    nz = np.flatnonzero(row)
    sizes = row[row > 0]
    if sizes.size == 0:
        return float(row[-1])
    intervals = np.diff(np.concatenate([[-1], nz])).astype(np.float64)
    return _ses_forecast_dense(sizes, alpha) / _ses_forecast_dense(intervals, alpha)


def test_croston_levels_by_hand_and_against_the_reference() -> None:
    # sizes 3, 2 -> 0.1*2 + 0.9*3 = 2.9; intervals 2, 3 -> 0.1*3 + 0.9*2 = 2.1
    y = np.array([[0.0, 3.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(
        _numba.croston_levels(y, 0.1, LOWER, UPPER), [2.9 / 2.1, 0.0, 1.0], rtol=1e-15
    )
    rng = np.random.default_rng(11)
    y = np.where(rng.random((30, 40)) < 0.25, rng.poisson(3.0, (30, 40)) + 1.0, 0.0)
    want = [_croston_reference(row, 0.1) for row in y]
    np.testing.assert_allclose(_numba.croston_levels(y, 0.1, LOWER, UPPER), want, rtol=1e-12)


def test_optimised_croston_levels_use_golden_alphas() -> None:
    row = np.array([0.0, 3.0, 0.0, 0.0, 2.0, 0.0, 5.0, 1.0, 0.0, 0.0, 0.0, 4.0])
    sizes = row[row > 0]
    intervals = np.diff(np.concatenate([[-1], np.flatnonzero(row)])).astype(np.float64)
    size_level = _numba.optimized_ses_forecast(*_compressed(sizes), LOWER, UPPER)
    interval_level = _numba.optimized_ses_forecast(*_compressed(intervals), LOWER, UPPER)
    got = _numba.croston_levels(row[None, :], 0.0, LOWER, UPPER)
    np.testing.assert_allclose(got, [size_level / interval_level], rtol=1e-15)


def test_round_half_even() -> None:
    for x in (0.5, 1.5, 2.5, 2.4, 2.6, 3.0, 7.5):
        assert _numba._round_half_even(x) == round(x)  # Python rounds half to even too


def test_chunk_events_are_the_end_aligned_chunk_sums() -> None:
    x = np.array([1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0])  # n = 10
    pos, val, m, n = _compressed(x)
    for k in (1, 2, 3, 4):
        cpos = np.empty(n, np.int64)
        cval = np.empty(n)
        mc = _numba._chunk_events(pos, val, m, n, k, cpos, cval)
        sums = x[n % k :].reshape(-1, k).sum(axis=1)  # the first n % k periods are dropped
        dense = np.zeros(n // k)
        dense[cpos[:mc]] = cval[:mc]
        np.testing.assert_array_equal(dense, sums)
        assert (cval[:mc] != 0).all()


def _aggregated_reference(row: np.ndarray, all_levels: bool) -> float:
    """ADIDA/IMAPA by hand: level k = round(mean interval), SES of the end-aligned chunk sums of
    k periods / k; IMAPA averages k = 1..K."""
    nz = np.flatnonzero(row)
    if nz.size == 0:
        return 0.0
    top = round((nz[-1] + 1) / nz.size)
    levels = range(1, top + 1) if all_levels else [top]
    out = []
    for k in levels:
        sums = row[row.size % k :].reshape(-1, k).sum(axis=1)
        alpha = _numba.golden_alpha(*_compressed(sums), LOWER, UPPER)
        out.append(_ses_forecast_dense(sums, alpha) / k)
    return float(np.mean(out))


@pytest.mark.parametrize("all_levels", [False, True])
def test_aggregated_levels_against_the_reference(all_levels: bool) -> None:
    # by hand (ADIDA): intervals 4, 4 -> chunks of 4 -> sums 4, 4 -> SES 4 -> 4 / 4 = 1
    hand = np.array([[0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0]])
    if not all_levels:
        np.testing.assert_allclose(_numba.aggregated_levels(hand, False, LOWER, UPPER), [1.0])
    rng = np.random.default_rng(5)
    y = np.where(rng.random((25, 60)) < 0.2, rng.poisson(2.0, (25, 60)) + 1.0, 0.0)
    y[0] = 0.0
    want = [_aggregated_reference(row, all_levels) for row in y]
    got = _numba.aggregated_levels(y, all_levels, LOWER, UPPER)
    assert got[0] == 0.0
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_optimized_ses_sparse_is_optimized_ses_per_series() -> None:
    series = [np.array([0.0, 2.0, 0.0, 5.0]), np.array([1.0, 1.0, 3.0]), np.array([0.0, 0.0])]
    item = np.concatenate([np.full(np.count_nonzero(s), i) for i, s in enumerate(series)])
    pos = np.concatenate([np.flatnonzero(s) for s in series])
    val = np.concatenate([s[s != 0] for s in series])
    length = np.array([s.size for s in series])
    got = _numba.optimized_ses_sparse(item, pos, val, 3, length, LOWER, UPPER)
    want = [_numba.optimized_ses_forecast(*_compressed(s), LOWER, UPPER) for s in series]
    np.testing.assert_array_equal(got, want)
    assert got[2] == 0.0  # a series without events: 0


@pytest.mark.parametrize("p", [0.02, 0.1, 0.5, 1.0])
def test_three_alpha_sse_is_each_sse_bit_for_bit(p: float) -> None:
    """ses_sse3 (the golden section's fused pass) = ses_sse_forecast at each alpha, exactly,
    with long zero runs (closed form), short ones (stepped) and a leading value or zero."""
    rng = np.random.default_rng(int(p * 100))
    for n in (2, 5, 40, 300):
        for lead in (0.0, 3.0):
            x = np.where(rng.random(n) < p, rng.gamma(1.0, 4.0, n), 0.0)
            x[0] = lead
            pos, val, m, length = _compressed(x)
            alphas = rng.uniform(0.01, 0.6, 3)
            got = _numba.ses_sse3(pos, val, m, length, *alphas)
            want = [_numba.ses_sse_forecast(pos, val, m, length, a)[0] for a in alphas]
            assert list(got) == want
