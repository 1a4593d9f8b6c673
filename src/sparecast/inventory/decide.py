"""The plan's policy computation: one code path for ``plan`` and ``evaluate-plan``.

:func:`plan_policy` turns a demand history, lead-time samples, service targets and order
quantities into the reorder points the plan sets, with every rule of the inventory settings:

1. the lead-time demand distribution (:func:`sparecast.methods.distributions.lead_time_demand`,
   ``inventory.distribution``, ``n_samples``, ``seed``), moved to the recent, adaptive or
   forecast level when ``inventory.level`` asks (:func:`sparecast.inventory.policy.level_factor`,
   :func:`sparecast.inventory.policy.level_weight`);
2. per item (``inventory.service_mode = "item"``): the fill-rate targets calibrated by a
   backtest on the history when ``inventory.calibrate`` is on
   (:func:`sparecast.inventory.calibration.calibrated_targets`), the distribution policy
   (:func:`sparecast.inventory.policy.distribution_policy`) and the sparse-item rule
   (``inventory.sparse_threshold``, :func:`sparecast.inventory.policy.apply_sparse_rule`);
   or, in the aggregate mode, the reorder points of
   :func:`sparecast.inventory.optimize.optimize_service` at the (calibrated) nominal aggregate
   target, with the per-tier minimum fill rates;
3. obsolescence (``inventory.obsolete_intervals``, :func:`sparecast.inventory.policy.
   obsolete_items`): obsolete items and items without any demand get reorder point -1 and are
   not replenished.

:func:`sparecast.inventory.plan.compute_plan` calls it on the whole history and
:func:`sparecast.inventory.decisions.evaluate_plan` on its training cut, so the decision
backtest replays what ``plan`` would have decided at the cut (settings included).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import norm

from sparecast.config import Settings
from sparecast.errors import ConfigError
from sparecast.inventory.calibration import (
    LEVEL_TOLERANCE,
    Calibration,
    calibrated_targets,
    calibration_window,
    pick_level_sigma,
    targets_reached,
)
from sparecast.inventory.optimize import (
    AGGREGATE_FACTORS,
    MAX_ITEM_FILL,
    AggregateCalibration,
    aggregate_margin,
    aggregate_weights,
    calibrate_aggregate_target,
    metric_inputs,
    nominal_for,
    optimize_service,
    sparse_value_rule,
)
from sparecast.inventory.policy import (
    PolicyResult,
    apply_sparse_rule,
    distribution_policy,
    level_factor,
    level_mixture,
    level_weight,
    level_weight_sums,
    obsolete_items,
    protection_review_periods,
    rescale_samples,
    with_reorder_points,
)
from sparecast.methods.distributions import LeadTimeDemand, lead_time_demand

__all__ = [
    "ALLOCATE_MEASURED_SHARE",
    "LEVEL_MIN_GAIN",
    "LEVEL_SEED",
    "PolicyDecision",
    "allocated_item_targets",
    "calibrated_item_targets",
    "level_window",
    "plan_policy",
    "target_level_sigma",
    "uncalibrated_aggregate_sigma",
    "unchecked",
    "with_level_uncertainty",
]

LEVEL_SEED = 11
"""Offset of the level factors' seed from ``inventory.seed`` (both service modes)."""

ALLOCATE_MEASURED_SHARE = 0.5
"""The per-item calibration is not used (the model's allocation, :func:`allocated_item_targets`,
plans instead) where it measured fewer than this share of the items and its earlier window
cannot be measured (:func:`unchecked`): lead times long against the history. Its factors, set on
the items with the shortest protection intervals over a holdout the level has moved less in,
would be carried to the majority it never measured, with no earlier window to show how they
carry over. Measured on real demand (oil, lead times of 1-24 months assumed, policies set on 37
months: 25% of the items measured), the calibrated plan filled 81.6 / 94.0 / 97.2% at 90 / 95
/ 98% and the allocation 91.7 / 94.3 / 96.3% (at 98% with half the stock); the monthly
generator sets (1-33 months, 56: 31% measured) 71-86% at 90% calibrated, 94-96% allocated
(docs/results.md). Where the calibration measures most items (every other benchmark set) or
has an earlier window, it stays the plan."""

LEVEL_MIN_GAIN = 0.005
"""The per-item level sigma search (:func:`calibrated_item_targets`) goes on to a larger sigma
for a target the smaller ones miss in the calibration backtest only while each step raises its
fill (over items with history) by at least this much (half a point): measured, the steps that
paid off raised it by 0.9-1.9 points or reached the target (oil at 98%), while a target out of
reach at every sigma (the 90% tier of ``sparecast demo``) gained 0.1-0.3 points a step for 7-33%
more stock each."""


def level_sigma_candidates(
    outcomes: dict[float, tuple[float, float]],
    target: float,
    min_gain: float = LEVEL_MIN_GAIN,
    tolerance: float = LEVEL_TOLERANCE,
) -> dict[float, tuple[float, float]]:
    """The level sigmas (of ``outcomes``: sigma -> (calibration fill over items with history,
    stock value)) a target may be planned at: in ascending order, up to the first that neither
    reaches ``target - tolerance`` nor raises the fill by ``min_gain`` over the previous one
    (that one and the larger excluded)."""
    out: dict[float, tuple[float, float]] = {}
    prev = -np.inf
    for s in sorted(outcomes):
        fill = outcomes[s][0]
        if out and fill < target - tolerance and fill < prev + min_gain:
            break
        out[s] = outcomes[s]
        prev = fill
    return out


@dataclass(frozen=True)
class PolicyDecision:
    """What :func:`plan_policy` decided per item: the policy (reorder points, order quantities,
    targets, expected fill rates), the (level-shifted) lead-time demand, the stocking rule
    (target, sparse, aggregate, obsolete, no_demand), the obsolescence flag and reason, the level
    factor (1 = unchanged), whether the item is replenished (not obsolete, some demand), the notes
    that change the result and timings."""

    policy: PolicyResult
    lead_time_demand: LeadTimeDemand
    rule: np.ndarray
    obsolete: np.ndarray
    obsolete_reason: np.ndarray
    level_factor: np.ndarray
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def replenished(self) -> np.ndarray:
        """bool[items]: items the plan orders for (not obsolete, demand in the history)."""
        return ~self.obsolete & (self.policy.mean_demand > 0)


def plan_policy(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray],
    targets: np.ndarray | float,
    order_quantity: np.ndarray,
    settings: Settings,
    *,
    period_days: float = 1.0,
    rate: np.ndarray | None = None,
    tiers: Sequence[str] | None = None,
    unit_cost: np.ndarray | float = np.nan,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    ltd: LeadTimeDemand | None = None,
    level_sigma: np.ndarray | float | None = None,
    level_weight: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PolicyDecision:
    """The plan's reorder points for the history ``y`` (items x periods) with per-item
    ``lead_times`` samples in periods, fill-rate (or cycle-service) ``targets`` per item and
    order quantities ``order_quantity`` (see the module docstring).

    ``rate``: demand per period the ``forecast`` level moves to (default the history mean);
    ``tiers``: per-item tier for ``inventory.min_fill_rates`` (aggregate mode; default none);
    ``unit_cost``: money per unit for the aggregate mode and the cost-aware calibration (NaN:
    1); ``ltd``: the lead-time demand of ``y`` when already computed with the same settings;
    ``level_sigma``: the per-item mode's level sigma per item when its targets are not
    calibrated here (None: ``inventory.item_level_sigma``; the Dask planner's workers get the
    sigmas the client's calibration picked, with its nominal targets); ``level_weight``: the
    adaptive level's weight (``inventory.level = "adaptive"``; None: measured on ``y``; the
    Dask planner's workers get the whole panel's)."""
    inv = settings.inventory
    h = np.asarray(y)
    n = h.shape[0]
    notes: list[str] = []
    timings: dict[str, float] = {}
    lts = [np.atleast_1d(np.asarray(lead_times[i], dtype=np.float64)) for i in range(n)]
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
    q = np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), (n,))
    moq_a = np.broadcast_to(np.asarray(moq, dtype=np.float64), (n,))
    lot_a = np.broadcast_to(np.asarray(lot_size, dtype=np.float64), (n,))
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    review = protection_review_periods(inv.policy, inv.review_period_days / period_days)
    t0 = time.perf_counter()
    if ltd is None:
        ltd = lead_time_demand(
            h,
            lts,
            review_period=review,
            method=inv.distribution,
            n_samples=inv.n_samples,
            seed=inv.seed,
            chunk_size=inv.chunk_size,
            progress=progress,
        )
    timings["lead_time_demand_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if rate is None:
        rate = np.maximum(h, 0).mean(axis=1, dtype=np.float64)
    # its note after the calibration's, as the Dask planner (calibration on the client, the
    # shift on the workers) merges them
    shift_notes: list[str] = []
    ltd, factor = shift_level(
        ltd, h, rate, review, period_days, settings, shift_notes, level_weight
    )
    timings["policy_s"] = time.perf_counter() - t0
    policy_targets = tgt
    aggregate = inv.service_mode == "aggregate"
    given = inv.item_level_sigma if level_sigma is None else level_sigma
    sigma = np.broadcast_to(np.asarray(given, dtype=np.float64), (n,))
    allocate = False
    if inv.calibrate and inv.target_type == "fill_rate" and not aggregate:
        t0 = time.perf_counter()
        policy_targets, sigma, allocate = calibrated_item_targets(
            h, lts, tgt, q, settings, period_days, moq_a, lot_a, cost, notes
        )
        if allocate:
            sigma = target_level_sigma(inv.allocation_level_sigma, tgt, settings)
        timings["calibration_s"] = time.perf_counter() - t0
    notes.extend(shift_notes)
    t0 = time.perf_counter()
    if not aggregate:
        # the per-item mode sets its policies on the level-uncertain lead-time demand (the
        # same function as the aggregate mode's, at the sigma its calibration picked)
        ltd = with_level_uncertainty(ltd, sigma, inv.seed + LEVEL_SEED)
    if allocate:
        policy_targets = allocated_item_targets(ltd, h, tgt, q, cost, settings, notes)
    pol = distribution_policy(
        ltd, policy_targets, q, target_type=inv.target_type, policy=inv.policy
    )
    tier_list = list(tiers) if tiers is not None else [""] * n
    aggregate_nominal = inv.aggregate_target
    if aggregate and inv.calibrate:
        t1 = time.perf_counter()
        aggregate_nominal, agg_sigma = calibrated_aggregate_target(
            h, lts, q, cost, tier_list, moq_a, lot_a, period_days, settings, notes
        )
        settings = _with_inventory(settings, aggregate_level_sigma=agg_sigma)
        timings["calibration_s"] = time.perf_counter() - t1
        t0 += time.perf_counter() - t1
    elif aggregate:
        settings = _with_inventory(
            settings, aggregate_level_sigma=uncalibrated_aggregate_sigma(settings)
        )
    # the sparse rule at the calibrated targets: the calibration backtest applies it at each
    # factor's nominal targets, so the sparse group's factor moves its fill rate too
    pol, rule = special_rules(
        h, ltd, pol, policy_targets, tier_list, cost, aggregate_nominal, settings, notes
    )
    obsolete, reason = obsolete_items(h, inv.obsolete_intervals)
    pol = with_reorder_points(pol, ltd, obsolete, np.full(n, -1.0))
    rule = np.where(obsolete, np.where(reason == "no_demand", "no_demand", "obsolete"), rule)
    timings["policy_s"] += time.perf_counter() - t0
    return PolicyDecision(pol, ltd, rule, obsolete, reason, factor, notes, timings)


def unchecked(
    n_periods: int,
    lead_times: Sequence[np.ndarray],
    settings: Settings,
    period_days: float = 1.0,
) -> str:
    """Why the per-item calibration of a history of ``n_periods`` is not used although it could
    run ("" when it is used or cannot run): its window
    (:func:`~sparecast.inventory.calibration.calibration_window`) measures under
    :data:`ALLOCATE_MEASURED_SHARE` of the items of its sample and the window one earlier (the
    out-of-sample margin's) cannot be measured. Read from the windows alone, before any
    backtest runs."""
    win = calibration_window(n_periods, lead_times, settings, period_days=period_days)
    if win.why:
        return ""
    share = float(win.measured[win.sample].mean())
    if share >= ALLOCATE_MEASURED_SHARE:
        return ""
    earlier = calibration_window(
        n_periods - win.holdout, lead_times, settings, period_days=period_days
    )
    if not earlier.why:
        return ""
    return (
        f"it measured {share:.0%} of the items (under {ALLOCATE_MEASURED_SHARE:.0%}: the "
        f"longer protection intervals do not fit its holdout) and cannot be checked one window "
        f"earlier ({earlier.why})"
    )


def calibrated_item_targets(
    y: np.ndarray,
    lead_times: list[np.ndarray],
    targets: np.ndarray,
    q: np.ndarray,
    settings: Settings,
    period_days: float,
    moq: np.ndarray,
    lot_size: np.ndarray,
    unit_cost: np.ndarray,
    notes: list[str],
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The per-item mode's nominal targets and level sigma per item, and whether the targets
    are left to :func:`allocated_item_targets` (not calibrated, in the cost-aware modes):
    the calibration backtest
    (:func:`sparecast.inventory.calibration.calibrated_targets`, with the plan's rules of
    :func:`calibration_rules`) run at the level sigmas of ``inventory.item_level_sigmas``
    (:func:`with_level_uncertainty` on the fit part's lead-time demand) in ascending order,
    stopping as soon as every target is reached by some sigma tried
    (:func:`sparecast.inventory.calibration.targets_reached`: where sigma 0 reaches them all,
    one backtest as without level uncertainty) or when no target missed so far raised its fill
    by :data:`LEVEL_MIN_GAIN` at the last sigma tried; per target, the sigma of
    :func:`sparecast.inventory.calibration.pick_level_sigma` among its
    :func:`level_sigma_candidates` (reaching the target at the least stock value, else the
    highest fill before the first step gaining less than :data:`LEVEL_MIN_GAIN`) with its
    calibrated nominal targets. A history too short to calibrate keeps the targets and
    ``inventory.item_level_sigma`` (allocated in the cost-aware modes), as does a calibration
    :func:`unchecked` in those modes (read before any backtest). ``groups``: as for
    ``calibrated_targets`` (``y`` then the calibration sample's rows only)."""
    inv = settings.inventory
    n = len(lead_times)
    if inv.calibration_mode != "group":
        why = unchecked(np.shape(y)[1], lead_times, settings, period_days)
        if why:
            notes.append(f"calibration not used: {why}")
            given = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
            return given, np.full(n, inv.item_level_sigma), True
    shift, pol_rule = calibration_rules(settings, period_days)
    wanted = [float(t) for t in np.unique(targets)]
    grid = sorted(set(inv.item_level_sigmas))
    found: dict[float, Calibration] = {}
    stop = ""
    for s in grid:

        def adjust_ltd(fit: np.ndarray, ltd: LeadTimeDemand, s: float = s) -> LeadTimeDemand:
            return with_level_uncertainty(shift(fit, ltd), s, inv.seed + LEVEL_SEED)

        found[s] = calibrated_targets(
            y,
            lead_times,
            targets,
            q,
            settings,
            period_days=period_days,
            moq=moq,
            lot_size=lot_size,
            adjust_ltd=adjust_ltd,
            adjust_policy=pol_rule,
            unit_cost=unit_cost,
            groups=groups,
        )
        if not found[s].calibrated:  # the same window for every sigma
            notes.append(found[s].note)
            allocate = inv.calibration_mode != "group"
            return found[s].nominal, np.full(n, inv.item_level_sigma), allocate
        if targets_reached([c.outcome for c in found.values()], wanted):
            stop = "every target reached"
            break
        if not any(
            len(level_sigma_candidates(o, t)) == len(o)
            for t in wanted
            if (o := {s: c.outcome[t] for s, c in found.items() if t in c.outcome})
            and max(f for f, _ in o.values()) < t - LEVEL_TOLERANCE
        ):
            stop = (
                f"no missed target's fill rose by {LEVEL_MIN_GAIN * 100:g} points at the last sigma"
            )
            break
    nominal = np.empty(n)
    sigma = np.full(n, min(found))
    picked = []
    for t in wanted:
        rows = targets == t
        outcomes = {s: c.outcome[t] for s, c in found.items() if t in c.outcome}
        s_t = pick_level_sigma(level_sigma_candidates(outcomes, t), t) if outcomes else min(found)
        nominal[rows] = found[s_t].nominal[rows]
        sigma[rows] = s_t
        tried = "; ".join(
            f"{s:g}: fill {f:.4f}, stock value {v:,.0f}" for s, (f, v) in outcomes.items()
        )
        picked.append(f"target {t:.4f}: level sigma {s_t:g} ({tried})")
    notes.append(found[float(sigma[0]) if n else min(found)].note)
    if len(grid) > 1:
        skipped = [s for s in grid if s not in found]
        notes.append(
            "level uncertainty per target (inventory.item_level_sigmas; the calibration "
            "backtest's fill over items with history and stock value at each sigma tried"
            + (f"; {', '.join(f'{s:g}' for s in skipped)} not tried: {stop}" if skipped else "")
            + "): "
            + "; ".join(picked)
        )
    return nominal, sigma, False


def target_level_sigma(sigma: float, targets: np.ndarray | float, settings: Settings) -> np.ndarray:
    """The level sigma of a plan not calibrated, per target: ``sigma`` (the setting's, for a
    95% target: ``inventory.allocation_level_sigma`` in the per-item mode's allocation,
    ``aggregate_level_sigma`` in the aggregate mode) scaled by ``(z(t) / z(0.95)) **
    inventory.level_sigma_power`` (z the standard normal quantile; 0 at targets of 50% and
    less, at most 2).

    Why: with one sigma for all targets the replayed fill rose 4.6-5.4 points from the 90% to
    the 98% plan where the model's rose 8, so the allocation reached over at 90% and fell short
    at 98% on real demand (oil with lead times of 1-33 / 1-24 months: +1.7 / -0.9 and +1.7 /
    -1.7 points); a sigma growing with the target closes that (power 0.5: +0.7 / -0.5 and
    +0.6 / -1.4), and the uncalibrated aggregate mode's 98% plan there went from 97.4% to
    97.8% (docs/results.md)."""
    # targets clipped to 50% and up, so z is never negative
    z = norm.ppf(np.clip(np.asarray(targets, dtype=np.float64), 0.5, 1 - 1e-9))
    ratio = z / norm.ppf(0.95)
    return np.minimum(sigma * ratio**settings.inventory.level_sigma_power, 2.0)


def allocated_item_targets(
    ltd: LeadTimeDemand,
    y: np.ndarray,
    targets: np.ndarray,
    order_quantity: np.ndarray,
    unit_cost: np.ndarray,
    settings: Settings,
    notes: list[str],
) -> np.ndarray:
    """The per-item mode's nominal targets where its calibration cannot run (a history too
    short for its holdout, or protection intervals too long to measure) or is not used
    (:func:`unchecked`: it measures under half the items and has no earlier window): per
    distinct target ``t``, the items asking for it planned by marginal analysis on the model
    (:func:`sparecast.inventory.optimize.optimize_service`, fill-rate metric, on ``ltd`` at
    :func:`target_level_sigma` of ``inventory.allocation_level_sigma``, which the plan
    passes): every item at
    least ``t - inventory.calibration_floor_gap``, the rest of the stock bought where a point
    of fill costs least, until the model's fill over those items reaches ``t``; an item's
    nominal target is its model fill at the reorder point chosen.

    The model-based counterpart of the cost-aware calibration (whose groups share the same
    floor). Why: where the calibration could not run, every item at ``t`` put the stock where
    it is dearest per unit of fill and left it exposed to level shifts; measured on oil with
    lead times of 1-33 months (policies set on 37 months, replayed on 19, the calibration
    measuring 19% of the items), the plan filled 84.6 / 89.7 / 91.9% at 90 / 95 / 98% with
    every item at its target and 91.7 / 94.6 / 97.1% planned this way (docs/results.md)."""
    inv = settings.inventory
    n = ltd.n_items
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,))
    nominal = tgt.copy()
    weights = aggregate_weights(ltd, y, "fill_rate")
    q = np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), (n,))
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    parts = []
    for t in np.unique(tgt):
        rows = np.flatnonzero(tgt == t)
        floor = max(float(t) - inv.calibration_floor_gap, 0.0)
        opt = optimize_service(
            ltd.samples[rows],
            q[rows],
            weights[rows],
            cost[rows],
            float(t),
            min_fill_rate=floor,
            lead_samples=ltd.lead_samples[rows] if ltd.review_period > 0 else None,
            integer=ltd.params.integer[rows],
        )
        # the model fill at the chosen reorder point (distribution_policy finds it again,
        # or a lower one of the same fill); a hair under it, so rounding cannot ask for more
        nominal[rows] = np.maximum(opt.expected_fill_rate - 1e-9, floor)
        sigma = float(target_level_sigma(inv.allocation_level_sigma, t, settings))
        parts.append(
            f"target {t:.4f} (level sigma {sigma:.2f}): {rows.size} item(s) at {floor:.4f} or "
            f"more, mean nominal "
            f"{nominal[rows].mean():.4f}, model fill over them {opt.aggregate_fill_rate:.4f}"
        )
    notes.append(
        "targets planned by marginal analysis on the model instead (no item under the target "
        "minus inventory.calibration_floor_gap, the stock bought where a point of fill costs "
        "least; inventory.calibration_mode = group plans every item at its target): "
        + "; ".join(parts)
    )
    return nominal


def calibration_rules(
    settings: Settings, period_days: float
) -> tuple[
    Callable[[np.ndarray, LeadTimeDemand], LeadTimeDemand],
    Callable[
        [np.ndarray, LeadTimeDemand, PolicyResult, np.ndarray, np.ndarray],
        tuple[PolicyResult, np.ndarray],
    ],
]:
    """The plan's rules for the calibration backtest (``calibrate_targets``' ``adjust_ltd`` and
    ``adjust_policy``): the level shift of the fit part (``inventory.level``; the forecast level
    is the fit part's mean there, no forecast being made), the sparse rule at the targets
    passed (each factor's nominal targets) and obsolescence (obsolete items and items without
    demand not replenished)."""
    inv = settings.inventory
    review = protection_review_periods(inv.policy, inv.review_period_days / period_days)

    def adjust_ltd(fit: np.ndarray, ltd: LeadTimeDemand) -> LeadTimeDemand:
        rate = np.maximum(fit, 0).mean(axis=1, dtype=np.float64)
        return shift_level(ltd, fit, rate, review, period_days, settings, [])[0]

    def adjust_policy(
        fit: np.ndarray,
        ltd: LeadTimeDemand,
        pol: PolicyResult,
        targets: np.ndarray,
        unit_cost: np.ndarray,
    ) -> tuple[PolicyResult, np.ndarray]:
        if inv.sparse_threshold > 0:
            pol, _ = sparse_rule(pol, ltd, fit, targets, settings, unit_cost)
        obsolete, _ = obsolete_items(fit, inv.obsolete_intervals)
        pol = with_reorder_points(pol, ltd, obsolete, np.full(ltd.n_items, -1.0))
        return pol, ~obsolete

    return adjust_ltd, adjust_policy


def level_window(settings: Settings, period_days: float) -> int:
    """The recent level's window in periods (``inventory.level_window_days``, at least one): one
    rule for the plan's shift and the Dask client's weight of the adaptive level."""
    return max(1, round(settings.inventory.level_window_days / period_days))


def shift_level(
    ltd: LeadTimeDemand,
    y: np.ndarray,
    rate: np.ndarray,
    review: float,
    period_days: float,
    settings: Settings,
    notes: list[str],
    weight: float | None = None,
) -> tuple[LeadTimeDemand, np.ndarray]:
    """The lead-time demand moved to the recent, adaptive or forecast level
    (``inventory.level``), and the factor per item (1 = unchanged); see
    ``sparecast.inventory.policy.level_factor``. ``weight``: the adaptive level's weight
    (:func:`sparecast.inventory.policy.level_weight`; None: measured on ``y``, all its items;
    the Dask planner passes the whole panel's to every chunk)."""
    inv = settings.inventory
    n = ltd.n_items
    if inv.level == "history" or n == 0:
        return ltd, np.ones(n)
    per_period = ltd.mean / np.maximum(ltd.mean_lead_time + review, 1e-12)
    if inv.level in ("recent", "adaptive"):
        window = level_window(settings, period_days)
        factor = level_factor(y, per_period, window)
        # no integer but the counts in the note: the Dask planner sums them over its chunks
        what = f"the last {float(inv.level_window_days)} days"
        if inv.level == "adaptive":
            w = level_weight(level_weight_sums(y, window)) if weight is None else float(weight)
            if not 0.0 <= w <= 1.0:  # NaN included
                raise ConfigError(f"the adaptive level's weight must be in [0, 1], got {weight}")
            factor = 1.0 + w * (factor - 1.0)
            what = (
                f"{what}, a share {w:.3f} of the way from the history's (the weight that "
                "predicted the history's last third best)"
            )
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(
                per_period > 0,
                np.clip(rate / np.where(per_period > 0, per_period, 1.0), 0.25, 4.0),
                1.0,
            )
        what = "the forecast"
    samples = rescale_samples(ltd.samples, factor, ltd.params.integer, inv.seed)
    lead = (
        rescale_samples(ltd.lead_samples, factor, ltd.params.integer, inv.seed)
        if ltd.review_period > 0
        else samples
    )
    moved = replace(ltd, samples=samples, lead_samples=lead)
    up, down = int((factor > 1.1).sum()), int((factor < 1 / 1.1).sum())
    notes.append(
        f"lead-time demand moved to the level of {what} (inventory.level = {inv.level}): "
        f"{up} item(s) raised, {down} lowered by more than 10%"
    )
    return moved, factor


def with_level_uncertainty(
    ltd: LeadTimeDemand, sigma: float | np.ndarray, seed: int
) -> LeadTimeDemand:
    """The lead-time demand with level uncertainty: each sample path times a lognormal level
    factor of mean 1 (:func:`sparecast.inventory.policy.level_mixture`, ``sigma`` one for all
    items or one per item, 0: unchanged). One path for both service modes, in the plan and in
    its calibration backtests: the aggregate mode optimises on it
    (``inventory.aggregate_level_sigma(s)``), the per-item mode sets its policies on it
    (``inventory.item_level_sigma(s)``). ``seed``: ``inventory.seed + 11`` in both. Measured on
    carparts and oil, the demand the aggregate mode lost at a nominal 99.98% was in items whose
    demand grew (by 4x and more: 312 of 402 units on carparts, 4,462 of 5,149 on oil): the
    stationary samples put no weight there, so no nominal target reached 98%."""
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (ltd.n_items,))
    if not (sig > 0).any():
        return ltd
    samples = level_mixture(ltd.samples, sig, ltd.params.integer, seed)
    lead = (
        level_mixture(ltd.lead_samples, sig, ltd.params.integer, seed)
        if ltd.review_period > 0
        else samples
    )
    return replace(ltd, samples=samples, lead_samples=lead)


def special_rules(
    y: np.ndarray,
    ltd: LeadTimeDemand,
    pol: PolicyResult,
    targets: np.ndarray,
    tiers: list[str],
    unit_cost: np.ndarray,
    aggregate_nominal: float,
    settings: Settings,
    notes: list[str],
) -> tuple[PolicyResult, np.ndarray]:
    """Aggregate service mode (``optimize_service``) or, per item, the sparse rule; returns
    the policy and the stocking rule per item (target, aggregate, sparse)."""
    inv = settings.inventory
    n = len(tiers)
    rule = np.full(n, "target", dtype=object)
    if inv.service_mode == "aggregate":
        weights, period_weights, sizes = metric_inputs(ltd, y, inv.aggregate_metric, inv.seed)
        ltd = with_level_uncertainty(ltd, inv.aggregate_level_sigma, inv.seed + LEVEL_SEED)
        mins = _minimums(tiers, settings)
        opt = optimize_service(
            ltd.samples,
            pol.order_quantity,
            weights,
            unit_cost,
            aggregate_nominal,
            min_fill_rate=mins,
            lead_samples=ltd.lead_samples if ltd.review_period > 0 else None,
            integer=ltd.params.integer,
            metric=inv.aggregate_metric,
            sizes=sizes,
            period_weights=period_weights,
        )
        pol = with_reorder_points(pol, ltd, np.ones(n, bool), opt.reorder_point)
        pol = replace(pol, target=np.full(n, aggregate_nominal))
        rule[:] = "aggregate"
        what = {
            "demand_periods": "share of demand periods served in full",
            "fill_and_periods": "fill rate and share of demand periods served in full",
        }.get(inv.aggregate_metric, "fill rate")
        notes.append(
            f"service_mode = aggregate: reorder points for an aggregate {what} of "
            f"{aggregate_nominal:.4f} at minimum stock value (predicted "
            f"{opt.aggregate_fill_rate:.4f}"
            + ("" if opt.reached else f", out of reach at a {MAX_ITEM_FILL:.2%} cap per item")
            + ")"
        )
        return pol, rule
    if inv.sparse_threshold <= 0:
        return pol, rule
    pol, sparse = sparse_rule(pol, ltd, y, targets, settings, unit_cost)
    if sparse.any():
        rule[sparse] = "sparse"
        how = (
            "the units with the most demand filled per unit of money (sparse_policy = value)"
            if inv.sparse_policy == "value"
            else "one typical lump when a demand in the protection interval is likely enough "
            "for the target"
        )
        notes.append(
            f"{int(sparse.sum())} sparse item(s) (demand in under "
            f"{inv.sparse_threshold:.0%} of periods): {how}, "
            f"{int((pol.reorder_point[sparse] < 0).sum())} with no stock (reorder point -1)"
        )
    return pol, rule


def sparse_rule(
    pol: PolicyResult,
    ltd: LeadTimeDemand,
    y: np.ndarray,
    targets: np.ndarray,
    settings: Settings,
    unit_cost: np.ndarray | float = 1.0,
) -> tuple[PolicyResult, np.ndarray]:
    """The sparse rule of ``inventory.sparse_policy`` (lump: ``apply_sparse_rule``; value:
    ``sparse_value_rule``) and the mask of the sparse items."""
    inv = settings.inventory
    if inv.sparse_policy == "value":
        cost = np.nan_to_num(
            np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (ltd.n_items,)), nan=1.0
        )
        return sparse_value_rule(pol, ltd, y, targets, inv.sparse_threshold, cost)
    return apply_sparse_rule(pol, ltd, y, targets, inv.sparse_threshold)


def calibrated_aggregate_target(
    y: np.ndarray,
    lt_samples: list[np.ndarray],
    q: np.ndarray,
    unit_cost: np.ndarray,
    tiers: list[str],
    moq: np.ndarray,
    lot: np.ndarray,
    period_days: float,
    settings: Settings,
    notes: list[str],
) -> tuple[float, float]:
    """The nominal aggregate target and level sigma that reached ``inventory.aggregate_target``
    in a backtest on the history (``optimize.calibrate_aggregate_target``; the same holdout,
    warm-up and item sample as the per-item calibration, the plan's level shift and
    obsolescence), tried at each level sigma of ``aggregate_level_sigmas``: the one reaching
    the target at the least stock value (else the highest achieved; ties to the smaller sigma).
    With ``calibration_margin`` the nominal is then raised by the out-of-sample margin: the
    same calibration one window earlier, its nominal replayed on the holdout
    (:func:`~sparecast.inventory.optimize.aggregate_margin`), whatever the
    ``calibration_mode``. Where the calibration is :func:`unchecked` (it measures few items
    and has no earlier window), its level sigma is no less than the uncalibrated one
    (:func:`uncalibrated_aggregate_sigma`): it may raise the plan, not lower it. Histories too
    short for a calibration keep the target and that sigma, with a note."""
    inv = settings.inventory
    n_periods = y.shape[1]
    review = max(1, round(inv.review_period_days / period_days))
    # the same rule as the per-item calibration (the automatic minimum of the history)
    win = calibration_window(n_periods, lt_samples, settings, period_days=period_days)
    if win.why:
        notes.append(f"aggregate target not calibrated: {win.why}")
        return inv.aggregate_target, uncalibrated_aggregate_sigma(settings)
    holdout, sample = win.holdout, win.sample
    lts = [lt_samples[i] for i in sample]
    # as the per-item calibration: each item's warm-up is its protection interval; items
    # without room for a measured one after it are simulated but not measured
    warm, measured = win.warmup[sample], win.measured[sample]
    warm = np.where(measured, warm, holdout)
    shift, _ = calibration_rules(settings, period_days)

    def replenish(fit: np.ndarray) -> np.ndarray:
        return ~obsolete_items(fit, inv.obsolete_intervals)[0]

    mins = _minimums(tiers, settings)
    target = inv.aggregate_target

    def run(
        hist: np.ndarray,
        w_holdout: int,
        w_warm: np.ndarray,
        sigma: float,
        factors: Sequence[float] = AGGREGATE_FACTORS,
    ) -> AggregateCalibration:
        """The aggregate calibration on ``hist`` (the sample's rows) at level sigma ``sigma``."""

        def adjust_ltd(fit: np.ndarray, ltd: LeadTimeDemand) -> LeadTimeDemand:
            return with_level_uncertainty(shift(fit, ltd), sigma, inv.seed + LEVEL_SEED)

        return calibrate_aggregate_target(
            hist,
            lts,
            q[sample],
            unit_cost[sample],
            target,
            holdout=w_holdout,
            warmup=w_warm,
            min_fill_rate=mins[sample],
            policy=inv.policy,
            review_period=review,
            distribution=inv.distribution,
            n_samples=inv.n_samples,
            moq=np.broadcast_to(moq, q.shape)[sample],
            lot_size=np.broadcast_to(lot, q.shape)[sample],
            seed=inv.seed,
            replenish=replenish,
            adjust_ltd=adjust_ltd,
            metric=inv.aggregate_metric,
            factors=factors,
        )

    # the level uncertainty that reaches the target at the least stock value in the backtest
    # (stable demand needs none; growth and decay need some to reach high targets at all)
    found = {s: run(y[sample], holdout, warm, s) for s in sorted(set(inv.aggregate_level_sigmas))}
    reached = [k for k, c in found.items() if c.reached]
    if reached:
        sigma = min(reached, key=lambda k: (found[k].value, k))
    else:
        sigma = max(found, key=lambda k: (max(b for _, b in found[k].pairs), -k))
    cal = found[sigma]
    tried = ", ".join(f"{a:.4f} -> {b:.4f}" for a, b in cal.pairs)
    if not cal.reached:
        tried += "; not reached at any nominal target: planned at the highest"
    others = "; ".join(
        f"level sigma {k:g}: {'value ' + format(c.value, ',.0f') if c.reached else 'not reached'}"
        for k, c in found.items()
    )
    nominal, margin_note = cal.nominal, ""
    if inv.calibration_margin > 0 and cal.reached:
        # as the per-item calibration's margin: the same calibration one window earlier,
        # its nominal replayed on the holdout; half (calibration_margin) of its shortfall added
        earlier = calibration_window(
            n_periods - holdout, lt_samples, settings, period_days=period_days
        )
        if earlier.why:
            margin_note = f"; no out-of-sample margin ({earlier.why} in the earlier window)"
        else:
            e_warm = np.where(earlier.measured[sample], earlier.warmup[sample], earlier.holdout)
            early = run(y[sample][:, : n_periods - holdout], earlier.holdout, e_warm, sigma)
            # what the earlier choice got there, replayed on the holdout (its factor kept
            # within the nominal targets calibrate_aggregate_target tries: 5% or more)
            predicted = early.achieved
            f = min((1.0 - early.nominal) / (1.0 - target), 0.95 / (1.0 - target))
            got = run(y[sample], holdout, warm, sigma, factors=(f,)).pairs[0][1]
            margin = aggregate_margin(target, predicted, got, inv.calibration_margin)
            if margin > 0:
                nominal = nominal_for(cal.pairs, target + margin)
            margin_note = (
                f"; out-of-sample margin from an earlier window (nominal {early.nominal:.4f}: "
                f"{predicted:.4f} there, {got:.4f} on the holdout, +{margin:.4f}: planned at "
                f"{nominal:.4f})"
            )
    floor_note = ""
    why = unchecked(n_periods, lt_samples, settings, period_days)
    floor = uncalibrated_aggregate_sigma(settings)
    if why and sigma < floor:
        # a holdout of the short-lead items only is easier than the plan's test: where it
        # cannot be checked one window earlier, its level sigma may only raise the plan
        floor_note = (
            f"; not checked (under {ALLOCATE_MEASURED_SHARE:.0%} of the items measured, no "
            f"earlier window): planned at level sigma {floor:.3g} (the uncalibrated one), "
            f"not {sigma:g}"
        )
        sigma = floor
    notes.append(
        f"aggregate target calibrated on the last {holdout} periods of {sample.size} item(s): "
        f"planned at a nominal {nominal:.4f} with level sigma {sigma:.3g} to reach "
        f"{target:.4f} out of sample (nominal -> achieved: {tried}; {others}{margin_note}"
        f"{floor_note})"
    )
    return nominal, sigma


def uncalibrated_aggregate_sigma(settings: Settings) -> float:
    """The aggregate mode's level sigma where its target is not calibrated:
    ``inventory.aggregate_level_sigma`` at ``aggregate_target`` (:func:`target_level_sigma`)."""
    inv = settings.inventory
    return float(target_level_sigma(inv.aggregate_level_sigma, inv.aggregate_target, settings))


def _minimums(tiers: list[str], settings: Settings) -> np.ndarray:
    """float64[items]: the aggregate mode's minimum fill rate per item, the higher of its
    tier's (``inventory.min_fill_rates``) and ``inventory.aggregate_min_fill``."""
    inv = settings.inventory
    tier = np.array([inv.min_fill_rates.get(t, 0.0) for t in tiers], dtype=np.float64)
    return np.maximum(tier, inv.aggregate_min_fill)


def _with_inventory(settings: Settings, **changes: object) -> Settings:
    """``settings`` with some inventory settings changed (validated like any settings)."""
    inv = settings.inventory.model_validate({**settings.inventory.model_dump(), **changes})
    return settings.model_copy(update={"inventory": inv})
