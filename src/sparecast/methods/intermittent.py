"""Intermittent-demand methods: Croston, SBA, optimised Croston, TSB, ADIDA, IMAPA, MA of non-zeros.

Every kernel takes ``y[items, periods]`` and a horizon ``h`` and returns ``float64[items, h]``.

Why the code looks the way it does: spare-part demand is mostly zeros, so the kernels work on the
non-zero *events* of the panel (``np.nonzero``), vectorised over all items at once. Simple
exponential smoothing (SES) over a run of zeros has a closed form (the level decays by
``(1-a)^gap`` and the squared errors form a geometric series), so a smoothing pass costs one
step per event, not per period. The statsforecast models are reproduced, including their edge
cases; the references are the functions ``_croston_classic``, ``_croston_sba``,
``_croston_optimized``, ``_tsb``, ``_adida`` and ``_imapa`` of ``statsforecast.models`` and the C++
``ses_forecast``/``ses_sse``/``golden_section_ses``/``chunk_forecast`` they call.

Known deviation: statsforecast's optimised SES (golden section on alpha in [0.1, 0.3]) is followed
exactly for its first decisions, then refined parabolically. When the in-sample SSE has two local
minima closer than about 0.03 in alpha, golden section may settle in one and this code in the
other (about 3 in 10,000 items for ``croston_optimized`` on the benchmark panel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparecast.methods.baseline import _flat, ses_weights

__all__ = ["croston", "sba", "croston_optimized", "tsb", "adida", "imapa", "ma_nonzero"]

# statsforecast's optimised SES searches alpha in [0.1, 0.3] by golden section.
_SES_BOUNDS = (0.1, 0.3)
_GOLDEN_RATIO = (math.sqrt(5.0) + 1.0) / 2.0
# Items per block in ADIDA/IMAPA: bounds the memory of the replicated event arrays.
_BLOCK_ITEMS = 20_000
# Golden-section decisions followed exactly before the parabolic refinement takes over.
_GOLDEN_DEPTH = 2
# Half-widths of the successive three-point parabolic refinements of alpha.
_REFINE_STEPS = (2e-3, 2e-5)


# --------------------------------------------------------------------------------------------
# Events of a panel
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Events:
    """Non-zero entries of a panel in row-major order: item, period, value (float64)."""

    item: np.ndarray
    period: np.ndarray
    value: np.ndarray
    n_items: int
    n_periods: int

    @property
    def count(self) -> np.ndarray:
        """Number of events per item."""
        return np.bincount(self.item, minlength=self.n_items)

    def where(self, keep: np.ndarray) -> _Events:
        """The events selected by a boolean mask."""
        return _Events(
            self.item[keep], self.period[keep], self.value[keep], self.n_items, self.n_periods
        )


def _nonzero_events(y: np.ndarray) -> _Events:
    """Events ``y != 0`` of a 2-D panel (any float dtype) without copying the whole panel."""
    arr = np.asarray(y)
    if arr.ndim != 2:
        raise ValueError(f"y must be a 2-D array [items, periods], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("y has no period; a forecast needs at least one observation")
    item, period = np.nonzero(arr)
    value = arr[item, period].astype(np.float64)
    return _Events(item, period, value, arr.shape[0], arr.shape[1])


def _series_index(sid: np.ndarray, n_series: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-series event counts, first-event offsets, and each event's index within its series."""
    counts = np.bincount(sid, minlength=n_series)
    starts = np.zeros(n_series, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    within = np.arange(sid.size, dtype=np.int64) - starts[sid]
    return counts, starts, within


def _sum_by(index: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """``float64[n]`` sums of ``weight`` per ``index`` (np.bincount, float even when empty)."""
    return np.bincount(index, weight, minlength=n).astype(np.float64, copy=False)


def _intervals(ev: _Events) -> np.ndarray:
    """Periods between consecutive non-zero events; the first is its period + 1 (statsforecast)."""
    prev = np.empty_like(ev.period)
    prev[0:1] = -1
    prev[1:] = ev.period[:-1]
    first = np.ones(ev.item.size, dtype=bool)
    first[1:] = ev.item[1:] != ev.item[:-1]
    prev[first] = -1
    return (ev.period - prev).astype(np.float64)


# --------------------------------------------------------------------------------------------
# SES on ragged series
# --------------------------------------------------------------------------------------------


def _ses_fixed_ragged(
    sid: np.ndarray, value: np.ndarray, n_series: int, alpha: float
) -> np.ndarray:
    """SES one-step forecast of each gap-free ragged series (values in order), fixed ``alpha``.

    Closed form of statsforecast's recursion: the j-th of m values weighs ``a (1-a)^(m-1-j)``,
    the first ``(1-a)^(m-1)``; a series of one value forecasts that value; empty series give 0.
    """
    counts, _, within = _series_index(sid, n_series)
    from_end = counts[sid] - 1 - within
    beta = 1.0 - alpha
    weight = alpha * np.power(beta, from_end)
    first = within == 0
    weight[first] = np.power(beta, from_end[first])
    return _sum_by(sid, weight * value, n_series)


@dataclass(frozen=True)
class _Ragged:
    """Sparse series (events at positions of a length-N series) in a time-major ragged layout.

    Series are sorted by event count, descending, so that the e-th events of all series that have
    one form a contiguous block ``[start[e], start[e] + active[e])`` and belong to the first
    ``active[e]`` sorted series: a pass over events loops over ``e`` and slices, never over series.
    """

    order: np.ndarray  # sorted position -> original series index (only series with events)
    value: np.ndarray  # event values, time-major
    gap_m1: np.ndarray  # (period gap to the previous event of the series) - 1, time-major
    first_pos: np.ndarray  # per sorted series
    tail: np.ndarray  # per sorted series: zeros after the last event, N - 1 - last position
    start: np.ndarray  # per event rank
    active: np.ndarray  # per event rank


def _ragged(
    sid: np.ndarray,
    pos: np.ndarray,
    value: np.ndarray,
    length: np.ndarray,
    index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> _Ragged:
    """Build the time-major layout of sparse series; ``sid`` sorted, ``pos`` increasing within.

    ``index`` is ``_series_index(sid, len(length))`` when the caller already has it.
    """
    n_series = length.size
    counts, starts, within = index if index is not None else _series_index(sid, n_series)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    rank_of = np.empty(n_series, dtype=np.int64)
    rank_of[order] = np.arange(order.size)
    sorted_counts = counts[order]
    max_count = int(sorted_counts[0]) if order.size else 0
    active = np.searchsorted(-sorted_counts, -np.arange(max_count), side="left")
    start = np.zeros(max_count, dtype=np.int64)
    np.cumsum(active[:-1], out=start[1:])
    target = start[within] + rank_of[sid]
    prev = np.empty_like(pos)
    prev[1:] = pos[:-1]
    prev[within == 0] = pos[within == 0]
    gap_m1 = np.empty(sid.size, dtype=np.float64)
    gap_m1[target] = np.maximum(pos - prev - 1, 0)
    val = np.empty(sid.size, dtype=np.float64)
    val[target] = value
    first_pos = pos[starts[order]]
    last_pos = pos[starts[order] + sorted_counts - 1]
    tail = (length[order] - 1 - last_pos).astype(np.float64)
    return _Ragged(order, val, gap_m1, first_pos, tail, start, active)


def _ses_pass(rg: _Ragged, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-sample SSE and one-step forecast of every sorted series, for each of G alphas.

    ``alpha`` is ``[G]`` (shared by all series: decays come from a power table) or
    ``[series, G]``. Same recursion as statsforecast's ``ses_sse``/``ses_forecast`` (the level
    starts at ``x[0]``; leading zeros keep it at 0), with the zero runs between events in closed
    form: over ``g`` zeros the level decays by ``(1-a)^g`` and adds ``l^2 - (decayed l)^2`` over
    ``1 - (1-a)^2`` to the SSE.
    """
    shared = alpha.ndim == 1
    n0 = int(rg.active[0]) if rg.active.size else 0
    g_count = alpha.shape[-1]
    alpha = np.broadcast_to(alpha, (n0, g_count)) if shared else alpha
    beta = 1.0 - alpha
    inv_q = 1.0 / (1.0 - beta * beta)
    if shared:
        max_gap = int(max(rg.gap_m1.max(initial=0), rg.tail.max(initial=0)))
        table = np.power(beta[0], np.arange(max_gap + 1)[:, None])
        gap_int = rg.gap_m1.astype(np.int64)
    else:
        log_beta = np.log(beta)
    v0 = rg.value[:n0, None]
    at_start = (rg.first_pos == 0)[:, None]
    level = np.where(at_start, v0, alpha * v0)
    sse = np.where(at_start, 0.0, v0 * v0) + np.zeros_like(level)
    pre_buf = np.empty_like(level)
    tmp_buf = np.empty_like(level)
    err_buf = np.empty_like(level)
    for e in range(1, rg.active.size):
        c = int(rg.active[e])
        lo = int(rg.start[e])
        v = rg.value[lo : lo + c, None]
        lv, pre, tmp, err = level[:c], pre_buf[:c], tmp_buf[:c], err_buf[:c]
        if shared:
            np.multiply(table[gap_int[lo : lo + c]], lv, out=pre)
        else:
            np.multiply(rg.gap_m1[lo : lo + c, None], log_beta[:c], out=pre)
            np.exp(pre, out=pre)
            pre *= lv
        np.multiply(lv, lv, out=tmp)  # zero run: (l^2 - pre^2) / (1 - beta^2)
        np.subtract(v, pre, out=err)
        np.multiply(pre, pre, out=lv)  # lv is free: the new level is written below
        tmp -= lv
        tmp *= inv_q[:c]
        err *= err
        tmp += err
        sse[:c] += tmp
        np.multiply(alpha[:c], v, out=lv)
        np.multiply(beta[:c], pre, out=tmp)
        lv += tmp
    if shared:
        decay = table[rg.tail.astype(np.int64)]
    else:
        decay = np.exp(rg.tail[:, None] * log_beta)
    pre = decay * level
    sse += (level * level - pre * pre) * inv_q
    return sse, pre


def _vertex(x: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Abscissa of the parabola through three points per row, and whether it is a minimum."""
    x0, x1, x2 = x[:, 0], x[:, 1], x[:, 2]
    f0, f1, f2 = f[:, 0], f[:, 1], f[:, 2]
    num = (x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)
    den = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
    ok = den < 0.0  # convex: f1 below the chord (den uses x0 < x1 < x2)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = np.where(ok, x1 - 0.5 * num / np.where(ok, den, -1.0), x1)
    return vx, ok


def _next_alpha(x: np.ndarray, f: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Next alpha estimate from three SSE points: the parabola's minimum when convex, else the
    lowest point, or the bracket end beyond it when that point is an outer one (where golden
    section heads on a concave or monotone stretch); always within ``[lo, hi]``."""
    vx, ok = _vertex(x, f)
    best = np.argmin(f, axis=1)
    fallback = np.where(best == 0, lo, np.where(best == 2, hi, x[:, 1]))
    return np.where(ok, vx, fallback).clip(lo, hi)


def _lagrange3(x: np.ndarray, f: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Quadratic interpolation of three points per row at ``at``."""
    x0, x1, x2 = x[:, 0], x[:, 1], x[:, 2]
    return (
        f[:, 0] * (at - x1) * (at - x2) / ((x0 - x1) * (x0 - x2))
        + f[:, 1] * (at - x0) * (at - x2) / ((x1 - x0) * (x1 - x2))
        + f[:, 2] * (at - x0) * (at - x1) / ((x2 - x0) * (x2 - x1))
    )


def _exact_sse_constant_prefix(
    alpha: np.ndarray, c: np.ndarray, last: np.ndarray, steps: np.ndarray, max_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """statsforecast's ``ses_sse`` bit for bit on series ``[c]*(N-1) + [last]``; also the forecast.

    Rows are sorted by ``steps = N - 1`` descending. Needed because the SSE of such a series is
    flat in exact arithmetic, so golden section's path is decided by rounding.
    """
    comp = 1.0 - alpha
    f = c.copy()
    sse = np.zeros_like(c)
    active = np.searchsorted(-steps, -np.arange(1, max_steps + 1), side="right")
    for i in range(1, max_steps + 1):
        k = int(active[i - 1])
        f[:k] = alpha[:k] * c[:k] + comp[:k] * f[:k]
        x = np.where(steps[:k] == i, last[:k], c[:k])
        err = x - f[:k]
        sse[:k] += err * err
    # f is now fitted[N-1]; forecast = a * x[N-1] + (1 - a) * fitted[N-1]
    return sse, alpha * last + comp * f


def _golden_constant_prefix(
    c: np.ndarray, last: np.ndarray, length: np.ndarray, lo: float, hi: float
) -> np.ndarray:
    """Forecasts of statsforecast's golden-section SES on ``[c]*(N-1) + [last]``, N >= 2, emulated.

    Vectorised over series: each golden step evaluates one new alpha per still-active series.
    """
    order = np.argsort(-(length - 1), kind="stable")
    c, last, steps = c[order], last[order], (length - 1)[order]
    m = c.size
    max_steps = int(steps[0]) if m else 0

    def sse(alpha: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return _exact_sse_constant_prefix(
            alpha, c[rows], last[rows], steps[rows], int(steps[rows].max()) if rows.size else 0
        )[0]

    a = np.full(m, lo)
    b = np.full(m, hi)
    pc = b - (b - a) / _GOLDEN_RATIO
    pd = a + (b - a) / _GOLDEN_RATIO
    everyone = np.arange(m)
    fc = sse(pc, everyone)
    fd = sse(pd, everyone)
    live = np.abs(b - a) >= 1e-12
    while True:
        rows = np.flatnonzero(live)
        if rows.size == 0:
            break
        lt = fc[rows] < fd[rows]
        gt = fd[rows] < fc[rows]
        live[rows[~(lt | gt)]] = False
        r = rows[lt]
        b[r] = pd[r]
        pd[r] = pc[r]
        fd[r] = fc[r]
        pc[r] = b[r] - (b[r] - a[r]) / _GOLDEN_RATIO
        fc[r] = sse(pc[r], r)
        r = rows[gt]
        a[r] = pc[r]
        pc[r] = pd[r]
        fc[r] = fd[r]
        pd[r] = a[r] + (b[r] - a[r]) / _GOLDEN_RATIO
        fd[r] = sse(pd[r], r)
        moved = rows[lt | gt]
        live[moved] = np.abs(b[moved] - a[moved]) >= 1e-12
    alpha = (b + a) / 2.0
    _, fc_final = _exact_sse_constant_prefix(alpha, c, last, steps, max_steps)
    out = np.empty(m)
    out[order] = fc_final
    return out


@dataclass(frozen=True)
class _GoldenTree:
    """The points golden section can visit in its first decisions, and how its bracket moves.

    Node arrays give the point indices of a node's bracket ``a < c < d < b`` and its children
    (left when ``f(c) < f(d)``). Evaluating all points once (a shared grid) lets every series
    follow its own path, which matters when the SSE has several local minima in the bounds.
    """

    points: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    left: np.ndarray
    right: np.ndarray


def _golden_tree(lo: float, hi: float, depth: int) -> _GoldenTree:
    """Golden-section search tree on ``[lo, hi]`` down to ``depth`` decisions (C++ arithmetic)."""
    points = [lo, hi, hi - (hi - lo) / _GOLDEN_RATIO, lo + (hi - lo) / _GOLDEN_RATIO]
    nodes = [[0, 1, 2, 3, -1, -1]]  # a, b, c, d, left, right (point indices)
    frontier = [0]
    for _ in range(depth):
        nxt = []
        for n_id in frontier:
            a, b, c, d = nodes[n_id][:4]
            # left: b = d; d = c; c = b - (b - a) / gr
            points.append(points[d] - (points[d] - points[a]) / _GOLDEN_RATIO)
            nodes.append([a, d, len(points) - 1, c, -1, -1])
            nodes[n_id][4] = len(nodes) - 1
            nxt.append(len(nodes) - 1)
            # right: a = c; c = d; d = a + (b - a) / gr
            points.append(points[c] + (points[b] - points[c]) / _GOLDEN_RATIO)
            nodes.append([c, b, d, len(points) - 1, -1, -1])
            nodes[n_id][5] = len(nodes) - 1
            nxt.append(len(nodes) - 1)
        frontier = nxt
    arr = np.asarray(nodes, dtype=np.int64)
    return _GoldenTree(np.asarray(points), *(arr[:, i] for i in range(6)))


def _optimized_ses_ragged(
    sid: np.ndarray,
    pos: np.ndarray,
    value: np.ndarray,
    length: np.ndarray,
    bounds: tuple[float, float] = _SES_BOUNDS,
    exact_ties: bool = True,
) -> np.ndarray:
    """One-step forecast of SES with alpha minimising the in-sample SSE, per sparse series.

    Series ``s`` has length ``length[s]`` and non-zero values ``value`` at positions ``pos``
    (``sid`` sorted, ``pos`` increasing within a series). This reproduces statsforecast's
    ``golden_section_ses`` + ``ses_forecast``: a 7-point grid on ``bounds``, then two parabolic
    refinements on the series whose minimum is inside; a series whose SSE is flat (all values
    but the last equal) follows golden section's tie rules, exactly emulated when ``exact_ties``.
    """
    lo_b, hi_b = bounds
    mid = (lo_b + hi_b) / 2.0
    if (value == 0.0).any():
        keep = value != 0.0
        sid, pos, value = sid[keep], pos[keep], value[keep]
    n_series = length.size
    out = np.zeros(n_series)
    n_events = sid.size
    if n_events == 0:
        return out
    counts, starts, within = _series_index(sid, n_series)
    has = counts > 0
    first_i = starts.clip(max=n_events - 1)
    last_i = (starts + counts - 1).clip(0, n_events - 1)
    first_pos, last_pos, c_first = pos[first_i], pos[last_i], value[first_i]
    n_ge2 = length >= 2
    single = has & ~n_ge2  # N == 1: the forecast is the value itself
    out[single] = c_first[single]
    last_val = np.where(has & (last_pos == length - 1), value[last_i], 0.0)
    # SSE flat in alpha when x[0..N-2] is constant: zero (no event before N-1) ...
    flat_zero = has & n_ge2 & (first_pos >= length - 1)
    out[flat_zero] = mid * last_val[flat_zero]  # golden section ties at once: the midpoint
    # ... or c != 0 (events at every position 0..N-2, all equal)
    flat_c = has & n_ge2 & (first_pos == 0) & (counts >= length - 1)
    cand = np.flatnonzero(flat_c)
    if cand.size:
        end_i = starts[cand] + length[cand] - 2
        ok = pos[end_i] == length[cand] - 2
        pairs = np.stack([starts[cand], end_i + 1], axis=1).ravel()
        padded = np.append(value, 0.0)
        ok &= np.maximum.reduceat(padded, pairs)[::2] == np.minimum.reduceat(padded, pairs)[::2]
        flat_c[cand] = ok
    if flat_c.any():
        if exact_ties:
            out[flat_c] = _golden_constant_prefix(
                c_first[flat_c], last_val[flat_c], length[flat_c], lo_b, hi_b
            )
        else:
            out[flat_c] = mid * last_val[flat_c] + (1 - mid) * c_first[flat_c]
    general = has & ~flat_zero & ~flat_c & ~single
    n_general = int(np.count_nonzero(general))
    if n_general == 0:
        return out
    if n_general == int(np.count_nonzero(has)):
        rg = _ragged(sid, pos, value, length, (counts, starts, within))
        gen_idx = np.arange(n_series)
    else:
        sel = general[sid]
        gsid = np.cumsum(general) - 1
        rg = _ragged(gsid[sid[sel]], pos[sel], value[sel], length[general])
        gen_idx = np.flatnonzero(general)
    tree = _golden_tree(lo_b, hi_b, _GOLDEN_DEPTH)
    m = rg.order.size
    sse, _ = _ses_pass(rg, tree.points)
    # Follow golden section's first decisions on the shared points, exactly as it would.
    rows = np.arange(m)
    node = np.zeros(m, dtype=np.int64)
    for _ in range(_GOLDEN_DEPTH):
        left = sse[rows, tree.c[node]] < sse[rows, tree.d[node]]
        node = np.where(left, tree.left[node], tree.right[node])
    left = sse[rows, tree.c[node]] < sse[rows, tree.d[node]]
    trio = np.where(
        left[:, None],
        np.stack([tree.a[node], tree.c[node], tree.d[node]], axis=1),
        np.stack([tree.c[node], tree.d[node], tree.b[node]], axis=1),
    )
    x3 = tree.points[trio]
    f3 = sse[rows[:, None], trio]
    vx, ok = _vertex(x3, f3)
    bracket_lo, bracket_hi = x3[:, 0], x3[:, 2]
    alpha = _next_alpha(x3, f3, bracket_lo, bracket_hi)
    result = np.full(m, np.nan)
    todo = np.ones(m, dtype=bool)
    deltas = _REFINE_STEPS
    for n_pass, delta in enumerate(deltas):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        centre = alpha[idx].clip(lo_b + delta, hi_b - delta)
        xs = centre[:, None] + np.array([-delta, 0.0, delta])
        sse3, fc3 = _ses_pass(_subset_ragged(rg, idx), xs)
        new = _next_alpha(xs, sse3, bracket_lo[idx], bracket_hi[idx])
        alpha[idx] = new
        inside = (new >= xs[:, 0]) & (new <= xs[:, 2])
        result[idx] = np.where(inside, _lagrange3(xs, fc3, new), np.nan)
        todo[:] = False
        if n_pass + 1 < len(deltas):
            todo[idx] = (new > lo_b) & (new < hi_b)
    missing = np.flatnonzero(np.isnan(result))
    if missing.size:  # refinement left its stencil: evaluate the forecast at the final alpha
        _, fc1 = _ses_pass(_subset_ragged(rg, missing), alpha[missing, None])
        result[missing] = fc1[:, 0]
    out[gen_idx[rg.order]] = result
    return out


def _subset_ragged(rg: _Ragged, rows: np.ndarray) -> _Ragged:
    """The layout restricted to sorted series ``rows`` (increasing), still count-sorted."""
    keep = np.zeros(rg.order.size + 1, dtype=bool)
    keep[rows] = True
    # sorted-series index of every event of the layout: its offset inside its rank block
    block = np.repeat(rg.start, rg.active)
    ev_keep = keep[np.arange(rg.value.size, dtype=np.int64) - block]
    kept_before = np.concatenate(([0], np.cumsum(keep[:-1])))
    active = kept_before[rg.active]
    active = active[active > 0]
    start = np.zeros(active.size, dtype=np.int64)
    np.cumsum(active[:-1], out=start[1:])
    return _Ragged(
        rg.order[rows],
        rg.value[ev_keep],
        rg.gap_m1[ev_keep],
        rg.first_pos[rows],
        rg.tail[rows],
        start,
        active,
    )


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


def _croston_parts(ev: _Events) -> tuple[_Events, np.ndarray]:
    """Positive demands (Croston sizes) and the intervals between non-zero periods."""
    return ev.where(ev.value > 0), _intervals(ev)


def _croston_level(y: np.ndarray, alpha: float | None) -> np.ndarray:
    """Croston level (size / interval) per item, fixed ``alpha`` or optimised (None).

    Items without positive demand get their last value (statsforecast's Naive fallback).
    """
    ev = _nonzero_events(y)
    sizes, intervals = _croston_parts(ev)
    n_items = ev.n_items
    if alpha is None:
        s_counts, _, s_within = _series_index(sizes.item, n_items)
        i_counts, _, i_within = _series_index(ev.item, n_items)
        size_level = _optimized_ses_ragged(sizes.item, s_within, sizes.value, s_counts)
        interval_level = _optimized_ses_ragged(ev.item, i_within, intervals, i_counts)
    else:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        size_level = _ses_fixed_ragged(sizes.item, sizes.value, n_items, alpha)
        interval_level = _ses_fixed_ragged(ev.item, intervals, n_items, alpha)
    has_demand = np.bincount(sizes.item, minlength=n_items) > 0
    level = np.asarray(y)[:, -1].astype(np.float64)  # statsforecast falls back to Naive
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(interval_level != 0.0, size_level / interval_level, size_level)
    level[has_demand] = ratio[has_demand]
    return level


def croston(y: np.ndarray, h: int, alpha: float = 0.1) -> np.ndarray:
    """Croston's method: SES of demand sizes / SES of intervals (statsforecast ``CrostonClassic``).

    Sizes are the positive values, intervals are counted between non-zero periods (the first one
    from the series start); an item without positive demand gets its last value (statsforecast's
    Naive fallback).
    """
    return _flat(_croston_level(y, alpha), h)


def sba(y: np.ndarray, h: int, alpha: float = 0.1) -> np.ndarray:
    """Syntetos-Boylan approximation: Croston x (1 - alpha/2) (``CrostonSBA``: 0.95 at 0.1)."""
    return _flat(_croston_level(y, alpha) * (1.0 - alpha / 2.0), h)


def croston_optimized(y: np.ndarray, h: int) -> np.ndarray:
    """Croston with each SES alpha chosen in [0.1, 0.3] by in-sample SSE (``CrostonOptimized``)."""
    return _flat(_croston_level(y, None), h)


def tsb(
    y: np.ndarray, h: int, alpha_d: float | None = None, alpha_p: float | None = None
) -> np.ndarray:
    """Teunter-Syntetos-Babai: SES of the demand probability x SES of the positive sizes.

    With both alphas given this is statsforecast ``TSB``. An alpha left as None is chosen per item
    in [0.01, 0.5]: ``alpha_p`` minimises the in-sample one-step SSE of the occurrence indicator
    (non-zero or not), ``alpha_d`` that of the positive sizes; each part is optimised on its own
    series (a separable stand-in for the joint in-sample MSE), by grid + parabolic refinement.
    An item without positive demand forecasts 0.
    """
    ev = _nonzero_events(y)
    n_items, n = ev.n_items, ev.n_periods
    sizes = ev.where(ev.value > 0)
    bounds = (0.01, 0.5)
    if alpha_p is None:
        prob = _optimized_ses_ragged(
            ev.item, ev.period, np.ones(ev.item.size), np.full(n_items, n), bounds, exact_ties=False
        )
    else:
        prob = _sum_by(ev.item, ses_weights(n, alpha_p)[ev.period], n_items)
    if alpha_d is None:
        s_counts, _, s_within = _series_index(sizes.item, n_items)
        size = _optimized_ses_ragged(
            sizes.item, s_within, sizes.value, s_counts, bounds, exact_ties=False
        )
    else:
        size = _ses_fixed_ragged(sizes.item, sizes.value, n_items, alpha_d)
    return _flat(prob * size, h)


def _aggregation_level(ev: _Events) -> np.ndarray:
    """round(mean interval between non-zero periods) per item (half to even, like Python's round);
    0 for an all-zero item."""
    counts = ev.count
    last = np.full(ev.n_items, -1, dtype=np.int64)
    last[ev.item] = ev.period  # row-major: the last write is the last event
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_interval = np.where(counts > 0, (last + 1) / np.maximum(counts, 1), 0.0)
    return np.round(mean_interval).astype(np.int64)


def _aggregated_forecasts(ev: _Events, item: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Optimised-SES forecast of the sums over non-overlapping chunks of ``level`` periods.

    One series per (item, level) pair; chunks are aligned to the end and the incomplete first
    chunk is dropped (statsforecast ``_chunk_sums``/``chunk_forecast``). Returns the per-pair
    forecast of the chunk sum.
    """
    n = ev.n_periods
    counts, starts, _ = _series_index(ev.item, ev.n_items)
    per_pair = counts[item]
    total = int(per_pair.sum())
    pair = np.repeat(np.arange(item.size), per_pair)
    pair_start = np.zeros(item.size, dtype=np.int64)
    np.cumsum(per_pair[:-1], out=pair_start[1:])
    idx = starts[item][pair] + (np.arange(total, dtype=np.int64) - pair_start[pair])
    t = ev.period[idx]
    k = level[pair]
    lost = n % k
    keep = t >= lost
    pair, t, k, lost, idx = pair[keep], t[keep], k[keep], lost[keep], idx[keep]
    chunk = (t - lost) // k
    new = np.ones(pair.size, dtype=bool)
    new[1:] = (pair[1:] != pair[:-1]) | (chunk[1:] != chunk[:-1])
    first = np.flatnonzero(new)
    sums = np.add.reduceat(ev.value[idx], first) if first.size else np.zeros(0)
    return _optimized_ses_ragged(pair[first], chunk[first], sums, n // level)


def adida(y: np.ndarray, h: int) -> np.ndarray:
    """ADIDA: optimised SES on sums over chunks of round(mean interval) periods, / chunk size.

    statsforecast ``ADIDA``; an all-zero item forecasts 0.
    """
    ev = _nonzero_events(y)
    level = _aggregation_level(ev)
    out = np.zeros(ev.n_items)
    items = np.flatnonzero(level > 0)
    for lo in range(0, items.size, _BLOCK_ITEMS):
        block = items[lo : lo + _BLOCK_ITEMS]
        out[block] = _aggregated_forecasts(ev, block, level[block]) / level[block]
    return _flat(out, h)


def imapa(y: np.ndarray, h: int) -> np.ndarray:
    """IMAPA: mean over aggregation levels 1..round(mean interval) of the ADIDA-style forecast.

    statsforecast ``IMAPA``; an all-zero item forecasts 0.
    """
    ev = _nonzero_events(y)
    max_level = _aggregation_level(ev)
    out = np.zeros(ev.n_items)
    items = np.flatnonzero(max_level > 0)
    # Blocks of items with about the same number of (item, level) pairs.
    cum = np.cumsum(max_level[items])
    block_of = cum // (_BLOCK_ITEMS * 8)
    bounds = np.flatnonzero(np.diff(block_of, prepend=-1)) if items.size else np.zeros(0, int)
    for b, lo in enumerate(bounds):
        hi = bounds[b + 1] if b + 1 < bounds.size else items.size
        block = items[lo:hi]
        levels = max_level[block]
        item = np.repeat(block, levels)
        first = np.zeros(block.size, dtype=np.int64)
        np.cumsum(levels[:-1], out=first[1:])
        k = np.arange(item.size, dtype=np.int64) - np.repeat(first, levels) + 1
        fc = _aggregated_forecasts(ev, item, k) / k
        out[block] = _sum_by(np.repeat(np.arange(block.size), levels), fc, block.size) / levels
    return _flat(out, h)


def ma_nonzero(y: np.ndarray, h: int, window: int = 5) -> np.ndarray:
    """Mean of the last ``window`` positive demand sizes x demand rate.

    The rate is the share of periods with positive demand since the item's first positive demand
    (that period included), so leading zeros before an item existed do not dilute it. An item
    without positive demand forecasts 0.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    ev = _nonzero_events(y)
    sizes = ev.where(ev.value > 0)
    counts, starts, within = _series_index(sizes.item, ev.n_items)
    recent = within >= counts[sizes.item] - window
    size_mean = _sum_by(sizes.item[recent], sizes.value[recent], ev.n_items)
    has = counts > 0
    size_mean[has] /= np.minimum(counts[has], window)
    first = np.zeros(ev.n_items, dtype=np.int64)
    first[has] = sizes.period[starts[has]]
    rate = np.where(has, counts / np.maximum(ev.n_periods - first, 1), 0.0)
    return _flat(size_mean * rate, h)
