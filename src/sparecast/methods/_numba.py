"""Compiled (numba) loops of the intermittent kernels: one pass per item, SES on sparse series.

A series is given compressed: its length ``n`` and its non-zero entries ``val[k]`` at increasing
positions ``pos[k]`` (k < m). The SES recursion is statsforecast's (C++ ``ses_sse`` and
``ses_forecast``): ``f = x[0]``, then for i = 1..n-1 ``f = a x[i-1] + (1-a) f``, the error is
``x[i] - f``; the forecast is ``a x[n-1] + (1-a) f``. Short runs of zeros are stepped through with
the same floating-point operations as statsforecast (so dense series give bit-equal SSEs); a
run of at least ``_CLOSED_FORM_GAP`` zeros is done in closed form: the prediction decays by
``(1-a)`` per step and its squares are a geometric series.

Everything here is single-threaded; ``nogil`` lets ``_work.by_blocks`` run blocks of items in
threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit  # type: ignore[import-untyped]

# Zero runs at least this long use the closed form (exp + a few flops) instead of stepping.
_CLOSED_FORM_GAP = 8
# statsforecast's golden-section search: ratio and stopping width of the bracket.
_GOLDEN_RATIO = (math.sqrt(5.0) + 1.0) / 2.0
_GOLDEN_TOL = 1e-12
# Bracket width below which the SSE minimum in the bracket is taken from a parabola.
_REFINE_WIDTH = 1e-4
# Relative SSE difference at that width below which the SSE counts as flat (rounding noise).
_FLAT_SSE = 1e-11


@njit(cache=True, nogil=True)
def ses_sse_forecast(pos, val, m, n, alpha):
    """In-sample SSE and one-step forecast of SES on a compressed series of length n >= 2."""
    beta = 1.0 - alpha
    log_beta = 0.0  # log(beta) and 1 / (1 - beta^2), computed at the first long zero run
    inv_q = 0.0
    j = 0
    if m > 0 and pos[0] == 0:
        f = val[0]
        j = 1
    else:
        f = 0.0
    prev = f  # x[i-1]
    sse = 0.0  # statsforecast's sum, in its order
    sse_runs = 0.0  # closed-form zero runs, kept apart so that runs of short gaps stay exact
    i = 1  # next index to score; f is the prediction of x[i-1]
    while True:
        p = pos[j] if j < m else n
        g = p - i  # zeros at i..p-1
        if g >= _CLOSED_FORM_GAP:
            if inv_q == 0.0:
                log_beta = math.log(beta)
                inv_q = 1.0 / (1.0 - beta * beta)
            decay = math.exp(g * log_beta)
            f1 = alpha * prev + beta * f  # prediction at i; then decays by beta per zero
            sse_runs += f1 * f1 * (1.0 - decay * decay) * inv_q
            fp = (alpha * prev) * decay + (beta * decay) * f  # prediction at p, short chain
        elif g > 0:
            f = alpha * prev + beta * f
            sse += f * f
            for _ in range(g - 1):
                f = beta * f
                sse += f * f
            fp = beta * f  # = a * 0 + (1 - a) * f, exactly
        else:
            fp = alpha * prev + beta * f
        if j >= m:  # p == n: fp is the forecast a x[n-1] + (1-a) f
            return sse + sse_runs, fp
        v = val[j]
        err = v - fp
        sse += err * err
        f = fp
        prev = v
        i = p + 1
        j += 1


@njit(cache=True, nogil=True)
def ses_sse3(pos, val, m, n, a1, a2, a3):
    """The in-sample SSEs of :func:`ses_sse_forecast` at three alphas in one pass over the series:
    each with exactly its operations (so the same bits), the three recursions interleaved, which
    a latency-bound loop runs in about the time of one."""
    b1 = 1.0 - a1
    b2 = 1.0 - a2
    b3 = 1.0 - a3
    lb1 = lb2 = lb3 = 0.0  # as in ses_sse_forecast: at the first long zero run
    q1 = q2 = q3 = 0.0
    j = 0
    if m > 0 and pos[0] == 0:
        f1 = val[0]
        j = 1
    else:
        f1 = 0.0
    f2 = f1
    f3 = f1
    prev = f1
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    r1 = 0.0
    r2 = 0.0
    r3 = 0.0
    i = 1
    while True:
        p = pos[j] if j < m else n
        g = p - i
        if g >= _CLOSED_FORM_GAP:
            if q1 == 0.0:
                lb1 = math.log(b1)
                lb2 = math.log(b2)
                lb3 = math.log(b3)
                q1 = 1.0 / (1.0 - b1 * b1)
                q2 = 1.0 / (1.0 - b2 * b2)
                q3 = 1.0 / (1.0 - b3 * b3)
            d1 = math.exp(g * lb1)
            d2 = math.exp(g * lb2)
            d3 = math.exp(g * lb3)
            e1 = a1 * prev + b1 * f1
            e2 = a2 * prev + b2 * f2
            e3 = a3 * prev + b3 * f3
            r1 += e1 * e1 * (1.0 - d1 * d1) * q1
            r2 += e2 * e2 * (1.0 - d2 * d2) * q2
            r3 += e3 * e3 * (1.0 - d3 * d3) * q3
            p1 = (a1 * prev) * d1 + (b1 * d1) * f1
            p2 = (a2 * prev) * d2 + (b2 * d2) * f2
            p3 = (a3 * prev) * d3 + (b3 * d3) * f3
        elif g > 0:
            f1 = a1 * prev + b1 * f1
            f2 = a2 * prev + b2 * f2
            f3 = a3 * prev + b3 * f3
            s1 += f1 * f1
            s2 += f2 * f2
            s3 += f3 * f3
            for _ in range(g - 1):
                f1 = b1 * f1
                f2 = b2 * f2
                f3 = b3 * f3
                s1 += f1 * f1
                s2 += f2 * f2
                s3 += f3 * f3
            p1 = b1 * f1
            p2 = b2 * f2
            p3 = b3 * f3
        else:
            p1 = a1 * prev + b1 * f1
            p2 = a2 * prev + b2 * f2
            p3 = a3 * prev + b3 * f3
        if j >= m:
            return s1 + r1, s2 + r2, s3 + r3
        v = val[j]
        e1 = v - p1
        e2 = v - p2
        e3 = v - p3
        s1 += e1 * e1
        s2 += e2 * e2
        s3 += e3 * e3
        f1 = p1
        f2 = p2
        f3 = p3
        prev = v
        i = p + 1
        j += 1


@njit(cache=True, nogil=True)
def ses_forecast(pos, val, m, n, alpha):
    """One-step SES forecast of a compressed series (statsforecast ``ses_forecast``)."""
    if n == 1:
        return val[0] if m > 0 else 0.0
    return ses_sse_forecast(pos, val, m, n, alpha)[1]


@njit(cache=True, nogil=True)
def _parabola_vertex(x0, f0, x1, f1, x2, f2, fallback):
    """Abscissa of the minimum of the parabola through three points (x0 < x1 < x2), or
    ``fallback`` when it is not convex (or not finite)."""
    num = (x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)
    den = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
    if not den < 0.0:
        return fallback
    vx = x1 - 0.5 * num / den
    return vx if math.isfinite(vx) else fallback


@njit(cache=True, nogil=True)
def golden_alpha(pos, val, m, n, lower, upper):
    """statsforecast's ``golden_section_ses``: alpha in [lower, upper] minimising the SSE.

    Its path is followed decision by decision (same points, same comparisons, ties stop it at
    the midpoint) until the bracket is narrower than ``_REFINE_WIDTH``; statsforecast keeps
    halving it down to 1e-12, converging on the SSE minimum inside the bracket, which this takes
    as the vertex of the parabola through the lowest point and its two evaluated neighbours.
    """
    if n < 2:  # ses_sse is 0 everywhere: the first comparison ties
        return (upper + lower) / 2.0
    a = lower
    b = upper
    c = b - (b - a) / _GOLDEN_RATIO
    d = a + (b - a) / _GOLDEN_RATIO
    # Each pass over the series evaluates the point needed now and, speculatively, both points
    # the next step may need (ses_sse3): half the passes. (k1, v1), (k2, v2): the speculative
    # alphas and SSEs; the SSE is a function of alpha alone, so any equal alpha may use them.
    k1 = d - (d - a) / _GOLDEN_RATIO  # the first step's c if fc < fd (see below)
    fc, fd, v1 = ses_sse3(pos, val, m, n, c, d, k1)
    k2 = math.nan
    v2 = math.nan
    fa = math.inf  # the bounds themselves are never evaluated
    fb = math.inf
    refine = True
    while abs(b - a) >= _GOLDEN_TOL:
        if refine and abs(b - a) < _REFINE_WIDTH:
            if abs(fc - fd) <= _FLAT_SSE * fc:
                # Flat SSE (e.g. constant values but the last): rounding decides statsforecast's
                # comparisons all the way down, so keep following them.
                refine = False
                continue
            # The minimum is between the lower point's neighbours; with no convex parabola
            # the SSE falls towards the bracket end on that side (statsforecast converges there).
            if fc < fd:
                if fa < math.inf:
                    alpha = _parabola_vertex(a, fa, c, fc, d, fd, a)
                else:
                    alpha = _parabola_vertex(c, fc, d, fd, b, fb, a)
            elif fd < fc:
                if fb < math.inf:
                    alpha = _parabola_vertex(c, fc, d, fd, b, fb, b)
                else:
                    alpha = _parabola_vertex(a, fa, c, fc, d, fd, b)
            else:
                return (b + a) / 2.0
            return min(max(alpha, a), b)
        if fc < fd:
            b = d
            fb = fd
            d = c
            fd = fc
            c = b - (b - a) / _GOLDEN_RATIO
            x = c
            left = True
        elif fd < fc:
            a = c
            fa = fc
            c = d
            fc = fd
            d = a + (b - a) / _GOLDEN_RATIO
            x = d
            left = False
        else:
            break
        if x == k1:
            fx = v1
        elif x == k2:
            fx = v2
        else:
            # the next step's new point: c' = d - (d - a) / G if fc < fd, else
            # d' = c + (b - c) / G (the same operations as above, so the same bits)
            k1 = d - (d - a) / _GOLDEN_RATIO
            k2 = c + (b - c) / _GOLDEN_RATIO
            fx, v1, v2 = ses_sse3(pos, val, m, n, x, k1, k2)
        if left:
            fc = fx
        else:
            fd = fx
    return (b + a) / 2.0


@njit(cache=True, nogil=True)
def optimized_ses_forecast(pos, val, m, n, lower, upper):
    """Forecast of SES with the golden-section alpha (statsforecast ``_optimized_ses_forecast``)."""
    return ses_forecast(pos, val, m, n, golden_alpha(pos, val, m, n, lower, upper))


@njit(cache=True, nogil=True)
def _row_events(y, item, pos, val):
    """Non-zero entries of row ``item`` into ``pos``/``val``; returns their number."""
    m = 0
    for t in range(y.shape[1]):
        v = y[item, t]
        if v != 0:
            pos[m] = t
            val[m] = v
            m += 1
    return m


@njit(cache=True, nogil=True)
def croston_levels(y, alpha, lower, upper):
    """Croston level (SES of positive sizes / SES of intervals) per item of ``y[items, periods]``.

    Fixed ``alpha`` when ``alpha > 0``, else each SES optimised by golden section in
    ``[lower, upper]``. An item without positive demand gets its last value (Naive fallback).
    """
    n_items, n = y.shape
    out = np.empty(n_items)
    pos = np.empty(n, np.int64)
    val = np.empty(n)
    idx = np.arange(n)
    sizes = np.empty(n)
    intervals = np.empty(n)
    for item in range(n_items):
        m = _row_events(y, item, pos, val)
        ms = 0
        last = -1
        for k in range(m):
            if val[k] > 0:
                sizes[ms] = val[k]
                ms += 1
            intervals[k] = pos[k] - last
            last = pos[k]
        if ms == 0:
            out[item] = y[item, n - 1]
            continue
        if alpha > 0:
            size_level = ses_forecast(idx, sizes, ms, ms, alpha)
            interval_level = ses_forecast(idx, intervals, m, m, alpha)
        else:
            size_level = optimized_ses_forecast(idx, sizes, ms, ms, lower, upper)
            interval_level = optimized_ses_forecast(idx, intervals, m, m, lower, upper)
        out[item] = size_level / interval_level if interval_level != 0.0 else size_level
    return out


@njit(cache=True, nogil=True)
def _round_half_even(x):
    r = math.floor(x)
    diff = x - r
    if diff > 0.5 or (diff == 0.5 and r % 2 == 1):
        r += 1
    return int(r)


@njit(cache=True, nogil=True)
def _chunk_events(pos, val, m, n, k, cpos, cval):
    """Non-zero sums over chunks of ``k`` periods aligned to the end (the first ``n % k`` periods
    are dropped, statsforecast ``_chunk_sums``); returns their number."""
    lost = n % k
    mc = 0
    for j in range(m):
        p = pos[j]
        if p < lost:
            continue
        c = (p - lost) // k
        if mc > 0 and cpos[mc - 1] == c:
            cval[mc - 1] += val[j]
        else:
            cpos[mc] = c
            cval[mc] = val[j]
            mc += 1
    return mc


@njit(cache=True, nogil=True)
def aggregated_levels(y, all_levels, lower, upper):
    """ADIDA (``all_levels`` False) or IMAPA (True) level per item of ``y[items, periods]``.

    The aggregation level is round(mean interval between non-zero periods) (half to even); the
    forecast at level k is the optimised-SES forecast of the chunk sums / k; IMAPA averages
    levels 1..K. An all-zero item gets 0.
    """
    n_items, n = y.shape
    out = np.zeros(n_items)
    pos = np.empty(n, np.int64)
    val = np.empty(n)
    cpos = np.empty(n, np.int64)
    cval = np.empty(n)
    for item in range(n_items):
        m = _row_events(y, item, pos, val)
        if m == 0:
            continue
        top = _round_half_even((pos[m - 1] + 1) / m)
        first = 1 if all_levels else top
        total = 0.0
        for k in range(first, top + 1):
            mc = _chunk_events(pos, val, m, n, k, cpos, cval)
            nk = n // k
            total += optimized_ses_forecast(cpos, cval, mc, nk, lower, upper) / k
        out[item] = total / (top - first + 1)
    return out


@njit(cache=True, nogil=True)
def mapa_levels(y, max_level, lower, upper):
    """MAPA-style level per item of ``y[items, periods]``: the mean over aggregation levels
    k = 1..min(max_level, periods // 2) of the optimised-SES forecast of the chunk sums / k
    (IMAPA with fixed levels instead of 1..mean interval). An all-zero item gets 0."""
    n_items, n = y.shape
    out = np.zeros(n_items)
    pos = np.empty(n, np.int64)
    val = np.empty(n)
    cpos = np.empty(n, np.int64)
    cval = np.empty(n)
    top = max(1, min(max_level, n // 2))
    for item in range(n_items):
        m = _row_events(y, item, pos, val)
        if m == 0:
            continue
        total = 0.0
        for k in range(1, top + 1):
            mc = _chunk_events(pos, val, m, n, k, cpos, cval)
            total += optimized_ses_forecast(cpos, cval, mc, n // k, lower, upper) / k
        out[item] = total / top
    return out


@njit(cache=True, nogil=True)
def optimized_ses_sparse(item, pos, val, n_series, length, lower, upper):
    """Optimised-SES forecast per series of events sorted by ``item`` (series of ``length[s]``)."""
    out = np.zeros(n_series)
    lo = 0
    total = item.size
    while lo < total:
        s = item[lo]
        hi = lo
        while hi < total and item[hi] == s:
            hi += 1
        out[s] = optimized_ses_forecast(pos[lo:hi], val[lo:hi], hi - lo, length[s], lower, upper)
        lo = hi
    return out


@njit(cache=True, nogil=True)
def adida_imapa_levels(y, lower, upper):
    """ADIDA and IMAPA levels per item in one pass (``aggregated_levels`` with ``all_levels``
    False and True): ADIDA's level is IMAPA's top aggregation level, bit for bit."""
    n_items, n = y.shape
    adida = np.zeros(n_items)
    imapa = np.zeros(n_items)
    pos = np.empty(n, np.int64)
    val = np.empty(n)
    cpos = np.empty(n, np.int64)
    cval = np.empty(n)
    for item in range(n_items):
        m = _row_events(y, item, pos, val)
        if m == 0:
            continue
        top = _round_half_even((pos[m - 1] + 1) / m)
        total = 0.0
        for k in range(1, top + 1):
            mc = _chunk_events(pos, val, m, n, k, cpos, cval)
            level = optimized_ses_forecast(cpos, cval, mc, n // k, lower, upper) / k
            total += level
            if k == top:
                adida[item] = (0.0 + level) / 1  # aggregated_levels' sum over one level
        imapa[item] = total / top
    return adida, imapa
