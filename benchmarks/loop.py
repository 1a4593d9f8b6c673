"""The production loop replayed week by week on the demo ERP with a regime change part-way
(or month by month on ``../shared/data/oil``): the accuracy the loop serves against never
retraining and against always serving the newest model, the promotions and rollbacks it made,
the periods it took to detect the change, and the time of each cycle.

    python benchmarks/loop.py                                  # 300 items, 12 weeks (a few min)
    python benchmarks/loop.py --items 2016 --weeks 52 --change-week 26
    python benchmarks/loop.py --markdown /tmp/loop.md          # the table for docs/results.md
    python benchmarks/loop.py --dataset oil --items 14523 --weeks 20 --change-week 10  # ~7 min
    python benchmarks/loop.py --cycle --items 100000 --history 730   # one weekly cycle, timed
    python benchmarks/loop.py --items 500 --weeks 52 --change-week 26 --monitor-window 28

``--cycle``: the time and memory of one weekly cycle at scale, not a replay. A demo ERP of
``--items`` items x ``--history`` days, planned once (``run_plan``, as ``sparecast demo``
does: the first champion), the champion registered (``ensure_champion``), then one weekly cycle
with the challenger of ``--challenger-methods``, step by step as ``run_weekly`` runs them
(extract, train, evaluate, promote, refresh when kept, re-plan when the champion moved); per
step the wall time and the peak resident memory of the process and its children (sampled every
0.1 s), CPU seconds (this process and its children), and the load average. ``--again`` runs one
more cycle on the kept ``--output`` of an earlier one (no new ERP, no first run).
``--engine-check``: the CPU seconds of evaluate's two core runs on one window (a demo of
``--items`` x ``--history`` days cut 28 days before its end; challenger then champion), on the
local engine and on the shared one, each twice.

``--monitor-periods K`` / ``--monitor-window N`` / ``--monitor-z Z`` set ``[monitoring]
consecutive_periods``, ``window`` and ``z`` of the loop (degraded periods are counted along
the served lineage: a refresh continues the count).

``--dataset oil``: a sample of ``--items`` series of the oil data (monthly; y read as Float64;
the one-off spike of 1997-11 set to zero as ``benchmarks/inventory.py`` does; missing months
are not scored), written as a Parquet file the loop extracts from; a cycle is a month and
``--weeks`` counts months, the last one being the data's last month (2001-08). The same
regime change is inserted (``--factor 1`` for none).

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
   untested); and the **zero forecast** on the same cells, the floor intermittent-demand scores
   are read against.

Scores over all items and days of the replayed weeks, before and after the change: MAE, RMSSE
(per item: RMSE over the cells scored divided by the root of the mean squared one-step
difference of its demand before the first cycle; averaged over the items with a positive
scale), and relative bias = sum(forecast - actual) / sum(actual) in %. Detection: the changed
periods observed (whose actuals had arrived) when the first alert, rollback and promotion after
the change happened. Times: seconds of the weekly steps
and of the daily steps per cycle (median and max); the machine's load average is printed beside
them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import sqlite_url, write_tables
from sparecast.pipeline import loop
from sparecast.pipeline.plan import run_plan
from sparecast.pipeline.steps import run_pipeline
from sparecast.store import ForecastStore, default_store_url

# ../shared/data beside the checkout (a worktree under wt/ looks one level further up)
_HERE = Path(__file__).resolve()
DATA = next(
    (p / "shared" / "data" for p in _HERE.parents[1:4] if (p / "shared" / "data").is_dir()),
    _HERE.parents[2] / "shared" / "data",
)
OIL = DATA / "oil" / "oil.csv"
OIL_LAST_MONTH = date(2001, 8, 1)


def _month(start: date, k: int) -> date:
    """The first day of the month ``k`` months after ``start``'s month."""
    m = start.year * 12 + start.month - 1 + k
    return date(m // 12, m % 12 + 1, 1)


def _shifted(ids: list[str], seed: int) -> set[str]:
    rng = np.random.default_rng(seed + 1)
    return set(rng.choice(ids, size=len(ids) // 2, replace=False).tolist())


def _erp(args: argparse.Namespace, first_day: date) -> tuple[pl.DataFrame, str]:
    """Write the demo ERP with the regime change; return its daily demand (unique_id, ds, y)
    and the source URL."""
    n_days = args.history + args.weeks * 7
    end = first_day + timedelta(days=args.weeks * 7 - 1)
    tables = generate_demo_erp(n_items=args.items, n_days=n_days, seed=args.seed, end_date=end)
    ids = tables["items"]["item_id"].to_list()
    shifted = _shifted(ids, args.seed)
    change = first_day + timedelta(days=7 * args.change_week)
    demand = tables["demand"].with_columns(
        pl.when(pl.col("item_id").is_in(list(shifted)) & (pl.col("date") >= change))
        .then((pl.col("quantity") * args.factor).ceil())
        .otherwise(pl.col("quantity"))
        .alias("quantity")
    )
    tables["demand"] = demand
    write_tables(tables, sqlite_url(args.output / "erp.sqlite"))
    actual = demand.group_by(pl.col("item_id").alias("unique_id"), pl.col("date").alias("ds")).agg(
        pl.col("quantity").sum().cast(pl.Float64).alias("y")
    )
    return actual, sqlite_url(args.output / "erp.sqlite")


def _oil(args: argparse.Namespace, first_month: date) -> tuple[pl.DataFrame, str]:
    """A sample of the oil series with the regime change as a Parquet file; its rows and path."""
    df = pl.read_csv(
        args.oil, schema_overrides={"y": pl.Float64, "unique_id": pl.String}, try_parse_dates=True
    ).with_columns(
        pl.when(pl.col("ds") == date(1997, 11, 1)).then(0.0).otherwise(pl.col("y")).alias("y")
    )
    ids = sorted(df["unique_id"].unique().to_list())
    rng = np.random.default_rng(args.seed)
    sample = sorted(rng.choice(ids, size=min(args.items, len(ids)), replace=False).tolist())
    shifted = _shifted(sample, args.seed)
    change = _month(first_month, args.change_week)
    df = df.filter(pl.col("unique_id").is_in(sample)).with_columns(
        pl.when(pl.col("unique_id").is_in(list(shifted)) & (pl.col("ds") >= change))
        .then((pl.col("y") * args.factor).ceil())
        .otherwise(pl.col("y"))
        .alias("y")
    )
    path = args.output / "oil.parquet"
    df.sort("unique_id", "ds").write_parquet(path)
    return df.select("unique_id", "ds", "y"), str(path)


def _forecasts(store: ForecastStore, model_version: str) -> pl.DataFrame:
    run = store.run_by_version(model_version)
    assert run is not None
    return store.run_forecasts(run.run_id).select(
        pl.col("unique_id").cast(pl.String), "ds", "forecast"
    )


def _period_frame(
    fc: pl.DataFrame,
    items: list[str],
    days: list[date],
    actual: pl.DataFrame,
    *,
    hold: bool,
    dense: bool,
) -> pl.DataFrame:
    """The forecasts of the periods ``days`` for every item (0 where none; with ``hold`` the
    run's last forecast period stands for periods beyond its horizon) joined to the actuals
    (``dense``: a missing actual is a zero; otherwise the cell is not scored)."""
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
    out = out.select("unique_id", "ds", "forecast")
    if dense:
        return out.join(actual, on=["unique_id", "ds"], how="left").with_columns(
            pl.col("y").fill_null(0.0)
        )
    return out.join(actual, on=["unique_id", "ds"], how="inner")


def _scales(actual: pl.DataFrame, before: date, *, dense: bool) -> pl.DataFrame:
    """Per item the mean squared one-step difference of its demand before ``before`` (the
    RMSSE scale; ``dense``: daily, missing days are zeros)."""
    hist = actual.filter(pl.col("ds") < before)
    if dense:
        first = hist["ds"].min()
        days = pl.date_range(first, before - timedelta(days=1), "1d", eager=True).alias("ds")
        grid = pl.DataFrame({"unique_id": hist["unique_id"].unique()}).join(
            days.to_frame(), how="cross"
        )
        hist = grid.join(hist, on=["unique_id", "ds"], how="left").with_columns(
            pl.col("y").fill_null(0.0)
        )
    return (
        hist.sort("unique_id", "ds")
        .group_by("unique_id")
        .agg((pl.col("y").diff() ** 2).mean().alias("scale"))
    )


def _scores(part: pl.DataFrame, scales: pl.DataFrame) -> tuple[float, float, float]:
    """MAE, mean RMSSE over items with a positive scale, relative bias in %."""
    mae = float(part["e"].abs().mean() or 0.0)  # type: ignore[arg-type]
    total = float(part["y"].sum())
    bias = float(part["e"].sum()) / total * 100 if total else float("nan")
    per_item = (
        part.group_by("unique_id")
        .agg((pl.col("e") ** 2).mean().alias("mse"))
        .join(scales, on="unique_id", how="inner")
        .filter(pl.col("scale") > 0)
    )
    rmsse = (
        float((per_item["mse"] / per_item["scale"]).sqrt().mean())  # type: ignore[arg-type]
        if per_item.height
        else float("nan")
    )
    return mae, rmsse, bias


def _rss_mb() -> float:
    """Resident memory of this process and its children, MB (from /proc)."""
    total = 0.0
    pids = [os.getpid()]
    try:
        children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


class _Peak:
    """Peak resident memory (MB) while a block runs, sampled every 0.1 s in a thread."""

    def __enter__(self) -> _Peak:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _cycle(args: argparse.Namespace) -> None:
    """One weekly cycle at scale, timed step by step (``--cycle``; see the module docstring)."""
    rows: list[tuple[str, float, float, float, str]] = []

    def cpu_s() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def timed(name: str, fn: Callable[[], object]) -> object:
        with _Peak() as peak:
            t0, c0 = time.perf_counter(), cpu_s()
            out = fn()
            seconds, cpu = time.perf_counter() - t0, cpu_s() - c0
        message = getattr(out, "message", "") or ""
        rows.append((name, seconds, cpu, peak.peak, str(message)[:110]))
        print(
            f"{name}: {seconds:.1f} s, cpu {cpu:.1f} s, peak {peak.peak:,.0f} MB {message}"[:220],
            flush=True,
        )
        return out

    end = date(2026, 10, 31)
    db = args.output / "erp.sqlite"

    def generate() -> None:
        tables = generate_demo_erp(
            n_items=args.items, n_days=args.history, seed=args.seed, end_date=end
        )
        write_tables(tables, sqlite_url(db))

    if not (args.again and (args.output / "run.json").is_file()):
        timed("generate demo ERP", generate)
        methods = [m.strip() for m in args.methods.split(",")]
        settings = load_settings(methods=methods, data={"today": end})
        timed(
            "first run (forecast + plan)", lambda: run_plan(sqlite_url(db), args.output, settings)
        )
    chall = args.output / "challenger.toml"
    chall.write_text(
        "methods = ["
        + ", ".join(f'"{m.strip()}"' for m in args.challenger_methods.split(","))
        + "]\n"
    )
    ctx = loop.loop_context(args.output, challenger_config=chall)
    timed("register the first champion (once)", lambda: loop.ensure_champion(ctx))
    first_cycle = len(rows)
    loaded, _ = timed("extract", lambda: loop.extract(ctx))  # type: ignore[misc]
    timed("train", lambda: loop.train(ctx, loaded))
    ev = timed("evaluate", lambda: loop.evaluate(ctx, loaded))
    done = timed("promote", lambda: loop.promote(ctx, ev))  # type: ignore[arg-type]
    if not done.details.get("promoted", False):  # type: ignore[attr-defined]
        timed("refresh (champion kept)", lambda: loop.refresh(ctx, loaded))
    timed("re-plan (the champion moved)", lambda: loop.replan_if_planned(ctx))
    cycle = rows[first_cycle:]
    load = os.getloadavg()
    peak_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"one weekly cycle: demo ERP {args.items:,} items x {args.history} days, champion "
        f"`{args.methods}`, challenger `{args.challenger_methods}`",
        "",
        "| step | seconds | CPU seconds | peak RSS MB | outcome |",
        "|---|---:|---:|---:|---|",
        *[
            f"| {n} | {s:.1f} | {c:.1f} | {m:,.0f} | {msg.replace('|', '/')} |"
            for n, s, c, m, msg in rows
        ],
        "",
        f"weekly cycle (extract to re-plan): {sum(r[1] for r in cycle):.1f} s, CPU "
        f"{sum(r[2] for r in cycle):.1f} s; peak RSS "
        f"{max(r[3] for r in cycle):,.0f} MB (ru_maxrss of the process {peak_all:,.0f} MB); "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1/5/15 min) on {os.cpu_count()} cores",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


def _engine_check(args: argparse.Namespace) -> None:
    """CPU seconds of ``evaluate``'s two core runs on one window (the challenger's, then the
    champion's), on the local engine and on the shared one (``--engine-check``)."""
    from sparecast.config import Settings
    from sparecast.pipeline.load import load_panel

    def cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    db = args.output / "erp.sqlite"
    tables = generate_demo_erp(n_items=args.items, n_days=args.history, seed=args.seed)
    write_tables(tables, sqlite_url(db))
    full = load_panel(sqlite_url(db), Settings(), args.output).panel
    panel = full.slice_periods(full.n_periods - 28)
    ch = Settings(methods=[m.strip() for m in args.challenger_methods.split(",")])
    cp = Settings(methods=[m.strip() for m in args.methods.split(",")])
    loop._model_matrix(cp, panel.slice_periods(100), 28)  # compile the kernels
    for name in ("local", "shared", "local", "shared"):
        c0, t0 = cpu_s(), time.perf_counter()
        engine = loop._SharedEngine(panel) if name == "shared" else loop.LOCAL
        loop._model_matrix(ch, panel, 28, engine)
        loop._model_matrix(cp, panel, 28, engine)
        print(
            f"{args.items} items x {args.history} days, {name} engine: CPU "
            f"{cpu_s() - c0:.1f} s, wall {time.perf_counter() - t0:.1f} s (load average "
            f"{os.getloadavg()[0]:.1f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("demo", "oil"), default="demo")
    parser.add_argument("--oil", type=Path, default=OIL, help="oil.csv (--dataset oil)")
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--history", type=int, default=365, help="days before the first cycle")
    parser.add_argument("--weeks", type=int, default=12, help="cycles (months with oil)")
    parser.add_argument("--change-week", type=int, default=6, help="cycle of the change")
    parser.add_argument("--factor", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="sba,tsb,ma", help="the first champion's methods")
    parser.add_argument(
        "--challenger-methods", default="sba,tsb,ma,ses,imapa,robust", help="the challenger's"
    )
    parser.add_argument(
        "--monitor-periods",
        type=int,
        default=None,
        help="[monitoring] consecutive_periods of the loop (default: the configured 3)",
    )
    parser.add_argument(
        "--monitor-window",
        type=int,
        default=None,
        help="[monitoring] window of the loop: a rolling window in periods spanning the "
        "refreshes (default: none, each period scored within the run that served it)",
    )
    parser.add_argument(
        "--monitor-z",
        type=float,
        default=None,
        help="[monitoring] z of the loop: the significance a degraded period needs (default: "
        "the configured 3; 0: the threshold alone)",
    )
    parser.add_argument("--output", type=Path, default=None, help="work directory (kept)")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument(
        "--cycle", action="store_true", help="time one weekly cycle at scale (no replay)"
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="--cycle on the kept --output of an earlier --cycle: one more cycle, no new ERP",
    )
    parser.add_argument(
        "--engine-check",
        action="store_true",
        help="CPU of evaluate's two core runs on one window: local against shared engine",
    )
    args = parser.parse_args()
    keep = args.output is not None
    args.output = args.output or Path(tempfile.mkdtemp(prefix="sparecast-loop-"))
    if args.output.exists() and keep and not (args.cycle and args.again):
        shutil.rmtree(args.output)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.engine_check:
        try:
            _engine_check(args)
        finally:
            if not keep:
                shutil.rmtree(args.output, ignore_errors=True)
        return
    if args.cycle:
        try:
            _cycle(args)
        finally:
            if not keep:
                shutil.rmtree(args.output, ignore_errors=True)
        return

    monthly = args.dataset == "oil"
    if monthly:
        first_day = _month(OIL_LAST_MONTH, 1 - args.weeks)
        actual, source = _oil(args, first_day)
        starts = [_month(first_day, k) for k in range(args.weeks + 1)]
        unit = "month"
    else:
        first_day = date(2026, 1, 5)
        actual, source = _erp(args, first_day)
        starts = [first_day + timedelta(days=7 * k) for k in range(args.weeks + 1)]
        unit = "week"
    items = sorted(actual["unique_id"].unique().to_list())
    start_as_of = first_day - timedelta(days=1)
    methods = [m.strip() for m in args.methods.split(",")]
    data = {"end_date": start_as_of, "today": start_as_of}
    if monthly:
        data["freq"] = "M"
    settings = load_settings(methods=methods, data=data)
    t0 = time.perf_counter()
    run_pipeline(source, args.output, settings)
    first_run_s = time.perf_counter() - t0
    chall = args.output / "challenger.toml"
    chall.write_text(
        "methods = ["
        + ", ".join(f'"{m.strip()}"' for m in args.challenger_methods.split(","))
        + "]\n"
    )
    loop_config = None
    monitoring = []
    if args.monitor_periods is not None:
        monitoring.append(f"consecutive_periods = {args.monitor_periods}")
    if args.monitor_window is not None:
        monitoring.append(f"window = {args.monitor_window}")
    if args.monitor_z is not None:
        monitoring.append(f"z = {args.monitor_z}")
    if monitoring:
        loop_config = args.output / "loop.toml"
        loop_config.write_text("[monitoring]\n" + "\n".join(monitoring) + "\n")
    store = ForecastStore(default_store_url(args.output))
    first = store.served_run()
    assert first is not None
    scales = _scales(actual, first_day, dense=not monthly)
    frames: dict[str, list[pl.DataFrame]] = {"loop": [], "never retrain": [], "always newest": []}
    weekly_s: list[float] = []
    daily_s: list[float] = []
    log: list[str] = []
    events: dict[str, list[int]] = {"alert": [], "rollback": [], "promote": []}
    for week in range(args.weeks):
        as_of = starts[week] - timedelta(days=1)
        ctx = loop.loop_context(
            args.output, config=loop_config, as_of=as_of, challenger_config=chall
        )
        t0 = time.perf_counter()
        daily = loop.run_daily(ctx)
        daily_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reports = loop.run_weekly(ctx)
        weekly_s.append(time.perf_counter() - t0)
        newest = next(r.details["model_version"] for r in reports if r.step == "train")
        served = store.served_run()
        assert served is not None
        if monthly:
            days = [starts[week]]
        else:
            days = [starts[week] + timedelta(days=d) for d in range(7)]
        dense = not monthly
        frames["loop"].append(
            _period_frame(
                _forecasts(store, served.model_version),
                items,
                days,
                actual,
                hold=False,
                dense=dense,
            )
        )
        frames["always newest"].append(
            _period_frame(_forecasts(store, newest), items, days, actual, hold=False, dense=dense)
        )
        frames["never retrain"].append(
            _period_frame(
                _forecasts(store, first.model_version), items, days, actual, hold=True, dense=dense
            )
        )
        for r in daily + reports:
            if r.step == "monitor" and r.details.get("degraded"):
                events["alert"].append(week)
            if r.step == "rollback" and r.details.get("to"):
                events["rollback"].append(week)
            if r.step == "promote" and r.details.get("promoted"):
                events["promote"].append(week)
            if r.step in ("promote", "rollback", "refresh") or (
                r.step == "monitor" and r.details.get("degraded")
            ):
                log.append(f"{unit} {week} ({as_of}): {r.message[:160]}")
        print(
            f"{unit} {week:2d} as of {as_of}: weekly {weekly_s[-1]:.1f} s, "
            f"daily {daily_s[-1]:.1f} s",
            flush=True,
        )
    change = starts[args.change_week] if args.change_week < len(starts) else starts[-1]
    # the zero forecast on the same cells: the floor every intermittent-demand score is read by
    zero = pl.lit(0.0).alias("forecast")
    frames["zero forecast"] = [part.with_columns(zero) for part in frames["loop"]]
    rows = []
    for name, parts in frames.items():
        frame = pl.concat(parts).with_columns((pl.col("forecast") - pl.col("y")).alias("e"))
        row: dict[str, object] = {"strategy": name}
        for label, part in (
            ("before", frame.filter(pl.col("ds") < change)),
            ("after", frame.filter(pl.col("ds") >= change)),
            ("all", frame),
        ):
            mae, rmsse, bias = _scores(part, scales)
            row[f"MAE {label}"] = round(mae, 4)
            row[f"RMSSE {label}"] = round(rmsse, 4)
            row[f"bias % {label}"] = round(bias, 1)
        rows.append(row)
    history = loop.models_history(
        loop.loop_context(args.output, config=loop_config, challenger_config=chall)
    )
    counts = {a: sum(e["action"] == a for e in history) for a in ("promote", "refresh", "rollback")}

    def detected(kind: str) -> str:
        # a cycle at week w has seen the actuals of the periods before it: w - change_week of
        # them changed
        after = [w for w in events[kind] if w > args.change_week]
        return f"{after[0] - args.change_week} {unit}(s)" if after else "never"

    load = os.getloadavg()
    what = (
        f"oil sample ({args.oil.name}, monthly)"
        if monthly
        else f"demo ERP (daily, {unit}ly cycles)"
    )
    change_text = (
        f"x{args.factor:g} demand for half the items from {unit} {args.change_week} ({change})"
        if args.factor != 1
        else "no change inserted"
    )
    if args.monitor_periods is not None:
        change_text += f", alerts after {args.monitor_periods} degraded period(s)"
    if args.monitor_window is not None:
        change_text += f", monitoring window {args.monitor_window} period(s)"
    if args.monitor_z is not None:
        change_text += f", significance z = {args.monitor_z:g}"
    lines = [
        f"loop benchmark: {what}, {len(items)} items, {args.weeks} {unit}ly cycles from "
        f"{first_day}, {change_text}",
        "",
        "| strategy | MAE before | MAE after | MAE all | RMSSE before | RMSSE after | RMSSE all "
        "| bias % before | bias % after | bias % all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['MAE before']} | {r['MAE after']} | {r['MAE all']} | "
            f"{r['RMSSE before']} | {r['RMSSE after']} | {r['RMSSE all']} | "
            f"{r['bias % before']} | {r['bias % after']} | {r['bias % all']} |"
        )
    lines += [
        "",
        f"promotions {counts['promote']}, refreshes {counts['refresh']}, rollbacks "
        f"{counts['rollback']}",
        f"changed periods observed before the first alert: {detected('alert')}, rollback: "
        f"{detected('rollback')}, promotion: {detected('promote')}; cycles with an alert "
        f"before the change (false alarms): {sum(w <= args.change_week for w in events['alert'])}"
        f" of {min(args.change_week + 1, args.weeks)}",
        f"first run {first_run_s:.1f} s; weekly steps per cycle: median "
        f"{statistics.median(weekly_s):.1f} s, max {max(weekly_s):.1f} s; daily steps: median "
        f"{statistics.median(daily_s):.1f} s, max {max(daily_s):.1f} s "
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
