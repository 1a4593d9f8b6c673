"""Command line: ``sparecast demo | run | backtest | plan | evaluate-plan | serve | monitor``.

Thin layer over sparecast.pipeline (steps, plan): parse options, draw progress, print the summary.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sparecast.config import Settings, load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import sqlite_url, write_tables
from sparecast.errors import OutputError, SparecastError
from sparecast.methods import set_threads
from sparecast.pipeline.load import LoadedData
from sparecast.pipeline.ops_cli import models_app, pipeline_app
from sparecast.pipeline.plan import PlanOutcome, run_plan
from sparecast.pipeline.staging import ensure_output_dir, recover_output_dir
from sparecast.pipeline.steps import RunOutcome, run_pipeline
from sparecast.pipeline.store_step import check_not_loop_managed
from sparecast.store.cli import store_app
from sparecast.store.overrides_cli import overrides_app
from sparecast.urls import redact_text

app = typer.Typer(
    help="sparecast: forecasts and inventory decisions for intermittent demand.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(store_app, name="store")  # sparecast store migrate | runs | prune
app.add_typer(pipeline_app, name="pipeline")  # sparecast pipeline run daily|weekly | serve
app.add_typer(models_app, name="models")  # sparecast models status | history | rollback
web_app = typer.Typer(help="The planner's web app (served by `sparecast serve` under /app).")
app.add_typer(web_app, name="web")  # sparecast web hash-password
app.add_typer(overrides_app, name="overrides")  # sparecast overrides set | list | delete | ...
console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML configuration file", exists=True)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or tables")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        help="run per chunk of items on a local Dask cluster of N single-threaded worker "
        "processes (compute.workers; needs sparecast[dask])",
        min=1,
    ),
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        help="address of a running Dask scheduler, e.g. tcp://host:8786 (compute.scheduler)"
    ),
]


def _compute(workers: int | None, cluster: str | None) -> dict[str, Any]:
    """The [compute] overrides of --workers / --cluster."""
    return {k: v for k, v in (("workers", workers), ("scheduler", cluster)) if v is not None}


StrictOpt = Annotated[
    bool, typer.Option("--strict", help="fail if any input row is rejected by validation")
]
HorizonOpt = Annotated[
    str | None,
    typer.Option(
        "--horizon",
        "-h",
        help="forecast horizon: periods (6) or a duration (90d, 13w, 6mo, 1y), rounded up to "
        "the data's periods; default by frequency: 28 days, 13 weeks, 6 months",
    ),
]
MethodsOpt = Annotated[
    str | None,
    typer.Option("--methods", "-m", help="comma-separated method names (the router's candidates)"),
]
SourceOpt = Annotated[
    str,
    typer.Option("--source", "-s", help="SQLAlchemy URL of the ERP, or a CSV/Parquet/SQLite file"),
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="output directory")]
ItemsOpt = Annotated[
    Path | None,
    typer.Option(
        "--items",
        "-i",
        help="items file (CSV/Parquet) of a long-format SOURCE: unique_id and any of "
        "lead_time_days, lead_time_std_days, moq, lot_size, unit_cost, on_hand, on_order",
    ),
]
RouterOpt = Annotated[
    str | None,
    typer.Option(
        "--router",
        help="hybrid router mode: auto (best backtest score per class/item) or rules "
        "(frequency tier -> method); default: router.mode of the config (auto)",
    ),
]


class _Bars:
    """Adapts the pipeline's progress(label, done, total) calls to Rich progress bars."""

    def __init__(self, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=quiet,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        stage = label.split(" ", 1)[0]
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total, description=label)

    def __enter__(self) -> _Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]


def _settings(
    config: Path | None,
    strict: bool,
    horizon: str | None,
    methods: str | None,
    router: str | None = None,
    compute: dict[str, Any] | None = None,
) -> Settings:
    overrides: dict[str, Any] = {}
    if compute:  # --workers / --cluster: the [compute] section
        overrides["compute"] = compute
    if router is not None:
        if router not in ("auto", "rules"):
            raise typer.BadParameter(f"--router must be auto or rules, got {router!r}")
        overrides["router"] = {"mode": router}
    if horizon is not None:
        overrides["horizon"] = horizon
    if methods:
        overrides["methods"] = [m.strip() for m in methods.split(",") if m.strip()]
    if strict:
        overrides["data"] = {"strict": True}
    settings = load_settings(config, **overrides)
    set_threads(settings.threads)
    return settings


def _print_outcome(
    outcome: RunOutcome, output: Path, elapsed: float, *, finished: bool = True
) -> None:
    for report in outcome.loaded.reports.values():
        for line in report.summary_lines():
            console.print(f"validation: {line}", markup=False, highlight=False)
    classes = outcome.result.classification
    table = Table(title="Items per demand class and tier")
    table.add_column("class")
    tiers = sorted(classes["tier"].unique().to_list())
    for tier in tiers:
        table.add_column(tier, justify="right")
    table.add_column("total", justify="right")
    counts = classes.group_by("sb_class", "tier").len()
    for sb_class in sorted(classes["sb_class"].unique().to_list()):
        row = counts.filter(pl.col("sb_class") == sb_class)
        by_tier = dict(zip(row["tier"].to_list(), row["len"].to_list(), strict=True))
        table.add_row(
            sb_class, *[f"{by_tier.get(t, 0):,}" for t in tiers], f"{sum(by_tier.values()):,}"
        )
    console.print(table)
    console.print("[bold]Backtest accuracy against the zero forecast and the baselines[/bold]")
    for line in outcome.summary_lines:
        console.print("  " + line, highlight=False)
    if finished:
        console.print(
            f"Outputs in {output}: " + ", ".join(Path(p).name for p in outcome.paths.values())
        )
        console.print(f"Done in {elapsed:.1f} s")


def _print_notes(notes: list[str]) -> None:
    """The run's notes on stderr, printed even with --quiet: they change the result."""
    for note in notes:
        err_console.print(
            f"note: {note}", style="yellow", markup=False, highlight=False, soft_wrap=True
        )


def _extreme_notes(loaded: LoadedData) -> list[str]:
    """A note per extreme-quantity reason of the demand validation: such rows change the
    forecasts (rejected or capped), so they are said even with --quiet."""
    report = loaded.reports.get("demand")
    if report is None:
        return []
    return [
        f"{n} demand row(s) with extreme quantities: {reason} (listed in rejected_rows.parquet; "
        "see data.outlier_action and data.outlier_factor)"
        for reason, n in report.counts.items()
        if reason.startswith("extreme_quantity")
    ]


def _recover(output: Path, settings: Settings) -> None:
    """Finish or undo what an interrupted command left in ``output`` (staging folders)."""
    for line in recover_output_dir(output, settings):
        err_console.print(line, markup=False, highlight=False)


def _steps(quiet: bool) -> Any:
    """A step callback printing ``step: NAME`` on stderr as the command advances (not with
    --quiet): operators and the fault tests see how far a command got."""

    def step(name: str) -> None:
        if not quiet:
            err_console.print(f"step: {name}", markup=False, highlight=False)

    return step


def _run(
    source: str,
    output: Path,
    settings: Settings,
    quiet: bool,
    with_forecast: bool = True,
    full_extract: bool = False,
) -> RunOutcome:
    t0 = time.perf_counter()
    _recover(output, settings)
    with _Bars(quiet) as bars:
        outcome = run_pipeline(
            source,
            output,
            settings,
            with_forecast=with_forecast,
            full_extract=full_extract,
            progress=bars,
            steps=_steps(quiet),
        )
    _print_notes(_extreme_notes(outcome.loaded) + outcome.result.notes)
    if not quiet:
        _print_outcome(outcome, output, time.perf_counter() - t0)
    return outcome


def _plan(
    source: str,
    output: Path,
    settings: Settings,
    quiet: bool,
    *,
    full_extract: bool = False,
    reuse_forecasts: bool = False,
    items_file: Path | None = None,
) -> PlanOutcome:
    t0 = time.perf_counter()
    _recover(output, settings)
    with _Bars(quiet) as bars:
        outcome = run_plan(
            source,
            output,
            settings,
            reuse_forecasts=reuse_forecasts,
            full_extract=full_extract,
            progress=bars,
            steps=_steps(quiet),
            items_file=items_file,
        )
    run_notes = [] if outcome.run is None else outcome.run.result.notes
    extreme = [] if outcome.run is None else _extreme_notes(outcome.run.loaded)
    _print_notes(extreme + run_notes + outcome.plan.notes)
    if not quiet:
        if outcome.run is not None:
            _print_outcome(outcome.run, output, time.perf_counter() - t0, finished=False)
        console.print("[bold]Inventory plan[/bold]")
        for line in outcome.summary_lines:
            console.print("  " + line, markup=False, highlight=False)
        files = dict(outcome.run.paths if outcome.run is not None else {}) | outcome.paths
        console.print(f"Outputs in {output}: " + ", ".join(Path(p).name for p in files.values()))
        console.print(f"Done in {time.perf_counter() - t0:.1f} s")
    return outcome


def _fail(exc: SparecastError) -> None:
    err_console.print("error:", style="bold red", end=" ")
    err_console.print(redact_text(str(exc)), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-10-31") from None


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="directory for the demo ERP and outputs")
    ],
    items: Annotated[int, typer.Option(help="number of items", min=1)] = 2016,
    days: Annotated[int, typer.Option(help="days of history", min=60)] = 365,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    end_date: Annotated[str, typer.Option(help="last day of the demo history")] = "2026-10-31",
    config: ConfigOpt = None,
    horizon: HorizonOpt = None,
    methods: MethodsOpt = None,
    router: RouterOpt = None,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    cluster: ClusterOpt = None,
) -> None:
    """Generate a demo ERP into OUTPUT/erp.sqlite and run the whole pipeline on it: forecasts,
    then the inventory plan (policy.parquet, inventory_report.html)."""
    last_day = _iso_date(end_date)
    try:
        settings = _settings(config, False, horizon, methods, router, _compute(workers, cluster))
        # The demo's history ends on end_date: that is its "today", whatever the clock says.
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={"today": last_day})}
        )
        ensure_output_dir(output)  # _plan below first finishes what an interrupted run left
        # a new demo ERP is not written over a directory the production loop serves
        check_not_loop_managed(settings, output, command="demo")
        db = output / "erp.sqlite"
        if not quiet:
            err_console.print(f"Generating demo ERP: {items:,} items x {days} days -> {db}")
        tables = generate_demo_erp(n_items=items, n_days=days, seed=seed, end_date=last_day)
        # written beside and renamed into place: a reader never sees a half-written ERP
        tmp = output / f".erp.sqlite.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        write_tables(tables, sqlite_url(tmp))
        os.replace(tmp, db)
        # A new demo ERP replaces the old one: extract it in full, not incrementally.
        _plan(sqlite_url(db), output, settings, quiet, full_extract=True)
    except SparecastError as exc:
        _fail(exc)


@app.command()
def run(
    source: SourceOpt,
    output: OutputOpt,
    config: ConfigOpt = None,
    horizon: HorizonOpt = None,
    methods: MethodsOpt = None,
    router: RouterOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    cluster: ClusterOpt = None,
) -> None:
    """Extract, validate, classify, backtest and forecast SOURCE; write the results into OUTPUT."""
    compute = _compute(workers, cluster)
    try:
        _run(source, output, _settings(config, strict, horizon, methods, router, compute), quiet)
    except SparecastError as exc:
        _fail(exc)


@app.command("backtest")
def backtest_cmd(
    source: SourceOpt,
    output: OutputOpt,
    config: ConfigOpt = None,
    horizon: HorizonOpt = None,
    methods: MethodsOpt = None,
    router: RouterOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    cluster: ClusterOpt = None,
) -> None:
    """Only the evaluation: rolling-origin backtest of every method, per-class summary."""
    try:
        _run(
            source,
            output,
            _settings(config, strict, horizon, methods, router, _compute(workers, cluster)),
            quiet,
            with_forecast=False,
        )
    except SparecastError as exc:
        _fail(exc)


@app.command("plan")
def plan_cmd(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "-s",
            help="SQLAlchemy URL of the ERP, or a SQLite file (with purchase orders, receipts "
            "and stock), or a long-format CSV/Parquet demand file with --items",
        ),
    ],
    output: OutputOpt,
    items: ItemsOpt = None,
    reuse_forecasts: Annotated[
        bool,
        typer.Option(
            "--reuse-forecasts",
            help="plan on OUTPUT/forecasts.parquet of an earlier run instead of forecasting again",
        ),
    ] = False,
    config: ConfigOpt = None,
    horizon: HorizonOpt = None,
    methods: MethodsOpt = None,
    router: RouterOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    cluster: ClusterOpt = None,
) -> None:
    """Forecast SOURCE, then plan inventory: lead times from purchase orders (or the items file
    of a long-format SOURCE), safety stock, reorder points, suggested orders; writes
    OUTPUT/policy.parquet and inventory_report.html."""
    try:
        _plan(
            source,
            output,
            _settings(config, strict, horizon, methods, router, _compute(workers, cluster)),
            quiet,
            reuse_forecasts=reuse_forecasts,
            items_file=items,
        )
    except SparecastError as exc:
        _fail(exc)


@app.command("evaluate-plan")
def evaluate_plan_cmd(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "-s",
            help="SQLAlchemy URL of the ERP, or a SQLite file (with purchase orders and "
            "receipts), or a long-format CSV/Parquet demand file with --items",
        ),
    ],
    output: OutputOpt,
    items: ItemsOpt = None,
    targets: Annotated[
        str,
        typer.Option("--targets", help="comma-separated fill-rate targets, each in (0, 1)"),
    ] = "0.9,0.95,0.98",
    split: Annotated[
        int | None,
        typer.Option(
            "--split", min=1, help="periods the policies are set on (default: two thirds)"
        ),
    ] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Decision backtest: set policies on an earlier cut of SOURCE, replay what followed; the
    plan's policy against the textbook and empirical baselines, per target and frequency group
    (OUTPUT/decisions_*.parquet, decisions_report.html)."""
    from sparecast.pipeline.evaluate_plan import run_evaluate_plan

    try:
        values = [float(t) for t in targets.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"--targets must be numbers like 0.9,0.95, got {targets!r}"
        ) from None
    try:
        t0 = time.perf_counter()
        outcome = run_evaluate_plan(
            source,
            output,
            _settings(config, False, None, None),
            targets=values,
            split=split,
            items_file=items,
        )
        _print_notes(outcome.backtest.notes)
        if not quiet:
            table = Table(title="Plan vs textbook (fill rate on items with history)")
            cols = ("target", "sparecast", "aggregate", "textbook", "empirical",
                    "stock vs textbook*")  # fmt: skip
            for col in cols:
                table.add_column(col, justify="right")
            for g in outcome.backtest.goals.iter_rows(named=True):
                vs = g["value_vs_textbook_same_fill"]
                table.add_row(
                    f"{g['target']:.1%}",
                    f"{g['sparecast_fill_with_history']:.1%}",
                    f"{g['aggregate_fill_with_history']:.1%}",
                    f"{g['textbook_fill_with_history']:.1%}",
                    f"{g['empirical_fill_with_history']:.1%}",
                    "never reached" if vs != vs else f"{vs:+.1%}",
                )
            console.print(table)
            console.print("* stock value against the textbook's at the same achieved fill rate")
            console.print(
                f"Outputs in {output}: " + ", ".join(Path(p).name for p in outcome.paths.values())
            )
            console.print(f"Done in {time.perf_counter() - t0:.1f} s")
    except SparecastError as exc:
        _fail(exc)


@app.command()
def serve(
    data: Annotated[
        Path,
        typer.Option("--data", "-d", help="output directory of `sparecast demo|run|plan` to serve"),
    ] = Path("."),
    port: Annotated[
        int | None, typer.Option(help="port (default: service.port, 8000)", min=1, max=65535)
    ] = None,
    host: Annotated[str | None, typer.Option(help="address (default: service.host)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="server processes (default: service.workers)", min=1)
    ] = None,
    config: ConfigOpt = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve forecasts, inventory policy, reports, health, retraining and metrics over HTTP."""
    from sparecast.service.server import serve as run_server

    try:
        settings = load_settings(config)
        set_threads(settings.threads)
        if not data.is_dir():
            raise OutputError(
                f"data directory {data} does not exist; create one with "
                f"`sparecast demo --output {data}` or `sparecast run --output {data}`"
            )
        err_console.print(
            f"Serving {data.resolve()} on http://{host or settings.service.host}:"
            f"{port or settings.service.port} ({workers or settings.service.workers} worker(s)); "
            "the planner's web app is under /app"
        )
        run_server(
            settings, data.resolve(), host=host, port=port, workers=workers, log_level=log_level
        )
    except SparecastError as exc:
        _fail(exc)


@app.command("monitor")
def monitor_command(
    data: Annotated[
        Path,
        typer.Option("--data", "-d", help="output directory of `sparecast demo|run|plan`"),
    ] = Path("."),
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="score the forecast periods that ended by this date (default: today)"
        ),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option("--model-version", help="the stored run to score (default: the latest)"),
    ] = None,
    periods: Annotated[
        int, typer.Option("--periods", help="show the scores of the last N periods", min=1)
    ] = 1,
    fail_on_alert: Annotated[
        bool, typer.Option("--fail-on-alert", help="exit with code 1 when alerts are open")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Score the served forecasts on the actuals stored since the run, per tier, class and
    category, against the run's backtest expectation; open or close accuracy alerts."""
    from sparecast.pipeline.monitor import monitor

    day = _iso_date(as_of) if as_of is not None else None
    try:
        settings = load_settings(config)
        if not data.is_dir():
            raise OutputError(
                f"data directory {data} does not exist; create one with "
                f"`sparecast demo --output {data}` or `sparecast run --output {data}`"
            )
        report = monitor(settings, data.resolve(), model_version=model_version, as_of=day)
    except SparecastError as exc:
        _fail(exc)
        return
    cfg = settings.monitoring
    if report.scores.height:
        last = int(report.scores["period"].max())  # type: ignore[arg-type]
        shown = report.scores.filter(pl.col("period") > last - periods)
        table = Table(
            title=f"Accuracy of {report.model_version} (rolling; expectation: {report.expectation})"
        )
        columns = ["ds", "grouping", "group", "n_items", "mae", "mase", "rmsse", "rel_bias", "mape"]
        columns += [f"expected_{m}" for m in cfg.watch if f"expected_{m}" in shown.columns]
        for name in columns:
            table.add_column(name, justify="left" if name in ("grouping", "group") else "right")
        for row in shown.select(columns).iter_rows():
            table.add_row(
                *["" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
            )
        console.print(table)
    if report.alerts:
        watched = ", ".join(f"{m} threshold {t:g}" for m, t in cfg.watch.items())
        alerts = Table(title=f"Open accuracy alerts ({watched})")
        names = ("id", "new", "grouping", "group", "metric", "value", "expected", "periods")
        for name in (*names, "reason"):
            alerts.add_column(name)
        for a in report.alerts:
            alerts.add_row(
                str(a.alert_id),
                "new" if a.new else "",
                a.grouping,
                a.group,
                a.metric,
                "" if a.value is None else f"{a.value:.3f}",
                "" if a.expected is None else f"{a.expected:.3f}",
                str(a.periods),
                a.reason,
            )
        console.print(alerts)
    for a in report.closed:
        console.print(f"closed alert {a.alert_id}: {a.reason}", markup=False, highlight=False)
    if report.webhook:
        console.print(f"webhook: {report.webhook}", markup=False, highlight=False)
    if report.model_version is not None:
        console.print(report.override_fva_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(
        ("DEGRADED: " if report.degraded else "ok: ") + report.reason,
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if fail_on_alert and report.degraded:
        raise typer.Exit(code=1)


@web_app.command("hash-password")
def web_hash_password(
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="the password (asked for when not given)",
        ),
    ],
) -> None:
    """Print a password hash for ``[web.users]`` in the config file (scrypt, salted)."""
    from sparecast.service.web.auth import hash_password

    if len(password) < 8:
        _fail(SparecastError("the password is shorter than 8 characters; choose a longer one"))
    typer.echo(hash_password(password))


if __name__ == "__main__":  # pragma: no cover
    app()
