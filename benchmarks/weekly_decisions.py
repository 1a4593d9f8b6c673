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

Usage: ``python benchmarks/weekly_decisions.py [--value-classes 3] [--seed 0 | --seeds 0,1,2]``
(``--value-classes``: ``inventory.calibration_value_classes``; ``--seeds``: one summary row per
seed and target, and the spread: the weekly sets of different seeds differ by several points).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl
from inventory import demo_dataset

from sparecast.config import load_settings
from sparecast.inventory.decisions import DecisionBacktest, evaluate_plan


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


def run(
    seed: int,
    value_classes: int | None,
    aggregate: bool = False,
    targets: tuple[float, ...] = (0.9, 0.95, 0.98),
) -> tuple[DecisionBacktest, dict, float]:
    """The decision backtest of one weekly set (``seed``), and its seconds; ``aggregate``: with
    the multi-item mode and the per-item ladder it is compared against."""
    ds = weekly_dataset(seed=seed)
    extra = {} if value_classes is None else {"calibration_value_classes": value_classes}
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
        aggregate=aggregate,
        targets=targets,
    )
    return bt, ds, time.perf_counter() - t0


def vs_text(x: float, reference: str = "textbook") -> str:
    """A relative stock value against ``reference`` at the same fill, or that it never
    reaches that fill (NaN)."""
    return f"{reference} never reaches it" if not np.isfinite(x) else f"{x:+.1%}"


def print_goals(bt: DecisionBacktest) -> None:
    """The goal check of ``bt`` as a Markdown table: fill on items with history and stock value
    of the plan and the textbook, and the plan's stock against the textbook at the same fill."""
    print("| target | sparecast fill | textbook fill | sparecast stock value | textbook stock "
          "value | stock vs textbook at the same fill |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for r in bt.goals.iter_rows(named=True):
        print(
            f"| {r['target']:.0%} | {r['sparecast_fill_with_history']:.2%} | "
            f"{r['textbook_fill_with_history']:.2%} | {r['sparecast_stock_value']:,.0f} | "
            f"{r['textbook_stock_value']:,.0f} | {vs_text(r['value_vs_textbook_same_fill'])} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--value-classes", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--seeds", default="", help="comma-separated seeds: one summary row per seed and target"
    )
    ap.add_argument("--targets", default="0.9,0.95,0.98", help="comma-separated fill targets")
    ap.add_argument(
        "--aggregate",
        action="store_true",
        help="also the multi-item mode (with --seeds: its fill, share of demand periods short "
        "and stock against the per-item plan at the same fill)",
    )
    args = ap.parse_args()
    targets = tuple(float(t) for t in args.targets.split(","))
    if args.seeds:
        head = "| seed | target | sparecast fill | textbook fill | stock vs textbook, same fill |"
        rule = "|---:|---:|---:|---:|---:|"
        if args.aggregate:
            head += (
                " plan stock value | aggregate fill | its stockout rate | aggregate stock value |"
                " aggregate vs per-item, same fill |"
            )
            rule += "---:|---:|---:|---:|---:|"
        print(head)
        print(rule)
        fills: dict[float, list[float]] = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            bt, _, _ = run(seed, args.value_classes, args.aggregate, targets)
            for r in bt.goals.iter_rows(named=True):
                fills.setdefault(r["target"], []).append(r["sparecast_fill_with_history"])
                vs = vs_text(r["value_vs_textbook_same_fill"])
                row = (
                    f"| {seed} | {r['target']:.0%} | {r['sparecast_fill_with_history']:.2%} | "
                    f"{r['textbook_fill_with_history']:.2%} | {vs} |"
                )
                if args.aggregate:
                    ag_vs = vs_text(r["aggregate_vs_per_item_same_fill"], "per-item")
                    row += (
                        f" {r['sparecast_stock_value']:,.0f} | "
                        f"{r['aggregate_fill_with_history']:.2%} | "
                        f"{r['aggregate_stockout_rate']:.2%} | "
                        f"{r['aggregate_stock_value']:,.0f} | {ag_vs} |"
                    )
                print(row)
        for t, f in fills.items():
            spread = f"{min(f):.2%} .. {max(f):.2%}"
            print(f"- {t:.0%}: sparecast fill mean {np.mean(f):.2%}, spread {spread}")
        return
    bt, ds, seconds = run(args.seed, args.value_classes, args.aggregate, targets)
    y = ds["y"]
    print(
        f"weekly demo {y.shape[0]:,} x {y.shape[1]} weeks ({(y == 0).mean():.0%} zeros), "
        f"policies set on 100 weeks ({seconds:.0f} s)\n"
    )
    print_goals(bt)
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
