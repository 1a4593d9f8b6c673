"""Multi-item service optimisation: an aggregate fill rate at minimum stock value.

Per-item targets spend the same service on every item, whatever a unit of it costs. The
business goals are aggregate (a share of all demand filled, few stockouts); Sherbrooke's METRIC
approach reaches such a goal at minimum investment by marginal analysis: raise the reorder point
of the item that adds the most expected filled demand per unit of money, until the aggregate
target is reached.

:func:`optimize_service` does that on the Monte-Carlo lead-time demand of
:mod:`sparecast.methods.distributions`:

1. every item starts at the smallest reorder point reaching its minimum fill rate (per class,
   e.g. per tier; 0 = none) and may rise up to the reorder point of ``max_fill`` (99.99%);
2. between these, each item's fill-rate curve ``f_i(s)`` (:func:`sparecast.inventory.policy.
   fill_rate_from_samples`) is evaluated on at most ``max_levels`` reorder points (every unit
   when the range is that short, otherwise evenly spaced steps);
3. the gain of a step is the expected filled demand per period it adds, ``w_i (f_i(s') -
   f_i(s))`` with ``w_i`` the item's demand per period, over its cost ``c_i (s' - s)``: one more
   unit of reorder point holds one more unit of stock on average;
4. fill-rate curves of lumpy demand are not concave (nothing is gained until a whole lump is
   covered), so the greedy runs on each item's upper concave hull (from every level the steepest
   jump to a higher level; the walk visits the hull's vertices, with decreasing gains). All hull
   segments of all items are sorted by gain, best first, and accepted until the demand-weighted
   fill rate ``sum w_i f_i / sum w_i`` reaches the target. Sorting the segments is exactly the
   greedy (an item's segments come in decreasing order of gain), without a Python loop per step.

With ``metric = "demand_periods"`` the same greedy runs on the share of demand periods served
in full (:func:`demand_period_service`, weights: each item's share of periods with demand), the
spec's "under 2% stockouts" rather than a share of units. With ``metric = "fill_and_periods"``
it runs on the mean of the two normalised gains (a unit filled and a demand period served count
as the same share of their totals) and stops when both the fill rate and the share of demand
periods served reach the target: on the fill rate alone the greedy leaves dear sparse items
short in many periods (weekly demo sets at 98%: 3-7% of demand periods short), on the periods
alone it gives up the units of big lumps.

Nothing is reached without stock for an item whose lower bound is already its cap; when the
target is out of reach even with every item at ``max_fill``, every item is at its cap and
``reached`` is False.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sparecast.errors import ConfigError, DataValidationError
from sparecast.inventory.policy import (
    PolicyResult,
    SortedSamples,
    fill_rate_sorted,
    item_chunks,
    protection_review_periods,
    reorder_point_sorted,
    sparse_items,
    with_reorder_points,
)
from sparecast.inventory.simulate import simulate_policy
from sparecast.methods.distributions import LeadTimeDemand, lead_time_demand

__all__ = [
    "AGGREGATE_METRICS",
    "AggregateCalibration",
    "ServiceOptimum",
    "aggregate_margin",
    "aggregate_weights",
    "calibrate_aggregate_target",
    "demand_period_service",
    "demand_sizes",
    "metric_inputs",
    "nominal_for",
    "optimize_service",
]

AGGREGATE_METRICS = ("fill_rate", "demand_periods", "fill_and_periods")
"""What the aggregate target counts: ``fill_rate`` the share of demand (units) filled,
``demand_periods`` the share of demand periods served in full (one minus the stockout rate, the
share of periods with demand that are short), ``fill_and_periods`` both: the target is reached
when the fill rate and the share of demand periods served both reach it."""

PERIOD_METRICS = ("demand_periods", "fill_and_periods")
"""The metrics that count demand periods (they need the history's demand sizes)."""

# calibration: factors on 1 - target tried for the nominal aggregate target
MAX_ITEM_FILL = 0.9999
"""The highest fill rate the greedy raises one item to: 99.99%, so that cheap items can carry
an aggregate target of 98% (at 99.9% the cap kept the aggregate mode below 98% on real data)."""
AGGREGATE_FACTORS = (5.0, 3.0, 2.0, 1.4, 1.0, 0.7, 0.5, 0.35, 0.2, 0.1, 0.05, 0.02, 0.01)
"""Factors on ``1 - target`` the aggregate calibration tries; above 1 they lower the nominal
target (the level uncertainty of the aggregate mode overshoots on stable demand); nominal
targets under 5% are not tried."""


@dataclass(frozen=True)
class ServiceOptimum:
    """The optimised reorder points (float64[items]), their predicted fill rates, the aggregate
    fill rate the model predicts (``sum w f / sum w``), the stock value the reorder points add
    over the lower bounds (``sum c (s - s_min)``) and whether the target was reached."""

    reorder_point: np.ndarray
    expected_fill_rate: np.ndarray
    min_reorder_point: np.ndarray
    aggregate_fill_rate: float
    added_value: float
    reached: bool


@dataclass(frozen=True)
class AggregateCalibration:
    """What :func:`calibrate_aggregate_target` found: the ``nominal`` target to plan at, the
    (nominal, achieved aggregate fill) ``pairs`` it tried, whether one ``reached`` the target
    and the average stock value of the replay at the chosen nominal (``value``, interpolated
    like the nominal; unit costs as given) and its aggregate fill (``achieved``: the target
    when reached between two nominals, else the best fill of the nominals up to the chosen
    one)."""

    nominal: float
    pairs: list[tuple[float, float]]
    reached: bool
    value: float
    achieved: float = float("nan")


def demand_sizes(y: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
    """float64[items, n_samples]: demand sizes of a period with demand, drawn from each item's
    positive history values (all 0 for an item without demand), to pair with the lead-time
    demand paths in :func:`demand_period_service`."""
    h = np.nan_to_num(np.maximum(np.asarray(y, dtype=np.float64), 0.0))
    n = h.shape[0]
    if n == 0 or h.shape[1] == 0:
        return np.zeros((n, n_samples))
    desc = -np.sort(-h, axis=1)  # positive values first
    k = (h > 0).sum(axis=1)
    u = np.random.default_rng(seed).random((n, n_samples))
    idx = np.minimum((u * k[:, None]).astype(np.int64), np.maximum(k - 1, 0)[:, None])
    return np.take_along_axis(desc, idx, axis=1)


def demand_period_service(
    lead_samples: np.ndarray,
    sizes: np.ndarray,
    reorder_point: np.ndarray,
    order_quantity: np.ndarray,
    *,
    integer: np.ndarray | None = None,
) -> np.ndarray:
    """Expected share of demand periods served in full by an (s, nQ) policy with backorders,
    float64[items]: one minus the chance that a period with demand ends short.

    A period with demand (size ``d``, :func:`demand_sizes`) right after a lead time is short
    when the demand over the lead time ``D_L`` (``lead_samples``, paired path by path with
    ``sizes``) leaves less than ``d`` of the inventory position: ``D_L + d > IP``, with the
    inventory position uniform on ``s+1 .. s+Q`` as in
    :func:`~sparecast.inventory.policy.fill_rate_from_samples` (``(s, s+Q]`` for continuous
    items). Items without demand (``sizes`` all 0) are served.
    """
    s_arr = np.asarray(reorder_point, dtype=np.float64)
    q = np.maximum(np.asarray(order_quantity, dtype=np.float64), 1e-12)
    n_items = lead_samples.shape[0]
    ints = np.ones(n_items, bool) if integer is None else np.asarray(integer, dtype=bool)
    out = np.ones(n_items)
    for start in range(0, n_items, 2048):
        sl = slice(start, min(n_items, start + 2048))
        size = np.asarray(sizes[sl], dtype=np.float64)
        over = lead_samples[sl].astype(np.float64) + size - s_arr[sl, None]
        qq = q[sl, None]
        # P(IP < D_L + d): the count of the Q integer levels above s under it, or the share
        # of (s, s + Q] under it
        p_int = np.clip(np.ceil(over - 1e-9) - 1.0, 0.0, qq) / qq
        p_cont = np.clip(over / qq, 0.0, 1.0)
        short = np.where(ints[sl, None], p_int, p_cont).mean(axis=1)
        out[sl] = np.where((size > 0).any(axis=1), 1.0 - short, 1.0)
    return np.clip(out, 0.0, 1.0)


def aggregate_weights(
    ltd: LeadTimeDemand, y: np.ndarray | None = None, metric: str = "fill_rate"
) -> np.ndarray:
    """float64[items]: each item's weight in the aggregate target ``metric``: its mean demand
    per period (``fill_rate``, and ``fill_and_periods``, whose period weights
    :func:`optimize_service` takes as ``period_weights``) or its share of periods with demand
    in the history ``y`` (``demand_periods``: the expected demand periods per period)."""
    if metric not in AGGREGATE_METRICS:
        raise ConfigError(f"aggregate metric must be one of {AGGREGATE_METRICS}, got {metric!r}")
    if metric in ("fill_rate", "fill_and_periods"):
        return ltd.mean / np.maximum(ltd.mean_lead_time + ltd.review_period, 1e-12)
    if y is None:
        raise ConfigError("the demand_periods metric needs the history")
    return (np.nan_to_num(np.asarray(y, dtype=np.float64)) > 0).mean(axis=1)


def metric_inputs(
    ltd: LeadTimeDemand, y: np.ndarray, metric: str, seed: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """What :func:`optimize_service` takes for ``metric`` on the history ``y``: the item
    weights (:func:`aggregate_weights`), the period weights (``fill_and_periods`` only) and
    the demand sizes (the metrics counting demand periods; :func:`demand_sizes` drawn with
    ``seed + 5``). One rule for the plan and its calibration backtest."""
    w = aggregate_weights(ltd, y, metric)
    pw = aggregate_weights(ltd, y, "demand_periods") if metric == "fill_and_periods" else None
    sizes = demand_sizes(y, ltd.samples.shape[1], seed + 5) if metric in PERIOD_METRICS else None
    return w, pw, sizes


def _levels(lo: np.ndarray, hi: np.ndarray, max_levels: int) -> np.ndarray:
    """``float64[items, K]`` reorder points from ``lo`` to ``hi`` (both included, integers,
    non-decreasing; repeated at the end when an item has fewer than K distinct levels)."""
    span = np.maximum(hi - lo, 0.0)
    k = max(2, min(max_levels, int(span.max()) + 1 if span.size else 2))
    step = np.maximum(np.ceil(span / (k - 1)), 1.0)
    lv = lo[:, None] + step[:, None] * np.arange(k)[None, :]
    return np.minimum(lv, hi[:, None])


def _hull_segments(
    levels: np.ndarray, value: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segments of each item's upper concave hull of ``value`` against ``cost * level``:
    ``(item, end level index, gain per money, start level index)``, each int/float[segments]
    (an item's segments in hull order)."""
    n, k = levels.shape
    money = levels * cost[:, None]
    items, ends, ratios, starts = [], [], [], []
    cur = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    prev = np.full(n, np.inf)  # each item's last gain per money: its hull's gains never rise
    for _ in range(k - 1):
        dm = money - money[rows, cur][:, None]
        dv = value - value[rows, cur][:, None]
        later = (np.arange(k)[None, :] > cur[:, None]) & (dm > 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(later, dv / np.where(dm > 0, dm, 1.0), -np.inf)
        # the steepest jump; on ties the nearest (finer steps overshoot the target less), ties
        # within a relative 1e-9 (a straight stretch of a curve computed in floating point
        # has slopes that differ in the last bits)
        top = slope.max(axis=1, keepdims=True)
        best = np.argmax(slope >= top - 1e-9 * np.abs(top), axis=1)
        ok = np.isfinite(slope[rows, best]) & (slope[rows, best] > 0)
        if not ok.any():
            break
        idx = rows[ok]
        items.append(idx)
        ends.append(best[ok])
        # in exact arithmetic the hull's slopes fall; in floating point a straight stretch
        # can rise in the last bits, and the sort by gain would then take a later step first
        ratio = np.minimum(slope[idx, best[ok]], prev[idx])
        prev[idx] = ratio
        ratios.append(ratio)
        starts.append(cur[ok])
        cur = np.where(ok, best, k - 1)
    if not items:
        empty = np.empty(0)
        return empty.astype(np.int64), empty.astype(np.int64), empty, empty.astype(np.int64)
    return (
        np.concatenate(items),
        np.concatenate(ends),
        np.concatenate(ratios),
        np.concatenate(starts),
    )


FillFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``fill(rows, s)``: the service of the given rows of one chunk of items at reorder points."""


def _fill_rate_fn(
    d: SortedSamples, dl: SortedSamples | None, q: np.ndarray, ints: np.ndarray
) -> FillFn:
    """The fill rate of rows of one chunk, from its sorted samples."""
    return lambda rows, s: fill_rate_sorted(d, dl, rows, s, q[rows], ints[rows])


def _period_service_fn(
    lead: np.ndarray, sizes: np.ndarray, q: np.ndarray, ints: np.ndarray
) -> FillFn:
    """The share of demand periods served in full of rows of one chunk."""
    return lambda rows, s: demand_period_service(
        lead[rows], sizes[rows], s, q[rows], integer=ints[rows]
    )


def _level_values(levels: np.ndarray, fill: FillFn) -> np.ndarray:
    """``fill`` of every item of a chunk at each of its ``levels`` (items x K), computed only
    where an item's level is new (short ranges repeat their top level)."""
    value = np.empty_like(levels)
    rows = np.arange(levels.shape[0])
    value[:, 0] = fill(rows, levels[:, 0])
    for j in range(1, levels.shape[1]):
        new = np.flatnonzero(levels[:, j] > levels[:, j - 1])
        value[:, j] = value[:, j - 1]
        if new.size:
            value[new, j] = fill(new, levels[new, j])
    return value


def optimize_service(
    samples: np.ndarray,
    order_quantity: np.ndarray,
    demand_per_period: np.ndarray,
    unit_cost: np.ndarray,
    target: float,
    *,
    min_fill_rate: np.ndarray | float = 0.0,
    lead_samples: np.ndarray | None = None,
    integer: np.ndarray | None = None,
    max_fill: float = MAX_ITEM_FILL,
    max_levels: int = 32,
    metric: str = "fill_rate",
    sizes: np.ndarray | None = None,
    min_level: float = 0.0,
    period_weights: np.ndarray | None = None,
) -> ServiceOptimum:
    """Reorder points reaching the aggregate fill rate ``target`` at minimum stock value.

    ``samples[items, n]``: lead-time demand over the protection interval (``lead_samples`` over
    the lead time alone, as for :func:`fill_rate_from_samples`); ``order_quantity`` Q,
    ``demand_per_period`` the weights ``w`` of the aggregate fill rate, ``unit_cost`` the money
    per unit of stock (missing or non-positive costs take the median of the others, or 1),
    ``min_fill_rate`` a floor per item (e.g. its class minimum). See the module docstring.

    ``metric = "demand_periods"``: the target is the share of demand periods served in full
    (one minus the stockout rate): the item curves are :func:`demand_period_service` on the
    lead-time samples (``lead_samples``, else ``samples``) and the demand ``sizes`` of a demand
    period (:func:`demand_sizes`, required), the weights the items' shares of periods with
    demand (:func:`aggregate_weights`), so the greedy buys the most short periods avoided per
    unit of money. The floors and the cap of each item stay fill rates; ``expected_fill_rate``
    and ``aggregate_fill_rate`` are then in that metric.

    ``metric = "fill_and_periods"``: both targets at once (module docstring); the weights of
    the fill rate are ``demand_per_period``, those of the demand periods ``period_weights``
    (:func:`aggregate_weights` with ``demand_periods``, required), and ``expected_fill_rate``
    is the fill rate, ``aggregate_fill_rate`` the lower of the two aggregates.

    ``min_level``: the lowest reorder point considered (0; -1 lets an item hold nothing and
    order when a demand comes, as the sparse items of :func:`sparse_value_rule`).
    """
    if metric not in AGGREGATE_METRICS:
        raise ConfigError(f"aggregate metric must be one of {AGGREGATE_METRICS}, got {metric!r}")
    n = samples.shape[0]
    if not 0.0 < target < 1.0:
        raise ConfigError(f"aggregate fill-rate target must be in (0, 1), got {target}")
    if not 0.0 < max_fill <= 1.0 or max_levels < 2:
        raise ConfigError(
            f"need 0 < max_fill <= 1 and max_levels >= 2, got {max_fill}, {max_levels}"
        )
    q = np.asarray(order_quantity, dtype=np.float64)
    w = np.maximum(np.nan_to_num(np.asarray(demand_per_period, dtype=np.float64)), 0.0)
    c = np.asarray(unit_cost, dtype=np.float64)
    if q.shape != (n,) or w.shape != (n,) or c.shape != (n,):
        raise DataValidationError(f"order_quantity, demand_per_period, unit_cost need {n} values")
    good = np.isfinite(c) & (c > 0)
    fallback = float(np.median(c[good])) if good.any() else 1.0
    c = np.where(good, c, fallback)
    floor = np.broadcast_to(np.asarray(min_fill_rate, dtype=np.float64), (n,))
    if ((floor < 0) | (floor >= 1)).any():
        raise ConfigError("minimum fill rates must be in [0, 1)")
    if n == 0:
        e = np.empty(0)
        return ServiceOptimum(e, e, e, 1.0, 0.0, True)
    if metric in PERIOD_METRICS and (sizes is None or sizes.shape[0] != n):
        raise DataValidationError(f"the {metric} metric needs demand sizes for every item")
    both = metric == "fill_and_periods"
    if both and (period_weights is None or np.shape(period_weights) != (n,)):
        raise DataValidationError("the fill_and_periods metric needs period weights per item")
    ints = np.ones(n, dtype=bool) if integer is None else np.asarray(integer, dtype=bool)

    def sorted_chunk(sl: slice) -> tuple[SortedSamples, SortedSamples | None]:
        """The chunk's samples sorted once for its bisections and fill rates."""
        lead = None if lead_samples is None else SortedSamples(lead_samples[sl])
        return SortedSamples(samples[sl]), lead

    # each item's range of reorder points: its floor (or min_level) .. the cap's fill rate
    lo = np.full(n, float(min_level))
    hi = np.empty(n)
    for sl in item_chunks(n):
        d, dl = sorted_chunk(sl)
        lo_c, q_c, i_c = lo[sl], q[sl], ints[sl]  # lo_c: a view, written through
        some = np.flatnonzero(floor[sl] > 0)
        if some.size:
            got = reorder_point_sorted(d, dl, floor[sl][some], q_c[some], i_c[some], rows=some)
            lo_c[some] = np.maximum(got, lo_c[some])
        top = reorder_point_sorted(d, dl, np.full(q_c.size, max_fill), q_c, i_c)
        hi[sl] = np.maximum(top, lo_c)
    # the levels need every item's range first (their count is set by the widest), so each
    # chunk's samples are sorted a second time below, rather than held for all items at once
    levels = _levels(lo, hi, max_levels)
    # each metric's curve per item and level: the fill rate unless demand_periods, the periods
    # served with demand_periods and fill_and_periods
    fill_curve = np.empty_like(levels) if metric != "demand_periods" else None
    period_curve = np.empty_like(levels) if metric in PERIOD_METRICS else None
    lead = samples if lead_samples is None else lead_samples
    for sl in item_chunks(n):
        if period_curve is not None and sizes is not None:
            served = _period_service_fn(lead[sl], sizes[sl], q[sl], ints[sl])
            period_curve[sl] = _level_values(levels[sl], served)
        if fill_curve is not None:
            fill = _fill_rate_fn(*sorted_chunk(sl), q[sl], ints[sl])
            fill_curve[sl] = _level_values(levels[sl], fill)
    # a higher reorder point never serves less
    curves = [np.maximum.accumulate(v, axis=1) for v in (fill_curve, period_curve) if v is not None]
    value = curves[0]  # what expected_fill_rate reports: the fill rate, or the periods served
    # each metric's curves times its weights; with two metrics, the weights as shares of their
    # total so both count alike (one metric: unscaled, so collinear steps keep exact ties)
    weights = [w]
    if both and period_weights is not None:
        pw = np.maximum(np.nan_to_num(np.asarray(period_weights, np.float64)), 0.0)
        weights = [x / x.sum() if x.sum() > 0 else x for x in (w, pw)]
    shares = [v * x[:, None] for v, x in zip(curves, weights, strict=True)]
    needs = [
        target * float(x.sum()) - float(v[:, 0].sum()) for v, x in zip(shares, weights, strict=True)
    ]
    # the greedy on the mean of the metrics' gains (one metric: its own gains)
    blended = np.mean(shares, axis=0)
    item, end, ratio, start = _hull_segments(levels, blended, c)
    chosen = np.zeros(n, dtype=np.int64)
    reached = all(need <= 1e-12 for need in needs)
    if not reached and item.size:
        order = np.lexsort((end, -ratio))  # best gain first; within an item, in hull order
        it, st, en = item[order], start[order], end[order]
        # the first segment after which every metric has reached the target
        stop = max(
            int(np.searchsorted(np.cumsum(v[it, en] - v[it, st]), need - 1e-12))
            for v, need in zip(shares, needs, strict=True)
        )
        reached = stop < order.size
        take = order[: min(stop + 1, order.size)]
        np.maximum.at(chosen, item[take], end[take])
    rows = np.arange(n)
    s = levels[rows, chosen]
    f = value[rows, chosen]
    agg = min(
        float(v[rows, chosen].sum() / x.sum()) if x.sum() > 0 else 1.0
        for v, x in zip(shares, weights, strict=True)
    )
    return ServiceOptimum(
        reorder_point=s,
        expected_fill_rate=f,
        min_reorder_point=lo,
        aggregate_fill_rate=agg,
        added_value=float((c * (s - lo)).sum()),
        reached=bool(reached),  # a metric without weight needs nothing: reached
    )


def calibrate_aggregate_target(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    order_quantity: np.ndarray,
    unit_cost: np.ndarray,
    target: float,
    *,
    holdout: int,
    warmup: int | np.ndarray,
    min_fill_rate: np.ndarray | float = 0.0,
    policy: str = "sQ",
    review_period: int = 1,
    distribution: str = "auto",
    n_samples: int = 1000,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    seed: int = 0,
    factors: Sequence[float] = AGGREGATE_FACTORS,
    replenish: Callable[[np.ndarray], np.ndarray] | None = None,
    adjust_ltd: Callable[[np.ndarray, LeadTimeDemand], LeadTimeDemand] | None = None,
    metric: str = "fill_rate",
) -> AggregateCalibration:
    """The nominal aggregate target that reaches ``target`` out of sample, from a backtest on
    ``y``: :func:`optimize_service` on ``y[:, :-holdout]`` at nominal targets ``1 - (1 -
    target) f`` for each factor ``f``, simulated on the last ``holdout`` periods (after
    ``warmup``); the factor at which the simulated aggregate fill rate (served / demanded) reaches
    ``target`` is interpolated between the two around it (the smallest when none does). The
    fill rate is measured on the items with demand in the fit part (as the goal: items with
    history), the new items' demand being out of reach of any policy set on the fit part.

    As for per-item targets (``inventory.simulate.calibrate_targets``), estimation error alone
    lowers the achieved fill rate. ``warmup``: one number of periods or one per item (e.g. the
    protection interval); ``replenish(fit)`` -> bool[items]: the items the plan stocks (the
    others start at 0 and never order; default all); ``adjust_ltd(fit, ltd)``: the plan's level
    shift; ``metric``: what ``target`` counts (:data:`AGGREGATE_METRICS`; ``demand_periods``
    measures the share of demand periods served in full, ``fill_and_periods`` the lower of that
    share and the fill rate). Returns an :class:`AggregateCalibration`.
    """
    h = np.asarray(y, dtype=np.float64)
    n, n_t = h.shape
    warm = np.broadcast_to(np.asarray(warmup, dtype=np.int64), (n,))
    if not 0 < holdout - int(warm.min(initial=holdout)) or holdout >= n_t:
        raise ConfigError(
            f"calibration holdout ({holdout}) must exceed the warm-up ({int(warm.min())}) and "
            "leave history"
        )
    fit, check = h[:, : n_t - holdout], h[:, n_t - holdout :]
    rp = protection_review_periods(policy, review_period)
    ltd = lead_time_demand(
        fit, lead_times, review_period=rp, method=distribution, n_samples=n_samples, seed=seed
    )
    if adjust_ltd is not None:
        ltd = adjust_ltd(fit, ltd)
    stocked = replenish(fit) if replenish is not None else None
    history = np.maximum(fit, 0.0).sum(axis=1) > 0
    q = np.asarray(order_quantity, dtype=np.float64)
    w, pw, sizes = metric_inputs(ltd, fit, metric, seed)
    fs = np.asarray(factors, dtype=np.float64)
    fs = fs[1.0 - (1.0 - target) * fs >= 0.05]
    if fs.size == 0:
        raise ConfigError(f"no calibration factor leaves a nominal target of 5% for {target}")
    achieved = np.empty(fs.size)
    value = np.empty(fs.size)
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    cost = np.where(np.isfinite(cost) & (cost > 0), cost, 1.0)
    nominal = 1.0 - (1.0 - target) * fs
    for j, t in enumerate(nominal):
        opt = optimize_service(
            ltd.samples,
            q,
            w,
            unit_cost,
            float(t),
            min_fill_rate=min_fill_rate,
            lead_samples=ltd.lead_samples if ltd.review_period > 0 else None,
            integer=ltd.params.integer,
            metric=metric,
            sizes=sizes,
            period_weights=pw,
        )
        sim = simulate_policy(
            check,
            opt.reorder_point,
            q,
            lead_times,
            policy=policy,
            review_period=max(review_period, 1),
            moq=moq,
            lot_size=lot_size,
            warmup=np.minimum(warm, check.shape[1]) if np.ndim(warmup) else warmup,
            seed=seed + 7,
            replenish=stocked,
        )
        # measured on the items with demand in the fit part: the others are new to the
        # policy (their demand is out of reach of any reorder point set on the fit part)
        got = []
        if metric in PERIOD_METRICS:
            dem = sim.per_item["demand_days"].to_numpy()[history].sum()
            short = sim.per_item["stockout_demand_days"].to_numpy()[history].sum()
            got.append(1.0 - short / dem if dem > 0 else 1.0)
        if metric != "demand_periods":
            dem = sim.per_item["demand"].to_numpy()[history].sum()
            got.append(sim.per_item["filled"].to_numpy()[history].sum() / dem if dem > 0 else 1.0)
        achieved[j] = min(got)
        value[j] = float((sim.per_item["avg_on_hand"].to_numpy() * cost).sum())
    pairs = [(float(a), float(b)) for a, b in zip(nominal, achieved, strict=True)]
    at, reached = _crossing(achieved, target)
    idx = np.arange(fs.size)
    return AggregateCalibration(
        float(np.interp(at, idx, nominal)),
        pairs,
        reached,
        float(np.interp(at, idx, value)),
        float(np.interp(at, idx, np.maximum.accumulate(achieved))),
    )


def _crossing(achieved: np.ndarray, target: float) -> tuple[float, bool]:
    """Where along the tried nominal targets (ascending) the achieved fill (made monotone)
    first reaches ``target``: a fractional index, linear between the two around it; the first
    when it is reached there, the last (and False) when it is never reached."""
    fill = np.maximum.accumulate(np.asarray(achieved, dtype=np.float64))
    if fill[0] >= target:
        return 0.0, True
    if fill[-1] < target:
        return float(fill.size - 1), False
    j = int(np.argmax(fill >= target))
    lo, hi = fill[j - 1], fill[j]
    return j - 1 + ((target - lo) / (hi - lo) if hi > lo else 1.0), True


def nominal_for(pairs: Sequence[tuple[float, float]], target: float) -> float:
    """The nominal aggregate target that reaches ``target`` on the (nominal, achieved) ``pairs``
    of :func:`calibrate_aggregate_target` (interpolated as it does; the highest nominal when
    none does): how the out-of-sample margin re-reads a calibration for a higher target."""
    nominal = np.array([a for a, _ in pairs], dtype=np.float64)
    at, _ = _crossing(np.array([b for _, b in pairs]), target)
    return float(np.interp(at, np.arange(nominal.size), nominal))


MAX_MARGIN_SHARE = 0.5
""":func:`aggregate_margin` is at most this share of ``1 - target`` (as the per-item margin)."""


def aggregate_margin(target: float, predicted: float, replayed: float, weight: float) -> float:
    """The out-of-sample margin of the aggregate calibration for ``target``: ``weight`` times
    how far the nominal chosen one window earlier falls short of the fill it got there
    (``predicted``: its :attr:`AggregateCalibration.achieved`) when replayed on
    the holdout (``replayed``); not negative, at most :data:`MAX_MARGIN_SHARE` of ``1 -
    target``. The aggregate twin of :func:`sparecast.inventory.calibration.shortfall_margin`."""
    return float(min(max(predicted - replayed, 0.0) * weight, MAX_MARGIN_SHARE * (1.0 - target)))


def sparse_value_rule(
    pol: PolicyResult,
    ltd: LeadTimeDemand,
    y: np.ndarray,
    targets: np.ndarray,
    threshold: float,
    unit_cost: np.ndarray | float = 1.0,
) -> tuple[PolicyResult, np.ndarray]:
    """``pol`` with the sparse items of ``y`` (:func:`sparse_items`) stocked by fill gained per
    unit of value (``inventory.sparse_policy = "value"``), and the mask of those items.

    The sparse items of one target are one pool: :func:`optimize_service` on their lead-time
    samples, from reorder point -1 (hold nothing, order when a demand comes) up, buys the
    units (a whole lump, part of one, or nothing per item) with the most expected demand
    filled per unit of money until the pool's predicted fill rate (weighted by mean demand)
    reaches the target. Cheap items whose demand in the protection interval is likely are
    stocked first, dear ones with a rare lump last; part of a lump fills part of a demand (the
    fill rate counts units). The calibration
    moves the pool's target, so the calibrated fill of the group is traded as any other. Not
    capped by ``pol``'s per-item reorder point: a cheap item may be stocked above its own
    target so that dear ones hold nothing.
    """
    sparse = sparse_items(y, threshold)  # none for threshold <= 0
    if not sparse.any():
        return pol, sparse
    n = ltd.n_items
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,))
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    weights = aggregate_weights(ltd)
    s_new = np.full(n, np.nan)
    for t in np.unique(tgt[sparse]):
        idx = np.flatnonzero(sparse & (tgt == t))
        opt = optimize_service(
            ltd.samples[idx],
            pol.order_quantity[idx],
            weights[idx],
            cost[idx],
            float(np.clip(t, 1e-6, 1 - 1e-6)),
            lead_samples=ltd.lead_samples[idx] if ltd.review_period > 0 else None,
            integer=ltd.params.integer[idx],
            min_level=-1.0,
        )
        s_new[idx] = opt.reorder_point
    return with_reorder_points(pol, ltd, sparse, s_new), sparse
