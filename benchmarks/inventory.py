"""Inventory benchmark: decision backtests of the plan against the textbook and empirical rules.

For each data set, ``sparecast.inventory.decisions.evaluate_plan`` (what ``sparecast
evaluate-plan`` runs) sets three policies on the first two thirds of the history and simulates
them on the last third, for fill-rate targets 90/95/98%: ``sparecast`` (the plan's
distribution-based policy at the nominal targets of its calibration,
``inventory.calibration.calibrated_targets``), ``textbook`` (normal on SBA) and ``empirical``
(s = the target quantile of the item's past sums over its protection interval). Same order
quantity Q (30 days of mean training demand), lead-time samples and random draws; items without
demand in the training part are stocked by no policy; each item's first protection interval is a
warm-up. Printed per data set, target and policy: fill rate (all items; items with history), mean
item fill rate, stockout rate, average stock value and orders; per frequency group and for the
growing / decaying items (mean demand after the cut over twice / under half the training mean);
then the goal check of issue 12:
the plan within 1 point of the target on items with history, and its stock value against the
textbook's at the same achieved fill rate (interpolated on the textbook over nominal targets
50% .. 99.99%; "never reached" when the textbook does not get there).

Data sets:

- demo: ``generate_demo_erp`` (daily, default 2,016 items x 730 days); lead times per item from
  its purchase orders and receipts; unit costs from the items table.
- carparts (``../shared/data/carparts/carparts.csv``, monthly, 2,674 x 51 months): no purchase
  orders, so lead times are assumed: each item a base lead time of 1, 2 or 3 months (probabilities
  0.5/0.3/0.2, seed 0) and 12 samples, each one month late with probability 0.25; no unit costs
  (value in units).
- oil (``../shared/data/oil/oil.csv`` + ``oil_items.csv``, monthly, 14,523 x 56 months, y read as
  Float64): unit prices from ``oil_items.csv``; no lead times, so assumed: each item a base lead
  time drawn uniformly from 1..6 months (seed 0; ``--oil-max-lead N``: 1..N, long lead times
  against the history) and 12 samples, each one month late with
  probability 0.25. Returns (negative y) count as zero demand; the one-off spike of 1997-11 (see
  SOURCE.md) is set to zero, as the thesis that published the data did.

Usage: ``python benchmarks/inventory.py [--items 2016] [--days 730] [--targets 0.90,0.95,0.98]
[--policy sQ|RsS] [--distribution auto] [--n-samples 1000] [--skip-demo] [--skip-carparts]
[--skip-oil] [--aggregate-metric fill_rate|demand_periods|fill_and_periods]
[--aggregate-sigmas 0,0.3,0.6,1] [--aggregate-min-fill 0] [--sparse-policy lump|value]
[--sparse-threshold 0.02] [--item-sigmas 0,0.3,0.6,1]
[--floor-gap 0.1] [--margin 0.5] [--value-classes 3]
[--carparts CSV] [--oil CSV] [--svg FILE] [--quantiles] [--no-aggregate]
[--level history|recent|adaptive] [--level-window-days 365] [--obsolete-intervals 6]
[--save-panels FILE] [--svg-from FILE,FILE --svg FILE]``;
``--level`` / ``--level-window-days`` / ``--obsolete-intervals``: ``inventory.level`` /
``level_window_days`` / ``obsolete_intervals``; ``--save-panels``: pickle the backtests, so
data sets run in parallel processes and ``--svg-from`` draws their curves in one chart;
``--no-aggregate`` leaves out the aggregate mode and the per-item ladder (a quicker run);
``--item-sigmas`` / ``--floor-gap`` / ``--margin`` / ``--value-classes``: the per-item mode's
``inventory.item_level_sigmas`` / ``calibration_floor_gap`` / ``calibration_margin`` /
``calibration_value_classes`` (1: frequency groups only);
``--sparse-policy`` / ``--sparse-threshold``: ``inventory.sparse_policy`` /
``sparse_threshold`` (default the settings'); ``--aggregate-metric`` /
``--aggregate-sigmas`` / ``--aggregate-min-fill``: the aggregate mode's
``inventory.aggregate_metric`` / ``aggregate_level_sigmas`` / ``aggregate_min_fill``;
``--svg`` writes the trade-off curves (fill rate on items with history against average stock
value, one panel per data set) to an SVG file; ``--quantiles`` also prints the coverage and
pinball loss of the per-period and lead-time quantiles over 3 rolling origins; ``--scale-items
N`` only times ``lead_time_demand`` and ``distribution_policy`` on a synthetic panel of N items
x ``--days``.
"""

from __future__ import annotations

import argparse
import pickle
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.config import Settings, load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.panel import DemandPanel
from sparecast.evaluate.calibration import rolling_calibration
from sparecast.inventory.decisions import DecisionBacktest, evaluate_plan
from sparecast.inventory.leadtime import lead_time_stats
from sparecast.inventory.policy import order_quantity

# ../shared/data beside the checkout (a worktree under wt/ looks one level further up)
_HERE = Path(__file__).resolve()
DATA = next(
    (p / "shared" / "data" for p in _HERE.parents[1:4] if (p / "shared" / "data").is_dir()),
    _HERE.parents[2] / "shared" / "data",
)
CARPARTS = DATA / "carparts" / "carparts.csv"
OIL = DATA / "oil" / "oil.csv"
MONTH_DAYS = 365.25 / 12.0


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
        "ids": ids,
        "lead_times": lt.samples_for(ids),
        "unit_cost": items["unit_cost"].to_numpy(),
        "period_days": 1.0,
    }


def _assumed_lead_times(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """12 samples per item: the base lead time, one period late with probability 0.25."""
    late = rng.random((base.size, 12)) < 0.25
    return base[:, None] + late


def _uniform_base_lead_times(rng: np.random.Generator, n: int, max_lead: int) -> np.ndarray:
    """float64[n]: assumed base lead times, uniform over 1..max_lead months."""
    return rng.integers(1, max_lead + 1, size=n).astype(np.float64)


def carparts_dataset(path: Path, seed: int, max_lead: int = 0) -> dict:
    """Carparts with assumed lead times: base 1, 2 or 3 months (probabilities 0.5 / 0.3 /
    0.2), or with ``max_lead`` uniform over 1..max_lead months (long lead times, as oil's)."""
    panel = DemandPanel.from_long(pl.read_csv(path, try_parse_dates=True))
    y = np.asarray(panel.y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if max_lead:
        base = _uniform_base_lead_times(rng, y.shape[0], max_lead)
    else:
        base = rng.choice([1.0, 2.0, 3.0], p=[0.5, 0.3, 0.2], size=y.shape[0])
    leads = f", lead times 1-{max_lead} months" if max_lead else ""
    return {
        "name": f"carparts {y.shape[0]:,} x {y.shape[1]} months{leads}",
        "y": y,
        "ids": [str(i) for i in panel.item_ids],
        "lead_times": _assumed_lead_times(base, rng),
        "unit_cost": 1.0,
        "period_days": MONTH_DAYS,
    }


def oil_dataset(path: Path, seed: int, max_lead: int = 6) -> dict:
    df = pl.read_csv(
        path, schema_overrides={"y": pl.Float64, "unique_id": pl.String}, try_parse_dates=True
    )
    df = df.with_columns(
        pl.when(pl.col("ds") == date(1997, 11, 1)).then(0.0).otherwise(pl.col("y")).alias("y")
    )
    panel = DemandPanel.from_long(df, freq="M")
    y = np.asarray(panel.y, dtype=np.float64)
    ids = [str(i) for i in panel.item_ids]
    prices = pl.read_csv(path.with_name("oil_items.csv"), schema_overrides={"unique_id": pl.String})
    cost = (
        pl.DataFrame({"unique_id": ids})
        .join(prices, on="unique_id", how="left", maintain_order="left")["unit_price"]
        .fill_null(1.0)
        .to_numpy()
        .astype(np.float64)
    )
    rng = np.random.default_rng(seed)
    base = _uniform_base_lead_times(rng, y.shape[0], max_lead)
    leads = "" if max_lead == 6 else f", lead times 1-{max_lead} months"
    return {
        "name": f"oil {y.shape[0]:,} x {y.shape[1]} months{leads}",
        "y": y,
        "ids": ids,
        "lead_times": _assumed_lead_times(base, rng),
        "unit_cost": cost,
        "period_days": MONTH_DAYS,
    }


def run(ds: dict, targets: list[float], args: argparse.Namespace) -> DecisionBacktest:
    settings = load_settings(
        inventory={
            "policy": args.policy,
            "distribution": args.distribution,
            "n_samples": args.n_samples,
            "seed": args.seed,
            **({"aggregate_metric": args.aggregate_metric} if args.aggregate_metric else {}),
            "aggregate_min_fill": args.aggregate_min_fill,
            **({"sparse_policy": args.sparse_policy} if args.sparse_policy else {}),
            **(
                {"sparse_threshold": args.sparse_threshold}
                if args.sparse_threshold is not None
                else {}
            ),
            **(
                {"aggregate_level_sigmas": [float(x) for x in args.aggregate_sigmas.split(",")]}
                if args.aggregate_sigmas
                else {}
            ),
            **(
                {"item_level_sigmas": [float(x) for x in args.item_sigmas.split(",")]}
                if args.item_sigmas
                else {}
            ),
            **({"calibration_floor_gap": args.floor_gap} if args.floor_gap is not None else {}),
            **({"level": args.level} if args.level else {}),
            **(
                {"obsolete_intervals": args.obsolete_intervals}
                if args.obsolete_intervals is not None
                else {}
            ),
            **(
                {"level_window_days": args.level_window_days}
                if args.level_window_days is not None
                else {}
            ),
            **({"calibration_margin": args.margin} if args.margin is not None else {}),
            **(
                {"calibration_value_classes": args.value_classes}
                if args.value_classes is not None
                else {}
            ),
        }
    )
    t0 = time.perf_counter()
    bt = backtest(ds, targets, settings, aggregate=not args.no_aggregate)
    ds["seconds"] = time.perf_counter() - t0
    return bt


def backtest(
    ds: dict, targets: list[float], settings: Settings, *, aggregate: bool, end: int | None = None
) -> DecisionBacktest:
    """``evaluate_plan`` of a data set of this module (its first ``end`` periods when given)."""
    return evaluate_plan(
        ds["y"] if end is None else ds["y"][:, :end],
        ds["lead_times"],
        targets=targets,
        settings=settings,
        period_days=ds["period_days"],
        unit_cost=ds["unit_cost"],
        item_ids=ds["ids"],
        aggregate=aggregate,
    )


def _pct(x: float) -> str:
    return "\u2014" if x is None or not np.isfinite(x) else f"{x:.2%}"


def print_results(ds: dict, bt: DecisionBacktest) -> None:
    n, n_t = ds["y"].shape
    print(
        f"\n### {ds['name']}: policies set on {bt.split} periods, simulated on {n_t - bt.split} "
        f"({ds['seconds']:.0f} s)\n"
    )
    print(
        "| target | policy | fill rate | fill rate, items with history | mean item fill rate "
        "| stockout rate | avg stock value | orders |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in bt.summary.filter(pl.col("group") == "all").iter_rows(named=True):
        print(
            f"| {r['target']:.0%} | {r['policy']} | {_pct(r['fill_rate'])} "
            f"| {_pct(r['fill_rate_with_history'])} | {_pct(r['mean_item_fill_rate'])} "
            f"| {_pct(r['stockout_rate'])} | {r['avg_stock_value']:,.0f} | {r['orders']:,.0f} |"
        )
    print("\nPer demand-frequency group of the training part (fill rate / avg stock value):\n")
    groups = [g for g in bt.summary["group"].unique(maintain_order=True) if g != "all"]
    print("| target | policy | " + " | ".join(groups) + " |")
    print("|---:|---|" + "---:|" * len(groups))
    for (target, policy), part in bt.summary.group_by(["target", "policy"], maintain_order=True):
        cells = {r["group"]: r for r in part.iter_rows(named=True)}
        print(
            f"| {target:.0%} | {policy} | "
            + " | ".join(
                f"{_pct(cells[g]['fill_rate'])} / {cells[g]['avg_stock_value']:,.0f}"
                if g in cells
                else "\u2014"
                for g in groups
            )
            + " |"
        )
    print("\nGoal check (issue 12), items with history:\n")
    print(
        "| target | sparecast fill | within 1 point | textbook fill | empirical fill "
        "| stock value vs textbook at the same fill | aggregate mode fill | its stockout rate "
        "| aggregate vs per-item stock value at the same fill |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for g in bt.goals.iter_rows(named=True):
        vs = g["value_vs_textbook_same_fill"]
        ag = g["aggregate_vs_per_item_same_fill"]
        print(
            f"| {g['target']:.0%} | {_pct(g['sparecast_fill_with_history'])} "
            f"| {'yes' if g['within_1_point'] else 'no'} | {_pct(g['textbook_fill_with_history'])} "
            f"| {_pct(g['empirical_fill_with_history'])} "
            f"| {'textbook never reaches it' if not np.isfinite(vs) else f'{vs:+.1%}'} "
            f"| {_pct(g['aggregate_fill_with_history'])} | {_pct(g['aggregate_stockout_rate'])} "
            f"| {'per-item never reaches it' if not np.isfinite(ag) else f'{ag:+.1%}'} |"
        )
    for note in bt.notes:
        print(f"- {note}")


_COLOURS = {
    "textbook ladder": "#999999",
    "sparecast ladder": "#9ecae1",
    "sparecast": "#08519c",
    "aggregate": "#d94801",
    "textbook": "#444444",
    "empirical": "#41ab5d",
}


def write_svg(panels: list[tuple[str, DecisionBacktest]], path: Path) -> None:
    """One panel per data set: fill rate on items with history (y) against average stock value
    (x, relative to the textbook's at the middle target), lines for the ladders, marks for the
    policies at each target."""
    w, h, pad = 300, 240, 40
    y_lo, xmax = 0.7, 3.0  # fill rates from 70%, stock value up to 3x the textbook's
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(panels)}" height="{h + 40}" '
        'font-family="sans-serif" font-size="10">'
    ]
    for k, (name, bt) in enumerate(panels):
        c = bt.curve.filter(pl.col("fill_rate_with_history").is_finite())
        tb = c.filter(pl.col("policy") == "textbook")
        ref = float(tb["avg_stock_value"][len(tb) // 2]) or 1.0
        x0 = k * w

        def pos(v: float, f: float, x0: float = x0, ref: float = ref) -> tuple[float, float]:
            x = x0 + pad + min(v / ref, xmax) / xmax * (w - pad - 10)
            y = 10 + (1 - (max(f, y_lo) - y_lo) / (1 - y_lo)) * (h - pad)
            return x, y

        out.append(f'<text x="{x0 + pad}" y="{h + 25}">{name}</text>')
        out.append(
            f'<rect x="{x0 + pad}" y="10" width="{w - pad - 10}" height="{h - pad}" '
            'fill="none" stroke="#ccc"/>'
        )
        for f in (0.8, 0.9, 0.95, 0.98):
            _, yy = pos(0, f)
            out.append(f'<text x="{x0 + 5}" y="{yy + 3:.0f}">{f:.0%}</text>')
            out.append(
                f'<line x1="{x0 + pad}" x2="{x0 + w - 10}" y1="{yy:.0f}" y2="{yy:.0f}" '
                'stroke="#eee"/>'
            )
        for v in (1.0, 2.0, 3.0):
            xx, _ = pos(v * ref, y_lo)
            out.append(f'<text x="{xx - 8:.0f}" y="{h - 15}">{v:g}x</text>')
        for pol in ("textbook ladder", "sparecast ladder"):
            pts = c.filter(pl.col("policy") == pol).sort("avg_stock_value")
            xy = " ".join(
                "{:.1f},{:.1f}".format(*pos(v, f))
                for v, f in zip(pts["avg_stock_value"], pts["fill_rate_with_history"], strict=True)
            )
            out.append(f'<polyline points="{xy}" fill="none" stroke="{_COLOURS[pol]}"/>')
        for pol in ("textbook", "empirical", "sparecast", "aggregate"):
            for v, f in (
                c.filter(pl.col("policy") == pol)
                .select("avg_stock_value", "fill_rate_with_history")
                .iter_rows()
            ):
                xx, yy = pos(v, f)
                out.append(f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="3" fill="{_COLOURS[pol]}"/>')
    for j, (pol, col) in enumerate(_COLOURS.items()):
        out.append(f'<text x="{10 + j * 110}" y="{h + 38}" fill="{col}">\u25cf {pol}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


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
    ap.add_argument("--oil", type=Path, default=OIL)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-carparts", action="store_true")
    ap.add_argument("--skip-oil", action="store_true")
    ap.add_argument(
        "--oil-max-lead", type=int, default=6, help="oil's assumed base lead times: 1..N months"
    )
    ap.add_argument(
        "--carparts-max-lead",
        type=int,
        default=0,
        help="carparts' assumed base lead times: 1..N months (0: 1, 2 or 3)",
    )
    ap.add_argument("--targets", default="0.90,0.95,0.98")
    ap.add_argument("--policy", choices=["sQ", "RsS"], default="sQ")
    ap.add_argument("--distribution", default="auto")
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument(
        "--aggregate-metric",
        choices=["fill_rate", "demand_periods", "fill_and_periods"],
        default=None,
    )
    ap.add_argument("--aggregate-min-fill", type=float, default=0.0)
    ap.add_argument("--sparse-policy", choices=["lump", "value"], default=None)
    ap.add_argument("--sparse-threshold", type=float, default=None)
    ap.add_argument("--aggregate-sigmas", default="", help="level sigmas the calibration tries")
    ap.add_argument("--item-sigmas", default="", help="level sigmas the per-item calibration tries")
    ap.add_argument(
        "--level", choices=["history", "recent", "adaptive"], default=None, help="inventory.level"
    )
    ap.add_argument(
        "--obsolete-intervals", type=float, default=None, help="inventory.obsolete_intervals"
    )
    ap.add_argument(
        "--level-window-days", type=float, default=None, help="inventory.level_window_days"
    )
    ap.add_argument("--floor-gap", type=float, default=None, help="calibration_floor_gap")
    ap.add_argument("--margin", type=float, default=None, help="calibration_margin")
    ap.add_argument("--value-classes", type=int, default=None, help="calibration_value_classes")
    ap.add_argument(
        "--no-aggregate",
        action="store_true",
        help="leave out the aggregate mode and the per-item ladder (a quicker run)",
    )
    ap.add_argument("--svg", type=Path, help="write the trade-off curves to this SVG file")
    ap.add_argument(
        "--save-panels",
        type=Path,
        help="also pickle the backtests to this file (run the data sets in parallel processes)",
    )
    ap.add_argument(
        "--svg-from",
        default="",
        help="comma-separated --save-panels files: write --svg from them and run nothing",
    )
    ap.add_argument("--quantiles", action="store_true", help="also print quantile calibration")
    ap.add_argument(
        "--scale-items", type=int, default=0, help="only time the distributions on N items"
    )
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    if args.svg_from:
        if args.svg is None:
            ap.error("--svg-from needs --svg")
        saved = [pickle.loads(Path(p).read_bytes()) for p in args.svg_from.split(",")]
        write_svg([panel for panels in saved for panel in panels], args.svg)
        return
    if args.scale_items:
        time_scale(args.scale_items, args.days, args.n_samples, args.seed)
        return
    loaders = []
    if not args.skip_demo:
        loaders.append((lambda: demo_dataset(args.items, args.days, args.seed), 28))
    if not args.skip_carparts and args.carparts.is_file():
        loaders.append(
            (lambda: carparts_dataset(args.carparts, args.seed, args.carparts_max_lead), 6)
        )
    if not args.skip_oil and args.oil.is_file():
        loaders.append((lambda: oil_dataset(args.oil, args.seed, args.oil_max_lead), 6))
    panels = []
    for load, h in loaders:
        ds = load()
        bt = run(ds, targets, args)
        print_results(ds, bt)
        panels.append((ds["name"], bt))
        if args.quantiles:
            print_calibration(ds, h, args.n_samples)
    if args.save_panels:
        args.save_panels.write_bytes(pickle.dumps(panels))
    if args.svg and panels:
        write_svg(panels, args.svg)


if __name__ == "__main__":
    main()
