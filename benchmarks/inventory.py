"""Inventory benchmark: (a) textbook normal safety stock on SBA vs (b) distribution-based policy.

For each dataset and fill-rate target (90/95/98%), both policies are set on the first part of
the history and simulated on the rest (``sparecast.inventory.simulate.compare_policies``: same
order quantity Q, same lead-time samples, backorders, a warm-up that is not measured). Printed per
target and policy: the achieved fill rate (served / demanded over all items; over the items with
demand in the training part; the mean of the items' fill rates), the stockout rate (demand
periods not fully served / demand periods), the cycle service level and the average inventory
value, against (a)'s at the same target and against the value (a) needs for the same achieved
fill rate (interpolated on (a)'s curve over nominal targets 50% .. 99.99%; "never reaches it"
when no nominal target gets (a) there).

Three policies: (a) the textbook normal approximation on SBA, (b) the distribution-based policy
at the target, (b) calibrated: (b) at the nominal targets ``calibrate_targets`` finds on the
training part.

Datasets:

- demo: ``generate_demo_erp`` (daily, default 2,016 items x 730 days); lead times per item from
  its purchase orders and receipts (``inventory.leadtime.lead_time_stats``); policies on the first
  365 days, simulated on the last 365 with 60 warm-up days; Q = 30 days of mean demand; unit costs
  from the items table.
- carparts (``../shared/data/carparts/carparts.csv``, monthly, 2,674 series x 51 months): it has
  no purchase orders, so lead times are synthetic and simulated in months (no invented daily
  pattern): each item gets a base lead time of 1, 2 or 3 months (probabilities 0.5/0.3/0.2) and
  its 12 lead-time samples are the base, one month late with probability 0.25; the simulation
  draws from the same samples. Policies on the first 27 months, simulated on the last 24 with 3
  warm-up months; Q = 1 month of mean demand; no unit costs, so the value is in units.

Usage: ``python benchmarks/inventory.py [--items 2016] [--days 730] [--carparts PATH]
[--targets 0.90,0.95,0.98] [--policy sQ|RsS] [--distribution auto] [--n-samples 1000]
[--no-calibration] [--quantiles]``; ``--quantiles`` also prints the coverage and pinball loss of
the per-period and lead-time quantiles over 3 rolling origins; ``--scale-items N`` only times
``lead_time_demand`` and ``distribution_policy`` on a synthetic panel of N items x ``--days``.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.data.demo import generate_demo_erp
from sparecast.data.panel import DemandPanel
from sparecast.evaluate.calibration import rolling_calibration
from sparecast.inventory.leadtime import lead_time_stats
from sparecast.inventory.policy import (
    normal_policy,
    order_quantity,
    protection_review_periods,
    sba_one_step,
)
from sparecast.inventory.simulate import compare_policies, simulate_policy
from sparecast.methods.distributions import lead_time_matrix

LABELS = {
    "normal": "(a) normal on SBA",
    "distribution": "(b) distribution",
    "distribution_calibrated": "(b) calibrated",
}
CARPARTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "carparts" / "carparts.csv"


def demo_dataset(n_items: int, n_days: int, seed: int) -> dict:
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
        erp["purchase_orders"],
        erp["receipts"],
        suppliers=erp["suppliers"],
        items=items,
        today=end,
    )
    return {
        "name": f"demo {len(ids):,} x {n_days} days",
        "y": y,
        "lead_times": lt.samples_for(ids),
        "unit_cost": items["unit_cost"].to_numpy(),
        "split": n_days // 2,
        "warmup": 60,
        "cover": 30.0,
        "review": 7,
    }


def carparts_dataset(path: Path, seed: int) -> dict:
    df = pl.read_csv(path, try_parse_dates=True)
    panel = DemandPanel.from_long(df)
    y = np.asarray(panel.y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    base = rng.choice([1.0, 2.0, 3.0], p=[0.5, 0.3, 0.2], size=y.shape[0])
    late = rng.random((y.shape[0], 12)) < 0.25
    lead = base[:, None] + late
    return {
        "name": f"carparts {y.shape[0]:,} x {y.shape[1]} months",
        "y": y,
        "lead_times": lead,
        "unit_cost": 1.0,
        "split": 27,
        "warmup": 3,
        "cover": 1.0,
        "review": 1,
    }


# nominal targets of the textbook policy for its service/inventory curve
A_LADDER = (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9999)


def textbook_curve(ds: dict, args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(a)'s achieved fill rate (``fill_rate``, ``mean_item_fill_rate``) against its inventory
    value over A_LADDER (same split and Q)."""
    y, split = ds["y"], ds["split"]
    train, test = y[:, :split], y[:, split:]
    lt, counts = lead_time_matrix(ds["lead_times"], y.shape[0])
    lt_mean = np.nanmean(lt, axis=1)
    lt_std = np.where(counts > 1, np.nanstd(lt, axis=1), 0.0)
    q = order_quantity(np.maximum(train, 0).mean(axis=1), ds["cover"])
    rate, rmse = sba_one_step(train)
    rp = protection_review_periods(args.policy, ds["review"])
    fills, item_fills, values = [], [], []
    for nominal in A_LADDER:
        pol = normal_policy(
            rate,
            rmse,
            lt_mean,
            lt_std,
            np.full(y.shape[0], nominal),
            q,
            review_period=rp,
            policy=args.policy,
        )
        sim = simulate_policy(
            test,
            pol.reorder_point,
            q,
            ds["lead_times"],
            policy=args.policy,
            review_period=ds["review"],
            unit_cost=ds["unit_cost"],
            warmup=ds["warmup"],
            seed=args.seed + 1,
        )
        fills.append(sim.totals["fill_rate"])
        item_fills.append(sim.totals["mean_item_fill_rate"])
        values.append(sim.totals["avg_on_hand_value"])
    v = np.array(values)
    return {
        "fill_rate": (np.maximum.accumulate(np.array(fills)), v),
        "mean_item_fill_rate": (np.maximum.accumulate(np.array(item_fills)), v),
    }


def value_at_fill(curve: tuple[np.ndarray, np.ndarray], fill: float) -> float:
    """(a)'s inventory value at an achieved fill rate, interpolated on its curve (NaN when
    (a) does not reach it)."""
    fills, values = curve
    if fill > fills[-1]:
        return float("nan")
    if fill <= fills[0]:
        return float(values[0])
    j = int(np.argmax(fills >= fill))
    w = (fill - fills[j - 1]) / max(fills[j] - fills[j - 1], 1e-12)
    return float(values[j - 1] + w * (values[j] - values[j - 1]))


def run(ds: dict, targets: list[float], args: argparse.Namespace) -> list[dict]:
    rows = []
    curve = textbook_curve(ds, args)
    for target in targets:
        t0 = time.perf_counter()
        table, _ = compare_policies(
            ds["y"],
            ds["split"],
            ds["lead_times"],
            target,
            target_type="fill_rate",
            policy=args.policy,
            review_period=ds["review"],
            order_cover_periods=ds["cover"],
            distribution=args.distribution,
            n_samples=args.n_samples,
            unit_cost=ds["unit_cost"],
            warmup=ds["warmup"],
            calibrate=not args.no_calibration,
            seed=args.seed,
        )
        elapsed = time.perf_counter() - t0
        res = {r["policy"]: r for r in table.to_dicts()}
        base = res["normal"]["avg_on_hand_value"]
        for name, r in res.items():
            rows.append(
                {
                    "dataset": ds["name"],
                    "target": target,
                    "policy": LABELS[name],
                    "fill_rate": r["fill_rate"],
                    "fill_rate_hist": r["fill_rate_items_with_history"],
                    "no_hist_share": r["demand_share_without_history"],
                    "mean_item_fill_rate": r["mean_item_fill_rate"],
                    "stockout_rate": r["stockout_rate"],
                    "cycle_service_level": r["cycle_service_level"],
                    "inventory_value": r["avg_on_hand_value"],
                    "vs_a": r["avg_on_hand_value"] / base - 1.0,
                    "vs_a_same_fill": r["avg_on_hand_value"]
                    / value_at_fill(curve["fill_rate"], r["fill_rate"])
                    - 1.0,
                    "vs_a_same_item_fill": r["avg_on_hand_value"]
                    / value_at_fill(curve["mean_item_fill_rate"], r["mean_item_fill_rate"])
                    - 1.0,
                    "orders": r["n_orders"],
                    "seconds": elapsed,
                }
            )
    return rows


def _vs(x: float) -> str:
    return "(a) never reaches it" if np.isnan(x) else f"{x:+.1%}"


def print_table(rows: list[dict]) -> None:
    print(
        "| dataset | target | policy | fill rate | fill rate, items with history | mean item "
        "fill rate | stockout rate | CSL | avg inventory value | vs (a) | vs (a) at the same fill "
        "rate | vs (a) at the same mean item fill rate |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['target']:.0%} | {r['policy']} | {r['fill_rate']:.2%} "
            f"| {r['fill_rate_hist']:.2%} | {r['mean_item_fill_rate']:.2%} "
            f"| {r['stockout_rate']:.2%} | {r['cycle_service_level']:.2%} "
            f"| {r['inventory_value']:,.0f} | {r['vs_a']:+.1%} | "
            + _vs(r["vs_a_same_fill"])
            + " | "
            + _vs(r["vs_a_same_item_fill"])
            + " |"
        )
    shares = {r["dataset"]: r["no_hist_share"] for r in rows}
    for name, share in shares.items():
        print(f"{name}: {share:.1%} of the simulated demand is on items without demand in training")


def print_calibration(ds: dict, h: int, n_samples: int) -> None:
    """Coverage and scaled pinball loss of the per-period (SBA point forecast) and lead-time
    quantiles over 3 rolling origins (``evaluate.calibration.rolling_calibration``)."""
    res = rolling_calibration(ds["y"], ds["lead_times"], h=h, n_windows=3, n_samples=n_samples)
    print(f"\n{ds['name']}: quantile calibration, 3 origins, h = {h}")
    print("| quantiles | level | coverage | scaled pinball | actuals |")
    print("|---|---:|---:|---:|---:|")
    for label, frame in (("per period", res.per_period), ("lead time", res.lead_time)):
        for r in frame.to_dicts():
            print(
                f"| {label} | {r['level']:.2f} | {r['coverage']:.3f} | {r['scaled_pinball']:.3f} "
                f"| {r['n']:,} |"
            )


def time_scale(n_items: int, n_days: int, n_samples: int, seed: int) -> None:
    """Wall time of lead_time_demand and distribution_policy on a synthetic panel (demand on
    0.3%..90% of days, sizes 1 + Poisson(2), 1-9 lead-time samples of 5-59 days per item)."""
    import resource

    from sparecast.inventory.policy import distribution_policy
    from sparecast.methods.distributions import lead_time_demand

    rng = np.random.default_rng(seed)
    p = np.exp(rng.uniform(np.log(0.003), np.log(0.9), n_items))
    y = np.zeros((n_items, n_days), np.float32)
    for i in range(0, n_items, 10_000):
        hit = rng.random((min(10_000, n_items - i), n_days)) < p[i : i + 10_000, None]
        y[i : i + 10_000] = hit * (1 + rng.poisson(2, hit.shape))
    lt = [rng.integers(5, 60, rng.integers(1, 10)).astype(float) for _ in range(n_items)]
    t0 = time.perf_counter()
    ltd = lead_time_demand(y, lt, review_period=1, n_samples=n_samples, seed=seed)
    t1 = time.perf_counter()
    q = order_quantity(y.mean(axis=1), 30)
    distribution_policy(ltd, np.full(n_items, 0.95), q)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n{n_items:,} items x {n_days} days, {n_samples} samples: lead_time_demand "
        f"{t1 - t0:.1f} s, distribution_policy {t2 - t1:.1f} s, peak memory {peak:.2f} GiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2016)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--carparts", type=Path, default=CARPARTS)
    ap.add_argument("--skip-carparts", action="store_true")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--targets", default="0.90,0.95,0.98")
    ap.add_argument("--policy", choices=["sQ", "RsS"], default="sQ")
    ap.add_argument("--distribution", default="auto")
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--no-calibration", action="store_true", help="skip (b) calibrated")
    ap.add_argument("--quantiles", action="store_true", help="also print quantile calibration")
    ap.add_argument(
        "--scale-items", type=int, default=0, help="only time the distributions on N items"
    )
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    if args.scale_items:
        time_scale(args.scale_items, args.days, args.n_samples, args.seed)
        return
    rows: list[dict] = []
    sets = []
    if not args.skip_demo:
        sets.append((demo_dataset(args.items, args.days, args.seed), 28))
    if not args.skip_carparts and args.carparts.is_file():
        sets.append((carparts_dataset(args.carparts, args.seed), 6))
    for ds, _ in sets:
        rows += run(ds, targets, args)
    print_table(rows)
    if args.quantiles:
        for ds, h in sets:
            print_calibration(ds, h, args.n_samples)


if __name__ == "__main__":
    main()
