"""Decision backtest on a weekly data set with MOQs, built from the demo generator (issue 12).

The held-out weekly set of issue 12 (3,451 SKUs x 150 weeks, lead times of 7 or 16 weeks, MOQs,
unit costs; policies set on 100 weeks) is not in the repository; this builds a set of the same
shape from ``generate_demo_erp`` (our own generator: a check of the code path and of the
direction of a change, never a target to tune on): 2,016 items x 151 weeks (the daily demand
summed per week), a lead time of 7 or 16 weeks per item (probability 1/2 each, 12 samples, each
one week late with probability 0.25), MOQs of 5, 10 or 25 units on 60% of the cheaper half of
the items and 20% of the dearer half (1 otherwise), unit costs from the items table. It runs
``evaluate_plan`` (what ``sparecast evaluate-plan --items`` runs) with the policies set on the
first 100 weeks, per-item mode only, and prints the goal check and the fill / stock value per
lead time.

Usage: ``python benchmarks/weekly_decisions.py [--value-classes 3] [--seed 0]``
(``--value-classes``: ``inventory.calibration_value_classes``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl
from inventory import demo_dataset

from sparecast.config import load_settings
from sparecast.inventory.decisions import evaluate_plan


def weekly_dataset(n_items: int = 2016, weeks: int = 151, seed: int = 0) -> dict:
    """The weekly set of the module docstring (the demo of ``benchmarks/inventory.py`` over
    ``weeks`` x 7 days, summed per week)."""
    daily = demo_dataset(n_items, weeks * 7, seed)
    n = len(daily["ids"])
    y = daily["y"].reshape(n, weeks, 7).sum(axis=2)
    rng = np.random.default_rng(seed + 1)
    base = rng.choice([7.0, 16.0], size=n)
    lead_times = base[:, None] + (rng.random((n, 12)) < 0.25)
    cost = np.asarray(daily["unit_cost"], dtype=np.float64)
    cheap = cost < np.quantile(cost, 0.5)
    with_moq = rng.random(n) < np.where(cheap, 0.6, 0.2)
    moq = np.where(with_moq, rng.choice([5.0, 10.0, 25.0], size=n), 1.0)
    return {"y": y, "ids": daily["ids"], "lead_times": lead_times, "unit_cost": cost, "moq": moq}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--value-classes", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ds = weekly_dataset(seed=args.seed)
    extra = {} if args.value_classes is None else {"calibration_value_classes": args.value_classes}
    t0 = time.perf_counter()
    bt = evaluate_plan(
        ds["y"],
        ds["lead_times"],
        settings=load_settings(inventory=extra),
        split=100,
        period_days=7.0,
        unit_cost=ds["unit_cost"],
        moq=ds["moq"],
        item_ids=ds["ids"],
        aggregate=False,
    )
    y = ds["y"]
    print(
        f"weekly demo {y.shape[0]:,} x {y.shape[1]} weeks ({(y == 0).mean():.0%} zeros), "
        f"policies set on 100 weeks ({time.perf_counter() - t0:.0f} s)\n"
    )
    print("| target | sparecast fill | textbook fill | sparecast stock value | textbook stock "
          "value | stock vs textbook at the same fill |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for r in bt.goals.iter_rows(named=True):
        vs = r["value_vs_textbook_same_fill"]
        print(
            f"| {r['target']:.0%} | {r['sparecast_fill_with_history']:.2%} | "
            f"{r['textbook_fill_with_history']:.2%} | {r['sparecast_stock_value']:,.0f} | "
            f"{r['textbook_stock_value']:,.0f} | "
            f"{'textbook never reaches it' if not np.isfinite(vs) else f'{vs:+.1%}'} |"
        )
    per_lead = (
        bt.per_item.filter(pl.col("has_history"), pl.col("policy").is_in(["sparecast", "textbook"]))
        .with_columns(
            lead=pl.when(pl.col("lead_time_periods") > 10)
            .then(pl.lit("16 weeks"))
            .otherwise(pl.lit("7 weeks"))
        )  # fmt: skip
        .group_by("target", "lead", "policy")
        .agg(
            fill=pl.col("filled").sum() / pl.col("demand").sum(),
            value=pl.col("avg_on_hand_value").sum(),
        )
        .sort("target", "lead", "policy")
    )
    print("\nper lead time (fill / stock value):")
    for r in per_lead.iter_rows(named=True):
        print(
            f"  {r['target']:.0%} {r['lead']:>8} {r['policy']:>9}: {r['fill']:.2%} / "
            f"{r['value']:,.0f}"
        )
    for note in bt.notes:
        if "mode per target" in note:
            print("-", note.split("(auto: ")[-1][:200])


if __name__ == "__main__":
    main()
