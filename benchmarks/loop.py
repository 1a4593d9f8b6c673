"""The production loop replayed week by week on the demo ERP with a regime change part-way:
the accuracy the loop serves against never retraining and against always serving the newest
model, the promotions and rollbacks it made, and the time of each cycle.

    python benchmarks/loop.py                                  # 300 items, 12 weeks (a few min)
    python benchmarks/loop.py --items 2016 --weeks 52 --change-week 26
    python benchmarks/loop.py --markdown /tmp/loop.md          # the table for docs/results.md

The ERP (``generate_demo_erp``) holds ``--history`` days before the first cycle and the
``--weeks`` weeks replayed; from week ``--change-week`` on, half of the items (drawn with the
seed) issue ``--factor`` times their demand (a regime change nobody announces). The directory
starts with ``sparecast run`` on the history (methods ``--methods``: the first champion). Each
week ``t`` (``as_of`` = the last day before the week):

1. the daily steps (``run_daily``): extraction, actuals, monitoring of the champion, rollback on
   degradation;
2. the weekly steps (``run_weekly``): a challenger (``--challenger-methods``) trained, evaluated
   against the champion on the same windows, promoted or the champion refreshed;
3. the week's demand is scored against the forecasts of the run each strategy serves:
   **loop** (the champion after the steps), **never retrain** (the first run; beyond its
   horizon its last period's value held), **always newest** (the challenger just trained,
   untested).

Scores over all items and days of the replayed weeks, before and after the change: MAE, and
relative bias = sum(forecast - actual) / sum(actual) in %. Times: seconds of the weekly steps
and of the daily steps per cycle (median and max); the machine's load average is printed beside
them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import sqlite_url, write_tables
from sparecast.pipeline import loop
from sparecast.pipeline.steps import run_pipeline
from sparecast.store import ForecastStore, default_store_url


def _erp(args: argparse.Namespace, first_day: date) -> pl.DataFrame:
    """Write the demo ERP with the regime change; return its daily demand (unique_id, ds, y)."""
    n_days = args.history + args.weeks * 7
    end = first_day + timedelta(days=args.weeks * 7 - 1)
    tables = generate_demo_erp(n_items=args.items, n_days=n_days, seed=args.seed, end_date=end)
    rng = np.random.default_rng(args.seed + 1)
    ids = tables["items"]["item_id"].to_list()
    shifted = set(rng.choice(ids, size=len(ids) // 2, replace=False).tolist())
    change = first_day + timedelta(days=7 * args.change_week)
    demand = tables["demand"].with_columns(
        pl.when(pl.col("item_id").is_in(list(shifted)) & (pl.col("date") >= change))
        .then((pl.col("quantity") * args.factor).ceil())
        .otherwise(pl.col("quantity"))
        .alias("quantity")
    )
    tables["demand"] = demand
    write_tables(tables, sqlite_url(args.output / "erp.sqlite"))
    return demand.group_by(pl.col("item_id").alias("unique_id"), pl.col("date").alias("ds")).agg(
        pl.col("quantity").sum().alias("y")
    )


def _forecasts(store: ForecastStore, model_version: str) -> pl.DataFrame:
    run = store.run_by_version(model_version)
    assert run is not None
    return store.run_forecasts(run.run_id).select(
        pl.col("unique_id").cast(pl.String), "ds", "forecast"
    )


def _week_frame(
    fc: pl.DataFrame, items: list[str], start: date, actual: pl.DataFrame, hold: bool
) -> pl.DataFrame:
    """The forecasts of the 7 days from ``start`` for every item (0 where none; with ``hold``
    the run's last forecast period stands for days beyond its horizon) joined to the actuals."""
    days = [start + timedelta(days=d) for d in range(7)]
    grid = pl.DataFrame({"unique_id": items}).join(pl.DataFrame({"ds": days}), how="cross")
    week = fc.filter(pl.col("ds").is_in(days))
    if hold:
        last = fc.sort("ds").group_by("unique_id").agg(pl.col("forecast").last().alias("last"))
        out = grid.join(week, on=["unique_id", "ds"], how="left").join(
            last, on="unique_id", how="left"
        )
        out = out.with_columns(pl.coalesce("forecast", "last", pl.lit(0.0)).alias("forecast"))
    else:
        out = grid.join(week, on=["unique_id", "ds"], how="left").with_columns(
            pl.col("forecast").fill_null(0.0)
        )
    return (
        out.select("unique_id", "ds", "forecast")
        .join(actual, on=["unique_id", "ds"], how="left")
        .with_columns(pl.col("y").fill_null(0.0))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--history", type=int, default=365, help="days before the first cycle")
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--change-week", type=int, default=6)
    parser.add_argument("--factor", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="sba,tsb,ma", help="the first champion's methods")
    parser.add_argument(
        "--challenger-methods", default="sba,tsb,ma,ses,imapa,robust", help="the challenger's"
    )
    parser.add_argument("--output", type=Path, default=None, help="work directory (kept)")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    keep = args.output is not None
    args.output = args.output or Path(tempfile.mkdtemp(prefix="sparecast-loop-"))
    if args.output.exists() and keep:
        shutil.rmtree(args.output)
    args.output.mkdir(parents=True, exist_ok=True)

    first_day = date(2026, 1, 5)
    actual = _erp(args, first_day)
    items = sorted(actual["unique_id"].unique().to_list())
    start_as_of = first_day - timedelta(days=1)
    methods = [m.strip() for m in args.methods.split(",")]
    settings = load_settings(methods=methods, data={"end_date": start_as_of, "today": start_as_of})
    source = sqlite_url(args.output / "erp.sqlite")
    run_pipeline(source, args.output, settings)
    chall = args.output / "challenger.toml"
    chall.write_text(
        "methods = ["
        + ", ".join(f'"{m.strip()}"' for m in args.challenger_methods.split(","))
        + "]\n"
    )
    store = ForecastStore(default_store_url(args.output))
    first = store.served_run()
    assert first is not None
    frames: dict[str, list[pl.DataFrame]] = {"loop": [], "never retrain": [], "always newest": []}
    weekly_s: list[float] = []
    daily_s: list[float] = []
    log: list[str] = []
    for week in range(args.weeks):
        as_of = start_as_of + timedelta(days=7 * week)
        ctx = loop.loop_context(args.output, as_of=as_of, challenger_config=chall)
        t0 = time.perf_counter()
        daily = loop.run_daily(ctx)
        daily_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reports = loop.run_weekly(ctx)
        weekly_s.append(time.perf_counter() - t0)
        newest = next(r.details["model_version"] for r in reports if r.step == "train")
        served = store.served_run()
        assert served is not None
        start = as_of + timedelta(days=1)
        frames["loop"].append(
            _week_frame(_forecasts(store, served.model_version), items, start, actual, False)
        )
        frames["always newest"].append(
            _week_frame(_forecasts(store, newest), items, start, actual, False)
        )
        frames["never retrain"].append(
            _week_frame(_forecasts(store, first.model_version), items, start, actual, True)
        )
        for r in daily + reports:
            if r.step in ("promote", "rollback", "refresh") or (
                r.step == "monitor" and r.details.get("degraded")
            ):
                log.append(f"week {week} ({as_of}): {r.message[:160]}")
        print(
            f"week {week:2d} as of {as_of}: weekly {weekly_s[-1]:.1f} s, daily {daily_s[-1]:.1f} s"
        )
    change = first_day + timedelta(days=7 * args.change_week)
    rows = []
    for name, parts in frames.items():
        frame = pl.concat(parts).with_columns((pl.col("forecast") - pl.col("y")).alias("e"))
        row = {"strategy": name}
        for label, part in (
            ("before", frame.filter(pl.col("ds") < change)),
            ("after", frame.filter(pl.col("ds") >= change)),
            ("all", frame),
        ):
            mae = part["e"].abs().mean()
            total = part["y"].sum()
            bias = part["e"].sum() / total * 100 if total else float("nan")
            row[f"MAE {label}"] = round(float(mae or 0.0), 4)
            row[f"bias % {label}"] = round(float(bias), 1)
        rows.append(row)
    table = pl.DataFrame(rows)
    events = loop.models_history(loop.loop_context(args.output, challenger_config=chall))
    counts = {a: sum(e["action"] == a for e in events) for a in ("promote", "refresh", "rollback")}
    load = os.getloadavg()
    lines = [
        f"loop benchmark: {args.items} items, {args.weeks} weeks from {first_day}, "
        f"x{args.factor:g} demand for half the items from week {args.change_week} ({change})",
        "",
        "| strategy | MAE before | MAE after | MAE all | bias % before | bias % after "
        "| bias % all |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.to_dicts():
        lines.append(
            f"| {r['strategy']} | {r['MAE before']} | {r['MAE after']} | {r['MAE all']} | "
            f"{r['bias % before']} | {r['bias % after']} | {r['bias % all']} |"
        )
    lines += [
        "",
        f"promotions {counts['promote']}, refreshes {counts['refresh']}, rollbacks "
        f"{counts['rollback']}",
        f"weekly steps per cycle: median {statistics.median(weekly_s):.1f} s, max "
        f"{max(weekly_s):.1f} s; daily steps: median {statistics.median(daily_s):.1f} s "
        f"(load average {load[0]:.1f} on {os.cpu_count()} cores)",
        "",
        *log,
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    store.dispose()
    if not keep:
        shutil.rmtree(args.output, ignore_errors=True)


if __name__ == "__main__":
    main()
