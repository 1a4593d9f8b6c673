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
- the simulation starts with ``S`` on hand (default) and nothing on order; the first ``warmup``
  periods are simulated but not measured.

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from sparecast.errors import ConfigError, DataValidationError
from sparecast.inventory.policy import (
    PolicyResult,
    distribution_policy,
    normal_policy,
    order_quantity,
    round_order_quantity,
    sba_one_step,
)
from sparecast.methods.distributions import lead_time_demand, lead_time_matrix

__all__ = ["SimulationResult", "simulate_policy", "compare_policies"]


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
    warmup: int = 0,
    seed: int = 0,
    item_ids: Sequence[str] | None = None,
) -> SimulationResult:
    """Simulate ``demand[items, periods]`` under an (s, Q) or (R, s, S) policy with backorders.

    ``reorder_point`` s and ``order_quantity`` Q per item (``order_up_to`` S defaults to s + Q);
    ``lead_times`` per-item samples in periods (as for ``lead_time_demand``).
    """
    d_all = np.maximum(np.asarray(demand, dtype=np.float64), 0.0)
    if d_all.ndim != 2:
        raise DataValidationError(f"demand must be [items, periods], got shape {d_all.shape}")
    n, n_t = d_all.shape
    if policy not in ("sQ", "RsS"):
        raise ConfigError(f"policy must be 'sQ' or 'RsS', got {policy!r}")
    if review_period < 1:
        raise ConfigError(f"review_period must be >= 1 period, got {review_period}")
    if not 0 <= warmup < n_t:
        raise ConfigError(f"warmup must be in [0, {n_t}) periods, got {warmup}")
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

    net = big_s.copy() if initial_inventory is None else np.asarray(initial_inventory, float)
    net = net.astype(np.float64).copy()
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
        measure = t >= warmup
        d = d_all[:, t]
        filled = np.minimum(d, np.maximum(net, 0.0))
        short = d - filled > 1e-9
        net -= d
        short_in_cycle |= short
        arr = arrivals[:, t]
        got = arr > 0
        net += arr
        on_order -= arr
        if measure:
            demand_sum += d
            filled_sum += filled
            demand_days += d > 0
            short_demand_days += short
            stockout_days += net < -1e-9
            on_hand_sum += np.maximum(net, 0.0)
            cycles += got
            short_cycles += got & short_in_cycle
        short_in_cycle &= ~got
        if policy == "sQ" or t % review_period == 0:
            ip = net + on_order
            need = ip <= s + 1e-9
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
                if measure:
                    n_orders[idx] += 1
    n_meas = n_t - warmup
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.where(demand_sum > 0, filled_sum / demand_sum, np.nan)
        csl = np.where(cycles > 0, 1.0 - short_cycles / cycles, np.nan)
    avg_on_hand = on_hand_sum / n_meas
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
        },
        nan_to_null=True,
    )
    has = demand_sum > 0
    totals = {
        "items": float(n),
        "periods_measured": float(n_meas),
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
    warmup: int = 0,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[str, PolicyResult]]:
    """(a) textbook normal on SBA vs (b) distribution-based policy, set on ``y[:, :split]`` and
    simulated on ``y[:, split:]`` (no look-ahead), with the same Q, lead times and targets.

    Returns one row of totals per policy (``normal``, ``distribution``) and the two policies.
    """
    h = np.asarray(y, dtype=np.float64)
    if not 0 < split < h.shape[1]:
        raise ConfigError(f"split must be inside the history (1..{h.shape[1] - 1}), got {split}")
    train, test = h[:, :split], h[:, split:]
    n = h.shape[0]
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
    lt, counts = lead_time_matrix(lead_times, n)
    lt_mean = np.nanmean(lt, axis=1)
    lt_std = np.where(counts > 1, np.nanstd(lt, axis=1, ddof=0), 0.0)
    # protection interval: lead time + review period (sQ is reviewed every period: R = 1)
    rp = review_period if policy == "RsS" else 1
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
    rows: list[dict[str, Any]] = []
    for name, pol in (("normal", pol_a), ("distribution", pol_b)):
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
            warmup=warmup,
            seed=seed + 1,
        )
        rows.append({"policy": name, **sim.totals})
    return pl.DataFrame(rows), {"normal": pol_a, "distribution": pol_b}
