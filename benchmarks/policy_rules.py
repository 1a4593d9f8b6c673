"""Measure the policy rules of issue 12 on synthetic weekly spare parts (no data files needed).

- Level shifts: items whose demand grows, decays or stays level; policies set on the first 100
  weeks (lead time 8 weeks, (s, nQ), 95% fill target) and replayed with ``simulate_policy`` on
  the next 60 after a 17-week warm-up, with the lead-time demand at the history's level
  (``history``), moved to the last 26 weeks' rate (``recent``) or to a TSB forecast's rate
  (``forecast``). Printed per group: fill rate and average stock value.
- Sparse items (demand in about 1.5% of weeks, lumps of 1-12): the textbook and the
  fill-rate policy against the sparse rule (``sparse_reorder_point``), stock value and fill.
- Aggregate service (``optimize_service``) against per-item targets on the demo (daily, lead
  times from its purchase orders, unit costs; policies on the first half, replayed on the
  second after 60 warm-up days): per item target, the achieved aggregate fill rate and average
  stock value of the per-item policy, and the stock value the optimiser needs for the same
  achieved fill (interpolated on its curve over aggregate targets 0.80 .. 0.999).

    PYTHONPATH=src python benchmarks/policy_rules.py [--items 300] [--demo-items 2016] [--seed 0]

``--scale-items N`` only times ``optimize_service`` against the per-item policy on N synthetic
items (500 Poisson samples each, lead time 8) and prints their stock values at the same
predicted aggregate fill rate.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np

from sparecast.data.demo import generate_demo_erp
from sparecast.inventory.leadtime import lead_time_stats
from sparecast.inventory.optimize import optimize_service
from sparecast.inventory.policy import (
    distribution_policy,
    fill_rate_from_samples,
    level_factor,
    normal_policy,
    order_quantity,
    reorder_point_from_samples,
    rescale_samples,
    sba_one_step,
    sparse_reorder_point,
)
from sparecast.inventory.simulate import simulate_policy
from sparecast.methods.distributions import LeadTimeDemand, lead_time_demand
from sparecast.methods.intermittent import tsb

FIT, TEST, WARMUP, LEAD = 100, 77, 17, 8.0


def _shifted_panel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-sized intermittent demand with a level that grows x3, decays to 0.3 or stays."""
    t = np.arange(FIT + TEST)
    group = np.repeat(np.array([0, 1, 2]), -(-n // 3))[:n]  # 0 level, 1 growing, 2 decaying
    base = rng.uniform(0.3, 3.0, n)
    ramp = np.clip((t - 40) / 100.0, 0.0, None)  # shift from week 40 on
    end = np.array([1.0, 3.0, 0.3])[group]
    rate = base[:, None] * (1.0 + (end[:, None] - 1.0) * np.minimum(ramp, 1.0))
    p = np.minimum(rate / 2.0, 0.9)
    sizes = 1 + rng.poisson(1.0, (n, t.size))
    y = np.where(rng.random((n, t.size)) < p, sizes, 0).astype(np.float64)
    return y, group


def _with_samples(ltd: LeadTimeDemand, factor: np.ndarray, seed: int) -> LeadTimeDemand:
    return LeadTimeDemand(
        samples=rescale_samples(ltd.samples, factor, ltd.params.integer, seed),
        lead_samples=rescale_samples(ltd.lead_samples, factor, ltd.params.integer, seed),
        method=ltd.method,
        review_period=ltd.review_period,
        mean_lead_time=ltd.mean_lead_time,
        params=ltd.params,
        level_alpha=ltd.level_alpha,
    )


def _replay(y: np.ndarray, ltd: LeadTimeDemand, q: np.ndarray, s: np.ndarray, cost: np.ndarray):
    return simulate_policy(
        y[:, FIT:],
        s,
        q,
        [np.array([LEAD])] * y.shape[0],
        unit_cost=cost,
        warmup=WARMUP,
        initial_inventory=s + q,
    ).per_item


def level_shifts(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, group = _shifted_panel(n, rng)
    cost = rng.uniform(5, 50, n)
    fit = y[:, :FIT]
    ltd = lead_time_demand(fit, [np.array([LEAD])] * n, review_period=1.0, seed=seed)
    per_period = ltd.mean / (LEAD + 1.0)
    rates = {
        "history": per_period,
        "recent": per_period * level_factor(fit, per_period, 26),
        "forecast": tsb(fit, 1)[:, 0],
    }
    print("level shifts: 95% fill target, (s, nQ), lead time 8 weeks, 60 weeks replayed")
    print(f"{'level':10s}{'group':>11s}{'items':>7s}{'fill':>8s}{'stock value':>13s}")
    for name, rate in rates.items():
        factor = np.where(per_period > 0, rate / np.where(per_period > 0, per_period, 1), 1.0)
        moved = _with_samples(ltd, factor, seed) if name != "history" else ltd
        q = order_quantity(rate, 30 / 7)
        pol = distribution_policy(moved, np.full(n, 0.95), q)
        res = _replay(y, moved, q, pol.reorder_point, cost)
        for g, label in enumerate(("level", "growing", "decaying")):
            part = res.filter(np.asarray(group == g))
            fill = part["filled"].sum() / max(part["demand"].sum(), 1e-12)
            print(
                f"{name:10s}{label:>11s}{part.height:7d}{fill:8.1%}"
                f"{part['avg_on_hand_value'].sum():13,.0f}"
            )


def sparse(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    n_t = FIT + TEST
    y = np.where(rng.random((n, n_t)) < 0.015, rng.integers(1, 13, (n, n_t)), 0).astype(float)
    cost = rng.uniform(5, 50, n)
    lead = 16.0
    ltd = lead_time_demand(y[:, :FIT], [np.array([lead])] * n, review_period=1.0, seed=seed)
    q = order_quantity(ltd.mean / (lead + 1), 30 / 7)
    pol = distribution_policy(ltd, np.full(n, 0.90), q)
    d, sd = sba_one_step(y[:, :FIT])
    textbook = normal_policy(
        d, sd, np.full(n, lead), np.zeros(n), np.full(n, 0.90), q, review_period=1.0
    )
    rules = {
        "textbook": textbook.reorder_point,
        "fill rate": pol.reorder_point,
        "sparse": sparse_reorder_point(ltd.samples, np.full(n, 0.90), pol.reorder_point),
    }
    print("\nsparse items: demand in 1.5% of weeks, lumps 1-12, lead time 16 weeks, 90% target")
    print(f"{'rule':10s}{'items':>7s}{'fill':>8s}{'stock value':>13s}{'no stock':>10s}")
    for name, s in rules.items():
        res = simulate_policy(
            y[:, FIT:],
            s,
            q,
            [np.array([lead])] * n,
            unit_cost=cost,
            warmup=WARMUP,
            initial_inventory=np.maximum(s + q, 0.0),
        ).per_item
        fill = res["filled"].sum() / max(res["demand"].sum(), 1e-12)
        print(
            f"{name:10s}{n:7d}{fill:8.1%}{res['avg_on_hand_value'].sum():13,.0f}"
            f"{int((s < 0).sum()):10d}"
        )


def _demo(n_items: int, n_days: int, seed: int) -> tuple[np.ndarray, list, np.ndarray]:
    end = date(2026, 10, 31)
    erp = generate_demo_erp(n_items=n_items, n_days=n_days, seed=seed, end_date=end)
    items = erp["items"]
    ids = items["item_id"].to_list()
    index = {item: i for i, item in enumerate(ids)}
    dem = erp["demand"]
    start = np.datetime64(end, "D") - (n_days - 1)
    day = (dem["date"].to_numpy().astype("datetime64[D]") - start).astype(np.int64)
    row = np.array([index[i] for i in dem["item_id"].to_list()])
    y = np.zeros((len(ids), n_days))
    np.add.at(y, (row, day), dem["quantity"].to_numpy())
    lt = lead_time_stats(
        erp["purchase_orders"], erp["receipts"], suppliers=erp["suppliers"], items=items, today=end
    )
    return y, lt.samples_for(ids), items["unit_cost"].to_numpy().astype(np.float64)


def aggregate_vs_item(n_items: int, seed: int) -> None:
    n_days, warmup = 730, 60
    y, lead, cost = _demo(n_items, n_days, seed)
    split = n_days // 2
    fit, n = y[:, :split], y.shape[0]
    ltd = lead_time_demand(fit, lead, review_period=1.0, seed=seed)
    rate = fit.mean(axis=1)
    q = order_quantity(rate, 30.0)
    w = ltd.mean / np.maximum(ltd.mean_lead_time + 1.0, 1e-12)

    def replay(s: np.ndarray) -> tuple[float, float]:
        res = simulate_policy(
            y[:, split:],
            s,
            q,
            lead,
            unit_cost=cost,
            warmup=warmup,
            initial_inventory=np.maximum(s + q, 0.0),
        ).totals
        return res["fill_rate"], res["avg_on_hand_value"]

    curve = []
    for t in (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999):
        opt = optimize_service(
            ltd.samples, q, w, cost, t, lead_samples=ltd.lead_samples, integer=ltd.params.integer
        )
        curve.append((*replay(opt.reorder_point), t))
    curve.sort()
    fills = np.array([c[0] for c in curve])
    values = np.array([c[1] for c in curve])
    print(f"\naggregate vs per-item targets: demo {n} items, {split} days fit, {split} replayed")
    print(
        "optimiser curve (aggregate target: achieved fill, stock value): "
        + ", ".join(
            f"{c[2]:.3f}: {c[0]:.1%} {c[1]:,.0f}" for c in sorted(curve, key=lambda c: c[2])
        )
    )
    print(f"{'item target':>12s}{'fill':>8s}{'value':>12s}{'aggregate value':>17s}{'saving':>8s}")
    for t in (0.9, 0.95, 0.98):
        pol = distribution_policy(ltd, np.full(n, t), q)
        fill, value = replay(pol.reorder_point)
        if fills.min() <= fill <= fills.max():
            agg = float(np.interp(fill, fills, values))
            saving = f"{1 - agg / value:8.1%}"
            agg_s = f"{agg:17,.0f}"
        else:
            agg_s, saving = f"{'not reached':>17s}", f"{'':8s}"
        print(f"{t:12.2f}{fill:8.1%}{value:12,.0f}{agg_s}{saving}")


def time_scale(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, lead_periods = 500, 8
    rate = rng.gamma(0.5, 1.0, n)
    lead = rng.poisson(rate[:, None] * lead_periods, (n, m)).astype(np.float32)
    tot = lead + rng.poisson(rate[:, None], (n, m)).astype(np.float32)
    q = np.maximum(np.ceil(rate * 4), 1.0)
    cost = rng.lognormal(2.0, 1.2, n)
    t0 = time.perf_counter()
    s_item = reorder_point_from_samples(tot, np.full(n, 0.95), q, lead_samples=lead)
    f_item = fill_rate_from_samples(tot, s_item, q, lead_samples=lead)
    t1 = time.perf_counter()
    agg = float((rate * f_item).sum() / rate.sum())
    res = optimize_service(tot, q, rate, cost, agg, lead_samples=lead)
    t2 = time.perf_counter()
    print(
        f"{n:,} items x {m} samples: per-item 95% policy {t1 - t0:.1f}s, "
        f"optimize_service {t2 - t1:.1f}s"
    )
    print(
        f"predicted aggregate fill {agg:.4f} (optimiser {res.aggregate_fill_rate:.4f}); "
        f"value of the reorder points: per item {float((cost * s_item).sum()):,.0f}, "
        f"optimiser {float((cost * res.reorder_point).sum()):,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--demo-items", type=int, default=2016)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale-items", type=int, default=0)
    args = parser.parse_args()
    if args.scale_items:
        time_scale(args.scale_items, args.seed)
        return
    level_shifts(args.items, args.seed)
    sparse(args.items, args.seed)
    aggregate_vs_item(args.demo_items, args.seed)


if __name__ == "__main__":
    main()
