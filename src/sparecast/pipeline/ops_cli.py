"""``sparecast pipeline run daily|weekly | serve`` and ``sparecast models status | history |
rollback``: the production loop from the command line.

``pipeline run`` calls the plain steps (``pipeline/loop.py``) directly: no Prefect server (its
ephemeral server costs about 15 s); ``pipeline serve`` serves the Prefect flows
(``pipeline/flows.py``) on the ``[pipeline]`` cron strings. Needs the ``[ops]`` extra.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sparecast.errors import SparecastError
from sparecast.store.registry import require_ops
from sparecast.urls import redact_text

__all__ = ["pipeline_app", "models_app"]

pipeline_app = typer.Typer(
    help="The production loop: daily extraction and monitoring, weekly retraining with "
    "champion/challenger promotion (Prefect flows, MLflow registry).",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="The model registry: champion and challenger, versions, promotions and rollbacks.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

DataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        "-d",
        help="output directory of `sparecast run`/`plan` (its run.json names "
        "the source and the configuration)",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML file with [pipeline], [registry] (and [store])", exists=True
    ),
]
ChallengerOpt = Annotated[
    Path | None,
    typer.Option(
        "--challenger-config",
        help="TOML settings of the challenger (default: [pipeline] challenger_config, else the "
        "served configuration)",
        exists=True,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _fail(exc: SparecastError) -> None:
    err_console.print("error:", style="bold red", end=" ")
    err_console.print(redact_text(str(exc)), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-10-31") from None


@pipeline_app.command("run")
def run_cmd(
    flow: Annotated[str, typer.Argument(help="daily or weekly")],
    data: DataOpt,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="use the data up to this date (YYYY-MM-DD)")
    ] = None,
    config: ConfigOpt = None,
    challenger_config: ChallengerOpt = None,
) -> None:
    """Run the daily or weekly flow once, now, without a Prefect server (the same steps)."""
    if flow not in ("daily", "weekly"):
        raise typer.BadParameter(f"the flow is daily or weekly, not {flow!r}")
    try:
        require_ops("mlflow")
        from sparecast.pipeline import loop

        ctx = loop.loop_context(
            data, config=config, as_of=_date(as_of), challenger_config=challenger_config
        )
        steps = loop.run_daily if flow == "daily" else loop.run_weekly
        for report in steps(ctx):
            console.print(
                f"{report.message}  [{report.seconds:.1f} s]", markup=False, highlight=False
            )
    except SparecastError as exc:
        _fail(exc)


@pipeline_app.command("serve")
def serve_cmd(data: DataOpt, config: ConfigOpt = None) -> None:
    """Serve the daily and weekly flows on the [pipeline] cron strings (Prefect serve)."""
    try:
        require_ops("prefect")
        require_ops("mlflow")
        from sparecast.config import load_settings
        from sparecast.pipeline import flows, loop

        ctx = loop.loop_context(data, config=config)
        p = ctx.settings.pipeline
        console.print(
            f"serving sparecast-daily ({p.daily_cron}) and sparecast-weekly ({p.weekly_cron}), "
            f"{p.timezone}, for {data}",
            markup=False,
        )
        flows.serve_schedules(
            data, load_settings(config) if config else ctx.settings, config=config
        )
    except SparecastError as exc:
        _fail(exc)


def _ctx(data: Path, config: Path | None):  # type: ignore[no-untyped-def]
    require_ops("mlflow")
    from sparecast.pipeline import loop

    return loop, loop.loop_context(data, config=config)


@models_app.command("status")
def status_cmd(data: DataOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The served model, the aliases and every registered version."""
    try:
        loop, ctx = _ctx(data, config)
        status = loop.models_status(ctx)
    except SparecastError as exc:
        _fail(exc)
        return
    if as_json:
        console.print_json(json.dumps(status, default=str))
        return
    console.print(f"served: {status['served']}", markup=False)
    for alias, row in status["aliases"].items():
        console.print(
            f"{alias}: {row['model_version']} (since {row['set_at'][:19]}; {row['reason']})",
            markup=False,
        )
    table = Table("version", "store model version", "aliases", "decision", "data end")
    named = {v: a for a, v in status["registry_aliases"].items()}
    for v in status["versions"]:
        table.add_row(
            v["version"],
            v["store_version"],
            named.get(v["version"], ""),
            v["tags"].get("sparecast.decision", ""),
            v["tags"].get("sparecast.data_end", ""),
        )
    console.print(table)


@models_app.command("history")
def history_cmd(
    data: DataOpt,
    config: ConfigOpt = None,
    limit: Annotated[int | None, typer.Option(help="only the newest N events")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every promotion, rollback and kept champion with its reason, oldest first."""
    try:
        loop, ctx = _ctx(data, config)
        events = loop.models_history(ctx, limit)
    except SparecastError as exc:
        _fail(exc)
        return
    if as_json:
        console.print_json(json.dumps(events, default=str))
        return
    table = Table("at", "action", "alias", "model version", "before", "reason")
    for e in events:
        table.add_row(
            e["at"][:19],
            e["action"],
            e["alias"],
            e["model_version"],
            e["previous_version"] or "",
            e["reason"],
        )
    console.print(table)


@models_app.command("rollback")
def rollback_cmd(
    data: DataOpt,
    reason: Annotated[str, typer.Option(help="why (recorded in the history)")],
    config: ConfigOpt = None,
) -> None:
    """Restore the previous champion now (the API serves it within its refresh interval);
    a directory with a plan is re-planned on it."""
    try:
        loop, ctx = _ctx(data, config)
        console.print(loop.rollback(ctx, reason).message, markup=False)
        console.print(loop.replan_if_planned(ctx).message, markup=False)
    except SparecastError as exc:
        _fail(exc)
