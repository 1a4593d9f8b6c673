"""Inventory simulation: replay demand period by period under a policy; measure service and stock.

Model (one loop over periods, arrays over items):

- every period: the period's demand is served from the stock on hand; what cannot be served is
  backordered (filled by the next receipts, never counted as filled). Negative demand (returns)
  is treated as zero.
- at the end of the period the receipts due that period arrive, then the policy is reviewed
  (``sQ``: every period; ``RsS``: every ``review_period`` periods, starting with period 0): when
  the inventory position (on hand + on order - backorders) is at or below ``s`` an order is
  placed (``sQ``: the smallest multiple of Q lifting it above ``s``; ``RsS``: up to ``S``, rounded
  up to the lot size and at least the MOQ). Each order's lead time is drawn from the item's
  lead-time samples (rounded to whole periods, at least 1) and it arrives at the end of the
  period ``lead time`` periods later; orders may cross.
- the simulation starts at the policy's own level: ``S`` on hand (the top of the inventory
  position the policy holds, at least 0) and nothing on order, except items the policy never
  replenishes (``replenish`` false, e.g. no demand in the history the policy was set on): they
  start at 0 and never order, so they add no stock value. The first ``warmup`` periods
  (per item or for all) are simulated but not measured; :func:`protection_warmup` gives each
  item its protection interval (lead time + review, rounded up), the shortest warm-up after
  which the starting stock no longer flatters the result (an order placed at period 0 has
  arrived). Items whose warm-up reaches the end are simulated but not measured.

Backorders rather than lost sales: an ERP books an unserved issue as a backlog (a work order
waiting for its part), the inventory position the planner sees nets it, and the fill-rate
formulas of :mod:`sparecast.inventory.policy` assume it.

Measured per item after the warm-up: demand, filled (served from stock when demanded),
``fill_rate``; replenishment cycles (periods between receipts) and those with a shortage,
``cycle_service_level``; ``stockout_days`` (periods ending with backorders), demand periods and
``stockout_demand_days`` (demand periods not fully served); average on hand (units and value);
orders placed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from sparecast.errors import ConfigError, DataValidationError
from sparecast.inventory.policy import (
    PolicyResult,
    distribution_policies,
    distribution_policy,
    normal_policy,
    order_quantity,
    protection_review_periods,
    round_order_quantity,
    sba_one_step,
)
from sparecast.methods.distributions import LeadTimeDemand, lead_time_demand, lead_time_matrix

__all__ = [
    "GROUP_NAMES",
    "SimulationResult",
    "protection_warmup",
    "simulate_policy",
    "calibrate_targets",
    "calibration_curves",
    "CalibrationCurves",
    "frequency_groups",
    "nominal_targets",
    "solve_factors",
    "cost_aware_factors",
    "shrunk_fills",
    "calibrated_outcome",
    "DEFAULT_FLOOR_GAP",
    "compare_policies",
]

# calibrate_targets: nominal target = 1 - (1 - target) * factor; above 1 lowers the target
TARGET_FACTORS: tuple[float, ...] = (
    2.0, 1.5, 1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.025, 0.01,
)  # fmt: skip
CALIBRATION_SHRINKAGE = 30.0
"""Prior weight, in items, of the pooled shortfall in a group's calibration (solve_factors)."""
# frequency_groups: lower bounds of the share of periods with demand (the default tiers)
_GROUP_BOUNDS = (0.02, 0.1, 0.5)
GROUP_NAMES: tuple[str, ...] = ("no demand", "under 2%", "2-10%", "10-50%", "50% or more")
"""Names of the :func:`frequency_groups` indices with the default bounds (share of periods with
demand; group 0 is the items without any demand)."""


@dataclass(frozen=True)
class SimulationResult:
    """``per_item``: one row per item (metrics of the module docstring); ``totals``: sums and
    overall rates (``fill_rate`` = served / demanded over all items, ``mean_item_fill_rate`` over
    items with demand, ``stockout_rate`` = stockout demand periods / demand periods)."""

    per_item: pl.DataFrame
    totals: dict[str, float]


def simulate_policy(
    demand: np.ndarray,
    reorder_point: np.ndarray,
    order_quantity: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    *,
    policy: str = "sQ",
    review_period: int = 1,
    order_up_to: np.ndarray | None = None,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    unit_cost: np.ndarray | float = 1.0,
    initial_inventory: np.ndarray | None = None,
    warmup: int | np.ndarray = 0,
    seed: int = 0,
    item_ids: Sequence[str] | None = None,
    replenish: np.ndarray | None = None,
) -> SimulationResult:
    """Simulate ``demand[items, periods]`` under an (s, Q) or (R, s, S) policy with backorders.

    ``reorder_point`` s and ``order_quantity`` Q per item (``order_up_to`` S defaults to s + Q);
    ``lead_times`` per-item samples in periods (as for ``lead_time_demand``). ``replenish``
    (bool per item, default all): items the policy stocks; the others start at 0 and never
    order. ``initial_inventory`` (default ``max(S, 0)`` for replenished items, else 0).
    ``warmup``: periods not measured, one for all items or one per item.
    """
    d_all = np.maximum(np.asarray(demand, dtype=np.float64), 0.0)
    if d_all.ndim != 2:
        raise DataValidationError(f"demand must be [items, periods], got shape {d_all.shape}")
    n, n_t = d_all.shape
    if policy not in ("sQ", "RsS"):
        raise ConfigError(f"policy must be 'sQ' or 'RsS', got {policy!r}")
    if review_period < 1:
        raise ConfigError(f"review_period must be >= 1 period, got {review_period}")
    if np.ndim(warmup) == 0:
        if not 0 <= int(warmup) < n_t:
            raise ConfigError(f"warmup must be in [0, {n_t}) periods, got {warmup}")
    elif np.shape(warmup) != (n,) or (np.asarray(warmup) < 0).any():
        raise ConfigError(f"warmup per item must be {n} values >= 0")
    warm = np.broadcast_to(np.asarray(warmup, dtype=np.int64), (n,))
    stocked = (
        np.ones(n, dtype=bool)
        if replenish is None
        else np.broadcast_to(np.asarray(replenish, dtype=bool), (n,))
    )
    s = np.broadcast_to(np.asarray(reorder_point, dtype=np.float64), (n,)).copy()
    q = np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), (n,)).copy()
    if (q <= 0).any():
        raise ConfigError("order_quantity must be > 0 for every item")
    big_s = s + q if order_up_to is None else np.asarray(order_up_to, dtype=np.float64)
    moq_a = np.broadcast_to(np.asarray(moq, dtype=np.float64), (n,))
    lot_a = np.broadcast_to(np.asarray(lot_size, dtype=np.float64), (n,))
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    lt, counts = lead_time_matrix(lead_times, n)
    lt = np.maximum(np.rint(np.nan_to_num(lt, nan=1.0)), 1.0).astype(np.int64)
    max_lt = int(lt.max())
    rng = np.random.default_rng(seed)

    if initial_inventory is None:
        net = np.where(stocked, np.maximum(big_s, 0.0), 0.0)
    else:
        net = np.broadcast_to(np.asarray(initial_inventory, dtype=np.float64), (n,)).copy()
    on_order = np.zeros(n)
    arrivals = np.zeros((n, n_t + max_lt + 1))
    demand_sum = np.zeros(n)
    filled_sum = np.zeros(n)
    demand_days = np.zeros(n)
    short_demand_days = np.zeros(n)
    stockout_days = np.zeros(n)
    on_hand_sum = np.zeros(n)
    n_orders = np.zeros(n)
    cycles = np.zeros(n)
    short_cycles = np.zeros(n)
    short_in_cycle = np.zeros(n, dtype=bool)
    rows = np.arange(n)
    for t in range(n_t):
        measure = t >= warm
        d = d_all[:, t]
        filled = np.minimum(d, np.maximum(net, 0.0))
        short = d - filled > 1e-9
        net -= d
        short_in_cycle |= short
        arr = arrivals[:, t]
        got = arr > 0
        net += arr
        on_order -= arr
        demand_sum += np.where(measure, d, 0.0)
        filled_sum += np.where(measure, filled, 0.0)
        demand_days += measure & (d > 0)
        short_demand_days += measure & short
        stockout_days += measure & (net < -1e-9)
        on_hand_sum += np.where(measure, np.maximum(net, 0.0), 0.0)
        cycles += measure & got
        short_cycles += measure & got & short_in_cycle
        short_in_cycle &= ~got
        if policy == "sQ" or t % review_period == 0:
            ip = net + on_order
            need = (ip <= s + 1e-9) & stocked
            if need.any():
                idx = rows[need]
                if policy == "sQ":
                    k = np.floor((s[idx] - ip[idx]) / q[idx]) + 1.0
                    qty = round_order_quantity(k * q[idx], moq_a[idx], lot_a[idx])
                else:
                    qty = round_order_quantity(big_s[idx] - ip[idx], moq_a[idx], lot_a[idx])
                pick = np.floor(rng.random(idx.size) * counts[idx]).astype(np.int64)
                due = t + lt[idx, pick]
                arrivals[idx, due] += qty
                on_order[idx] += qty
                n_orders[idx] += measure[idx]
    n_meas = np.maximum(n_t - warm, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.where(demand_sum > 0, filled_sum / demand_sum, np.nan)
        csl = np.where(cycles > 0, 1.0 - short_cycles / cycles, np.nan)
    avg_on_hand = on_hand_sum / np.maximum(n_meas, 1)
    ids = [str(i) for i in range(n)] if item_ids is None else list(item_ids)
    per_item = pl.DataFrame(
        {
            "item_id": pl.Series(ids, dtype=pl.String),
            "demand": demand_sum,
            "filled": filled_sum,
            "fill_rate": fill,
            "cycles": cycles,
            "stockout_cycles": short_cycles,
            "cycle_service_level": csl,
            "demand_days": demand_days,
            "stockout_demand_days": short_demand_days,
            "stockout_days": stockout_days,
            "avg_on_hand": avg_on_hand,
            "avg_on_hand_value": avg_on_hand * cost,
            "n_orders": n_orders,
            "measured_periods": n_meas.astype(np.int64),
        },
        nan_to_null=True,
    )
    has = demand_sum > 0
    totals = {
        "items": float(n),
        "periods_measured": float(n_meas.max()),
        "items_measured": float((n_meas > 0).sum()),
        "demand": float(demand_sum.sum()),
        "filled": float(filled_sum.sum()),
        "fill_rate": float(filled_sum.sum() / demand_sum.sum()) if demand_sum.sum() else np.nan,
        "mean_item_fill_rate": float(np.mean(fill[has])) if has.any() else np.nan,
        "cycle_service_level": float(1.0 - short_cycles.sum() / cycles.sum())
        if cycles.sum()
        else np.nan,
        "stockout_rate": float(short_demand_days.sum() / demand_days.sum())
        if demand_days.sum()
        else np.nan,
        "stockout_days": float(stockout_days.sum()),
        "avg_on_hand": float(avg_on_hand.sum()),
        "avg_on_hand_value": float((avg_on_hand * cost).sum()),
        "n_orders": float(n_orders.sum()),
    }
    return SimulationResult(per_item=per_item, totals=totals)


def frequency_groups(y: np.ndarray, bounds: Sequence[float] = _GROUP_BOUNDS) -> np.ndarray:
    """Group index per item from its share of periods with demand: 0 for items without any
    demand (their own group everywhere: mixed with sparse items they drag a group's measured
    fill rate to its cap), then 1 below ``bounds[0]``, 2 up to ``bounds[1]``, ...; with the
    default bounds :data:`GROUP_NAMES`."""
    freq = (np.asarray(y) > 0).mean(axis=1)
    tier = np.searchsorted(np.asarray(bounds, dtype=np.float64), freq, side="right") + 1
    return np.where(freq > 0, tier, 0)


def protection_warmup(
    lead_times: Sequence[np.ndarray] | np.ndarray, policy: str = "sQ", review_period: float = 1
) -> np.ndarray:
    """Warm-up per item: its protection interval in whole periods, ``ceil(mean lead time +
    review)`` with the review of :func:`~sparecast.inventory.policy.protection_review_periods`
    (1 for ``sQ``). int64[items]."""
    lt, counts = lead_time_matrix(lead_times, len(lead_times))
    total = np.nansum(np.maximum(lt, 1.0), axis=1)
    mean = np.where(counts > 0, total / np.maximum(counts, 1), 1.0)
    return np.ceil(mean + protection_review_periods(policy, review_period) - 1e-9).astype(np.int64)


@dataclass(frozen=True)
class CalibrationCurves:
    """What the calibration backtest of :func:`calibration_curves` measured: ``keys``
    float64[k, 2] (group: frequency group, or calibration group of
    :func:`sparecast.inventory.calibration.calibration_groups`; service target), ``factors``
    float64[F] (nominal target ``1 - (1 - target) * f``), ``achieved`` float64[k, F] (fill
    rate served / demanded over the key's measured items; NaN without demand), ``items``
    int64[k] (items of the key with demand in the measured holdout), ``demand`` float64[k]
    (their measured demand), ``members`` bool[k, items] and ``stock`` float64[k, F] (the key's
    average stock value on hand over the measured holdout at each factor; ``None`` when not
    measured, :func:`cost_aware_factors` needs it)."""

    keys: np.ndarray
    factors: np.ndarray
    achieved: np.ndarray
    items: np.ndarray
    demand: np.ndarray
    members: np.ndarray
    stock: np.ndarray | None = None


def nominal_targets(targets: np.ndarray | float, factor: np.ndarray | float) -> np.ndarray:
    """``1 - (1 - target) * factor``, kept inside ``[target / 2, 1 - 1e-6]``: the nominal
    fill-rate target of a calibration factor (below 1 raises the target, above 1 lowers it)."""
    t = np.asarray(targets, dtype=np.float64)
    return np.clip(1.0 - (1.0 - t) * np.asarray(factor, dtype=np.float64), t / 2.0, 1.0 - 1e-6)


def calibration_curves(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    targets: np.ndarray,
    order_quantity: np.ndarray,
    *,
    holdout: int,
    warmup: int | np.ndarray | None = None,
    policy: str = "sQ",
    review_period: int = 1,
    distribution: str = "auto",
    n_samples: int = 1000,
    groups: np.ndarray | None = None,
    factors: Sequence[float] = TARGET_FACTORS,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    seed: int = 0,
    adjust_ltd: Callable[[np.ndarray, LeadTimeDemand], LeadTimeDemand] | None = None,
    adjust_policy: Callable[
        [np.ndarray, LeadTimeDemand, PolicyResult, np.ndarray, np.ndarray],
        tuple[PolicyResult, np.ndarray],
    ]
    | None = None,
    unit_cost: np.ndarray | float = 1.0,
) -> CalibrationCurves:
    """The calibration backtest: policies set on ``y[:, :-holdout]`` at the nominal targets of
    every factor (:func:`nominal_targets`), simulated on the last ``holdout`` periods after
    ``warmup`` (default each item's protection interval), the achieved fill rate and the
    average stock value (``unit_cost`` per unit) per (group, target). See
    :func:`calibrate_targets`."""
    h = np.asarray(y, dtype=np.float64)
    n, n_t = h.shape
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
    rp = protection_review_periods(policy, review_period)
    warm = (
        protection_warmup(lead_times, policy, review_period)
        if warmup is None
        else np.broadcast_to(np.asarray(warmup, dtype=np.int64), (n,))
    )
    if not (0 < holdout < n_t and (warm < holdout).any()):
        raise ConfigError(
            f"calibration holdout ({holdout}) must exceed the warm-up ({int(warm.min())}) and "
            "leave history"
        )
    fit, check = h[:, : n_t - holdout], h[:, n_t - holdout :]
    stocked = np.maximum(fit, 0.0).sum(axis=1) > 0
    grp = frequency_groups(fit) if groups is None else np.asarray(groups)
    ltd = lead_time_demand(
        fit, lead_times, review_period=rp, method=distribution, n_samples=n_samples, seed=seed
    )
    if adjust_ltd is not None:
        ltd = adjust_ltd(fit, ltd)
    q = np.asarray(order_quantity, dtype=np.float64)
    keys = np.unique(np.stack([grp.astype(np.float64), tgt]), axis=1).T
    fs = np.asarray(factors, dtype=np.float64)
    achieved = np.full((len(keys), fs.size), np.nan)
    # Items without demand in the fit part are group 0 of frequency_groups: mixed with sparse
    # items (issue 12: 1,989 of a group's 2,216 items) their check-part demand, never stocked,
    # pushed the group's factor to its cap and sparse items to 99.5-99.9% nominal targets.
    members = np.array([(grp == g) & (tgt == t) for g, t in keys]).reshape(len(keys), n)
    cost_items = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    counted = np.zeros(len(keys), dtype=np.int64)
    demand = np.zeros(len(keys))
    stock = np.zeros((len(keys), fs.size))
    # every factor's policy on the same samples, sorted once (distribution_policies)
    nominals = [nominal_targets(tgt, f) for f in fs]
    policies = distribution_policies(ltd, nominals, q, target_type="fill_rate", policy=policy)
    for j, (nominal, pol) in enumerate(zip(nominals, policies, strict=True)):
        replenish = stocked
        if adjust_policy is not None:
            # the plan's rules at the nominal targets (the sparse rule follows the calibration)
            pol, replenish = adjust_policy(fit, ltd, pol, nominal, cost_items)
        sim = simulate_policy(
            check,
            pol.reorder_point,
            q,
            lead_times,
            policy=policy,
            review_period=max(review_period, 1),
            moq=moq,
            lot_size=lot_size,
            warmup=np.minimum(warm, check.shape[1]),
            seed=seed + 7,
            replenish=replenish,
            unit_cost=unit_cost,
        )
        dem = sim.per_item["demand"].to_numpy()
        fil = sim.per_item["filled"].to_numpy()
        val = sim.per_item["avg_on_hand_value"].to_numpy()
        for k, m in enumerate(members):
            total = dem[m].sum()
            achieved[k, j] = fil[m].sum() / total if total > 0 else np.nan
            counted[k] = int((dem[m] > 0).sum())
            demand[k] = float(total)
            stock[k, j] = float(np.nan_to_num(val[m]).sum())
    return CalibrationCurves(keys, fs, achieved, counted, demand, members, stock)


def _fill_at(fill: np.ndarray, log_fs: np.ndarray, log_f: float) -> float:
    """A key's (non-decreasing) fill curve at ``log f``, linear in ``log f`` between factors
    and flat beyond the grid (``log_fs`` decreasing)."""
    return float(np.interp(-log_f, -log_fs, fill))


def _factor_at(fill: np.ndarray, fs: np.ndarray, t: float) -> float:
    """The factor at which a non-decreasing fill curve reaches ``t`` (linear in ``log f``;
    the largest factor when even it overshoots, the smallest when none reaches it)."""
    if fill[0] >= t:
        return float(fs[0])
    if fill[-1] < t:
        return float(fs[-1])
    j = int(np.argmax(fill >= t))
    w = (t - fill[j - 1]) / (fill[j] - fill[j - 1]) if fill[j] > fill[j - 1] else 1.0
    return float(np.exp(np.log(fs[j - 1]) + w * (np.log(fs[j]) - np.log(fs[j - 1]))))


def solve_factors(
    curves: CalibrationCurves, shrinkage: float = CALIBRATION_SHRINKAGE
) -> np.ndarray:
    """The calibration factor per key of ``curves`` (float64[k]).

    1. Per key the shortfall ``e(f) = nominal(f) - achieved(f)`` (the achieved-fill error of
       each factor) is shrunk towards the pooled one of the keys with the same target and
       demand in the fit part (weighted by their holdout demand): ``(n e + shrinkage e_pool)
       / (n + shrinkage)`` with ``n`` the key's items with demand in the holdout, so a group of
       a few items does not decide its factor alone.
    2. The corrected achieved fill ``nominal - e`` is made non-decreasing in the nominal target
       and each key's factor is where it reaches the target (:func:`_factor_at`).
    3. Per target, the demand-weighted fill of its keys at these factors falls short of the
       target when some keys cannot reach it (lumpy groups saturate below it): every key's
       factor is then lowered by one common multiple, found by bisection, until the
       demand-weighted fill is the target (the goal is the fill over all items with history,
       as the decision backtest scores it).
    4. Factors are made monotone in the target within a group: a higher service target never
       gets a lower nominal target."""
    keys, fs = curves.keys, curves.factors
    fills = shrunk_fills(curves, shrinkage)
    log_fs = np.log(fs)
    out = _factors_at_targets(curves, fills)
    for t, live in _live_keys(curves):
        d_live = np.array([curves.demand[k] for k in live], dtype=np.float64)

        def agg(
            shift: float,
            live: list[int] = live,
            d_live: np.ndarray = d_live,
        ) -> float:
            f = [_fill_at(fills[k], log_fs, np.log(out[k]) + shift) for k in live]
            return float(np.dot(f, d_live) / d_live.sum())

        span = float(log_fs[0] - log_fs[-1])
        lo, hi = -span, 0.0  # agg is non-increasing in the shift (a larger factor fills less)
        # only upwards: a backtest on a shorter history than the plan's is optimistic about
        # what a group beside one that overshoots must give up (measured on carparts)
        if agg(0.0) < t - 1e-4 and agg(hi) <= t <= agg(lo):
            for _ in range(40):
                mid = (lo + hi) / 2.0
                lo, hi = (mid, hi) if agg(mid) >= t else (lo, mid)
            for j in live:
                out[j] = float(np.clip(np.exp(np.log(out[j]) + lo), fs[-1], fs[0]))
    return _monotone_in_target(keys, out)


def _factors_at_targets(curves: CalibrationCurves, fills: np.ndarray) -> np.ndarray:
    """float64[k]: each key's factor whose (shrunk) fill reaches the key's own target, the
    starting point of :func:`solve_factors` and :func:`cost_aware_factors`."""
    keys = curves.keys
    return np.array(
        [_factor_at(fills[k], curves.factors, float(keys[k, 1])) for k in range(len(keys))],
        dtype=np.float64,
    )


def _live_keys(curves: CalibrationCurves) -> Iterator[tuple[float, list[int]]]:
    """Per target of ``curves``: the target and its keys with history (group > 0) and demand
    in the measured holdout, the keys whose factors the calibration trades; targets without
    such keys are skipped."""
    keys = curves.keys
    for t in np.unique(keys[:, 1]) if len(keys) else []:
        rows = np.flatnonzero((keys[:, 1] == t) & (keys[:, 0] > 0))
        live = [int(k) for k in rows if curves.demand[k] > 0]
        if live:
            yield float(t), live


def shrunk_fills(curves: CalibrationCurves, shrinkage: float = CALIBRATION_SHRINKAGE) -> np.ndarray:
    """float64[k, F]: each key's achieved fill per factor as :func:`solve_factors` reads it:
    its shortfall ``nominal - achieved`` shrunk towards the pooled one of the keys with the
    same target and demand in the fit part (weighted by their holdout demand) by
    ``shrinkage`` items, then made non-decreasing in the nominal target."""
    keys, fs, ach = curves.keys, curves.factors, curves.achieved
    k_n = len(keys)
    nom = nominal_targets(keys[:, 1][:, None], fs[None, :])
    err = nom - ach
    fills = np.zeros((k_n, fs.size))
    for t in np.unique(keys[:, 1]) if k_n else []:
        rows = np.flatnonzero((keys[:, 1] == t) & (keys[:, 0] > 0))
        dem = np.nan_to_num(curves.demand[rows].astype(np.float64))
        ok = np.isfinite(err[rows]).all(axis=1) & (dem > 0)
        pooled = (
            (err[rows][ok] * dem[ok, None]).sum(axis=0) / dem[ok].sum()
            if ok.any()
            else np.zeros(fs.size)
        )
        for k in np.flatnonzero(keys[:, 1] == t).tolist():
            n_k = float(curves.items[k])
            e_k = np.where(np.isfinite(err[k]), err[k], pooled)
            e = (n_k * e_k + shrinkage * pooled) / (n_k + shrinkage) if keys[k, 0] > 0 else e_k
            fills[k] = np.maximum.accumulate(nom[k] - e)
    return fills


def _monotone_in_target(keys: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Factors made monotone in the target within a group: a higher service target never gets
    a lower nominal target (a noisy backtest must not plan 95% below 90%)."""
    out = out.copy()
    for g in np.unique(keys[:, 0]) if len(keys) else []:
        rows = np.flatnonzero(keys[:, 0] == g)
        rows = rows[np.argsort(keys[rows, 1])]
        nominal = np.maximum.accumulate(nominal_targets(keys[rows, 1], out[rows]))
        out[rows] = (1.0 - nominal) / np.maximum(1.0 - keys[rows, 1], 1e-12)
    return out


DEFAULT_FLOOR_GAP = 0.1
""":func:`cost_aware_factors`: no frequency group with history is planned for a fill rate
below the target minus this gap (``inventory.calibration_floor_gap``)."""


def cost_aware_factors(
    curves: CalibrationCurves,
    floor_gap: float = DEFAULT_FLOOR_GAP,
    shrinkage: float = CALIBRATION_SHRINKAGE,
    margin: Mapping[float, float] | None = None,
) -> np.ndarray:
    """The calibration factor per key of ``curves`` (float64[k]) that reaches each target's
    demand-weighted fill over the keys with history at the least stock value. ``margin`` (per
    target, default none): fill the target's keys aim at above it in the backtest (``target +
    margin``, at most ``1 - 1e-6``; the floor stays ``target - floor_gap``): the shortfall out
    of sample that :func:`sparecast.inventory.calibration.calibrated_targets` measures on an
    earlier window.

    Per target: the fill curves of :func:`shrunk_fills` and the stock value curves
    (``curves.stock``, made non-decreasing in the nominal target) of its keys with demand in the
    fit part and in the holdout; every key starts at the factor where it fills ``target -
    floor_gap`` (its floor; the smallest factor when it cannot), and the keys of one frequency
    group (its value classes, keys with the same whole part,
    :func:`sparecast.inventory.calibration.calibration_groups`) share one floor: they start at
    their lowest nominal targets and are raised by the same marginal analysis until the group
    fills it (a dear class need not fill it alone); then, by marginal analysis, the
    key whose next step down the factor grid (to any smaller factor: the steepest chord, so a
    flat stretch before a steep one is crossed) buys the most demand-weighted fill per unit of
    stock value is raised, until the aggregate fill reaches the target (the last step is cut,
    linear in ``log f``, to land on it) or no key can gain. A key that overshoots at its floor
    stays there; keys without demand (group 0, no holdout demand) keep the factor that reaches
    the target. Factors are then made monotone in the target within a group.

    Why: solving each group to the target (:func:`solve_factors`) buys fill where it costs most
    (sparse groups, whose fill takes a lump of stock per item); the aggregate goal over items
    with history is reached more cheaply in the groups where a point of fill costs least. The
    floor keeps sparse items from being abandoned."""
    if curves.stock is None:
        raise ConfigError("cost_aware_factors needs the stock value curves (curves.stock)")
    if not 0.0 <= floor_gap < 1.0:
        raise ConfigError(f"floor_gap must be in [0, 1), got {floor_gap}")
    keys, fs = curves.keys, curves.factors
    log_fs = np.log(fs)
    fills = shrunk_fills(curves, shrinkage)
    stock = np.maximum.accumulate(np.nan_to_num(curves.stock.astype(np.float64)), axis=1)
    out = _factors_at_targets(curves, fills)
    for t, live in _live_keys(curves):
        w = np.array([curves.demand[k] for k in live], dtype=np.float64)
        w = w / w.sum()
        pos = np.array([np.log(_factor_at(fills[k], fs, float(t) - floor_gap)) for k in live])

        def fill(i: int, x: float, live: list[int] = live) -> float:
            return _fill_at(fills[live[i]], log_fs, x)

        def value(i: int, x: float, live: list[int] = live) -> float:
            return _fill_at(stock[live[i]], log_fs, x)

        def raise_until(
            members: list[int],
            aim: float,
            fill: Callable[[int, float], float] = fill,
            value: Callable[[int, float], float] = value,
            pos: np.ndarray = pos,
            w: np.ndarray = w,
        ) -> None:
            """Marginal analysis over ``members`` (indices into ``live``): the member whose
            next step buys the most weighted fill per unit of stock value is raised until
            their weighted fill reaches ``aim`` (the last step cut to land on it) or none
            can gain."""
            total = float(sum(w[i] * fill(i, pos[i]) for i in members))
            while total < aim - 1e-9:
                best: tuple[float, int, float] | None = None
                for i in members:
                    f0, v0 = fill(i, pos[i]), value(i, pos[i])
                    for x in log_fs[log_fs < pos[i] - 1e-12]:
                        gain = w[i] * (fill(i, float(x)) - f0)
                        if gain <= 1e-12:
                            continue
                        cost = value(i, float(x)) - v0
                        ratio = np.inf if cost <= 1e-12 else gain / cost
                        if best is None or ratio > best[0]:
                            best = (ratio, i, float(x))
                if best is None:
                    return
                _, i, x = best
                gain = w[i] * (fill(i, x) - fill(i, pos[i]))
                if total + gain >= aim:
                    # the last step cut to land on the aim (fill non-increasing in log f)
                    lo, hi = x, float(pos[i])
                    base = total - w[i] * fill(i, pos[i])
                    for _ in range(50):
                        mid = (lo + hi) / 2.0
                        lo, hi = (mid, hi) if base + w[i] * fill(i, mid) >= aim else (lo, mid)
                    pos[i] = lo
                    return
                total += gain
                pos[i] = x

        # the floor per frequency group (the whole part of a key: value classes of one
        # group share it): a group of several keys starts at their lowest nominal targets and
        # reaches its floor at the least stock value among them
        freq = np.floor(keys[live, 0])
        for g in np.unique(freq):
            members = [int(i) for i in np.flatnonzero(freq == g)]
            if len(members) > 1:
                pos[members] = log_fs[0]
                raise_until(members, (float(t) - floor_gap) * float(w[members].sum()))
        aim = min(t + max(float((margin or {}).get(t, 0.0)), 0.0), 1.0 - 1e-6)
        raise_until(list(range(len(live))), aim)
        for i, k in enumerate(live):
            out[k] = float(np.clip(np.exp(pos[i]), fs[-1], fs[0]))
    return _monotone_in_target(keys, out)


def calibrated_outcome(
    curves: CalibrationCurves,
    factors: np.ndarray,
    shrinkage: float = CALIBRATION_SHRINKAGE,
) -> dict[float, tuple[float, float]]:
    """Per target of ``curves``: the fill rate over its keys with history and holdout demand
    (weighted by that demand, on the fill curves the calibration reads, :func:`shrunk_fills`)
    and their stock value (``curves.stock``, NaN when not measured) at ``factors`` (one per
    key), linear in ``log f`` between the grid's factors: what the calibration backtest
    predicts for the factors it chose (compared across level sigmas by
    :func:`sparecast.inventory.calibration.pick_level_sigma`)."""
    log_fs = np.log(curves.factors)
    fills = shrunk_fills(curves, shrinkage)
    stock = (
        np.maximum.accumulate(np.nan_to_num(curves.stock.astype(np.float64)), axis=1)
        if curves.stock is not None
        else None
    )
    out: dict[float, tuple[float, float]] = {}
    for t, live in _live_keys(curves):
        w = np.array([curves.demand[k] for k in live], dtype=np.float64)
        x = [float(np.log(factors[k])) for k in live]
        fill = [_fill_at(fills[k], log_fs, xi) for k, xi in zip(live, x, strict=True)]
        value = (
            float(sum(_fill_at(stock[k], log_fs, xi) for k, xi in zip(live, x, strict=True)))
            if stock is not None
            else float("nan")
        )
        out[t] = (float(np.dot(fill, w) / w.sum()), value)
    return out


def calibrate_targets(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    targets: np.ndarray,
    order_quantity: np.ndarray,
    *,
    holdout: int,
    warmup: int | np.ndarray | None = None,
    policy: str = "sQ",
    review_period: int = 1,
    distribution: str = "auto",
    n_samples: int = 1000,
    groups: np.ndarray | None = None,
    factors: Sequence[float] = TARGET_FACTORS,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    seed: int = 0,
    shrinkage: float = CALIBRATION_SHRINKAGE,
    adjust_ltd: Callable[[np.ndarray, LeadTimeDemand], LeadTimeDemand] | None = None,
    adjust_policy: Callable[
        [np.ndarray, LeadTimeDemand, PolicyResult, np.ndarray, np.ndarray],
        tuple[PolicyResult, np.ndarray],
    ]
    | None = None,
) -> np.ndarray:
    """Nominal fill-rate targets that reach ``targets`` out of sample, from a backtest on ``y``.

    Policies are set on ``y[:, :-holdout]`` with nominal targets ``1 - (1 - target) * f`` for
    each factor ``f`` (:data:`TARGET_FACTORS`: from 2, a nominal target below the service
    target for groups that overshoot, to 0.01) and simulated on the last ``holdout`` periods
    (:func:`calibration_curves`); per group (default: :func:`frequency_groups`) and target
    value :func:`solve_factors` finds the factor at which the simulated fill rate (served /
    demanded over the group, its shortfall shrunk towards the pooled one by ``shrinkage``
    items) reaches the target. ``warmup`` (default: each item's protection interval,
    :func:`protection_warmup`) is not measured; items whose warm-up fills the holdout do not
    count. Items without demand in the fit part are their own group (:func:`frequency_groups`)
    and are not replenished in the simulation, as the plan orders nothing for them.

    Why: the policy is computed from estimated parameters, and a fill rate is concave in them
    near high targets, so estimation error alone lowers the achieved fill rate; this measures
    that loss on the items' own data before it happens. Returns float64[items].

    ``adjust_ltd(fit, ltd)`` and ``adjust_policy(fit, ltd, policy, nominal, unit_cost) ->
    (policy, replenished)``: the plan's rules (level shift; sparse, obsolescence) applied at each
    factor's nominal targets, so the calibration backtest sets the policies as the plan does
    (:func:`sparecast.inventory.decide.plan_policy` passes them); default: the distribution
    policy, every item with demand replenished.
    """
    curves = calibration_curves(
        y,
        lead_times,
        targets,
        order_quantity,
        holdout=holdout,
        warmup=warmup,
        policy=policy,
        review_period=review_period,
        distribution=distribution,
        n_samples=n_samples,
        groups=groups,
        factors=factors,
        moq=moq,
        lot_size=lot_size,
        seed=seed,
        adjust_ltd=adjust_ltd,
        adjust_policy=adjust_policy,
    )
    return nominal_targets_per_item(curves, np.asarray(targets, dtype=np.float64), shrinkage)


def nominal_targets_per_item(
    curves: CalibrationCurves, targets: np.ndarray, shrinkage: float = CALIBRATION_SHRINKAGE
) -> np.ndarray:
    """float64[items]: each item's nominal target from the factors of :func:`solve_factors`."""
    n = curves.members.shape[1]
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,))
    factor = np.ones(n)
    for k, f in enumerate(solve_factors(curves, shrinkage)):
        factor[curves.members[k]] = f
    return nominal_targets(tgt, factor)


def compare_policies(
    y: np.ndarray,
    split: int,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    targets: np.ndarray | float,
    *,
    target_type: str = "fill_rate",
    policy: str = "sQ",
    review_period: int = 1,
    order_cover_periods: float = 30.0,
    distribution: str = "auto",
    n_samples: int = 1000,
    unit_cost: np.ndarray | float = 1.0,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    warmup: int | np.ndarray | None = None,
    calibrate: bool = True,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[str, PolicyResult]]:
    """(a) textbook normal on SBA vs (b) distribution-based policy, set on ``y[:, :split]`` and
    simulated on ``y[:, split:]`` (no look-ahead), with the same Q, lead times and targets.

    With ``calibrate`` (fill-rate targets) a third policy, ``distribution_calibrated``, is (b)
    at the nominal targets of :func:`calibrate_targets` on the training part, its last third as
    the holdout (a shorter fit part overstates the estimation error of the full training part;
    measured: the last half overshot a 90% target by 3.5 points on the demo, a third by 0.7).

    ``warmup`` (default: each item's protection interval, as in the calibration) is not
    measured; items without demand in the training part are not replenished (they start at 0).
    Returns one row of totals per policy (``simulate_policy`` totals plus the fill rate over
    items with demand in the training part and the share of test demand on items without) and
    the policies by name. :func:`sparecast.inventory.decisions.evaluate_plan` is the full
    decision backtest (per item, per group, the empirical baseline, the plan's calibration).
    """
    h = np.asarray(y, dtype=np.float64)
    if not 0 < split < h.shape[1]:
        raise ConfigError(f"split must be inside the history (1..{h.shape[1] - 1}), got {split}")
    train, test = h[:, :split], h[:, split:]
    n = h.shape[0]
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
    warm = (
        protection_warmup(lead_times, policy, review_period)
        if warmup is None
        else np.broadcast_to(np.asarray(warmup, dtype=np.int64), (n,))
    )
    lt, counts = lead_time_matrix(lead_times, n)
    lt_mean = np.nanmean(lt, axis=1)
    lt_std = np.where(counts > 1, np.nanstd(lt, axis=1, ddof=0), 0.0)
    rp = protection_review_periods(policy, review_period)
    mean_rate = np.maximum(train, 0.0).mean(axis=1)
    q = order_quantity(mean_rate, order_cover_periods, moq, lot_size)
    sba_rate, sba_rmse = sba_one_step(train)
    pol_a = normal_policy(
        sba_rate,
        sba_rmse,
        lt_mean,
        lt_std,
        tgt,
        q,
        review_period=rp,
        target_type=target_type,
        policy=policy,
    )
    ltd = lead_time_demand(
        train, lead_times, review_period=rp, method=distribution, n_samples=n_samples, seed=seed
    )
    pol_b = distribution_policy(ltd, tgt, q, target_type=target_type, policy=policy)
    policies = {"normal": pol_a, "distribution": pol_b}
    trained = np.maximum(train, 0.0).sum(axis=1) > 0
    if calibrate and target_type == "fill_rate":
        nominal = calibrate_targets(
            train,
            lead_times,
            tgt,
            q,
            holdout=min(train.shape[1] // 3, h.shape[1] - split),
            warmup=warm,
            policy=policy,
            review_period=review_period,
            distribution=distribution,
            n_samples=n_samples,
            moq=moq,
            lot_size=lot_size,
            seed=seed,
        )
        policies["distribution_calibrated"] = distribution_policy(
            ltd, nominal, q, target_type=target_type, policy=policy
        )
    rows: list[dict[str, Any]] = []
    for name, pol in policies.items():
        sim = simulate_policy(
            test,
            pol.reorder_point,
            pol.order_quantity,
            lead_times,
            policy=policy,
            review_period=max(review_period, 1),
            moq=moq,
            lot_size=lot_size,
            unit_cost=unit_cost,
            warmup=np.minimum(warm, test.shape[1]),
            seed=seed + 1,
            replenish=trained,
        )
        dem = sim.per_item["demand"].to_numpy()
        fil = sim.per_item["filled"].to_numpy()
        seen = dem[trained].sum()
        rows.append(
            {
                "policy": name,
                **sim.totals,
                "fill_rate_items_with_history": float(fil[trained].sum() / seen)
                if seen
                else np.nan,
                "demand_share_without_history": float(1.0 - seen / dem.sum())
                if dem.sum()
                else np.nan,
            }
        )
    return pl.DataFrame(rows), policies
