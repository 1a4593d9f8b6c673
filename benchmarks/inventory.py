"""Inventory benchmark: (a) textbook normal safety stock on SBA vs (b) distribution-based policy.

For each dataset and fill-rate target (90/95/98%), both policies are set on the first part of
the history and simulated on the rest (``sparecast.evaluate.simulate.compare_policies``: same
order quantity Q, same lead-time samples, backorders, a warm-up that is not measured). Printed per
target and policy: the achieved fill rate (served / demanded over all items, and the mean of the
items' fill rates), the stockout rate (demand periods not fully served / demand periods), the
cycle service level and the average inventory value, with (b)'s value against (a)'s.

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
[--targets 0.90,0.95,0.98] [--policy sQ|RsS] [--distribution auto] [--n-samples 1000]``.
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
from sparecast.evaluate.simulate import compare_policies
from sparecast.inventory.leadtime import lead_time_stats

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


def run(ds: dict, targets: list[float], args: argparse.Namespace) -> list[dict]:
    rows = []
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
                    "orders": r["n_orders"],
                    "seconds": elapsed,
                }
            )
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "| dataset | target | policy | fill rate | fill rate, items with history | mean item "
        "fill rate | stockout rate | CSL | avg inventory value | vs (a) |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['target']:.0%} | {r['policy']} | {r['fill_rate']:.2%} "
            f"| {r['fill_rate_hist']:.2%} | {r['mean_item_fill_rate']:.2%} "
            f"| {r['stockout_rate']:.2%} | {r['cycle_service_level']:.2%} "
            f"| {r['inventory_value']:,.0f} | {r['vs_a']:+.1%} |"
        )
    shares = {r["dataset"]: r["no_hist_share"] for r in rows}
    for name, share in shares.items():
        print(f"{name}: {share:.1%} of the simulated demand is on items without demand in training")


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
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    rows: list[dict] = []
    if not args.skip_demo:
        rows += run(demo_dataset(args.items, args.days, args.seed), targets, args)
    if not args.skip_carparts and args.carparts.is_file():
        rows += run(carparts_dataset(args.carparts, args.seed), targets, args)
    print_table(rows)


if __name__ == "__main__":
    main()
