"""``sparecast store migrate | runs | prune``: look after the forecast history store.

The store is ``--url``, else ``store.url`` of the settings, else ``DIR/history.sqlite`` of
``--data DIR`` (default: the current directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sparecast.config import load_settings
from sparecast.core import horizon_text
from sparecast.errors import SparecastError
from sparecast.store.history import ForecastStore, default_store_url
from sparecast.urls import redact_url

__all__ = ["store_app"]

store_app = typer.Typer(
    help="Forecast history store: migrate the schema, list runs, delete old runs.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)  # messages hold long URLs: never wrapped
err_console = Console(stderr=True)

DataOpt = Annotated[
    Path, typer.Option("--data", "-d", help="output directory whose history.sqlite to use")
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="SQLAlchemy URL of the store (over store.url)")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML configuration file", exists=True)
]


def _store(data: Path, url: str | None, config: Path | None) -> ForecastStore:
    settings = load_settings(config)
    return ForecastStore(url or settings.store.url or default_store_url(data))


def _fail(exc: SparecastError) -> None:
    err_console.print("error:", style="bold red", end=" ")
    err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@store_app.command()
def migrate(data: DataOpt = Path("."), url: UrlOpt = None, config: ConfigOpt = None) -> None:
    """Create or upgrade the store's schema (Alembic upgrade head; safe to repeat)."""
    try:
        store = _store(data, url, config)
        before = store.schema_revision()
        store.migrate()
        after = store.schema_revision()
        store.dispose()
    except SparecastError as exc:
        _fail(exc)
        return
    state = "already at" if before == after else f"migrated from {before or 'empty'} to"
    console.print(f"{redact_url(store.url)}: {state} revision {after}", highlight=False)


@store_app.command()
def runs(
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="newest N runs")] = 10,
) -> None:
    """List the newest runs in the store."""
    try:
        store = _store(data, url, config)
        found = store.runs(limit)
        store.dispose()
    except SparecastError as exc:
        _fail(exc)
        return
    if not found:
        console.print(f"{redact_url(store.url)}: no runs", highlight=False)
        return
    table = Table(title=f"Runs in {redact_url(store.url)}")
    for column in (
        "run",
        "created (UTC)",
        "model version",
        "data",
        "items",
        "horizon",
        "quantiles",
    ):
        table.add_column(column, overflow="fold")  # folded, never cut: versions get copied
    for run in found:
        table.add_row(
            str(run.run_id),
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.model_version,
            f"{run.data_start} .. {run.data_end} ({run.freq})",
            f"{run.n_items:,}",
            horizon_text(run.horizon, run.freq),
            ", ".join(f"{q:g}" for q in run.quantile_levels) or "-",
        )
    console.print(table)


@store_app.command()
def prune(
    keep: Annotated[int, typer.Option("--keep", "-k", help="newest runs to keep", min=1)],
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete all runs but the newest KEEP (with their forecasts, actuals and accuracy)."""
    try:
        store = _store(data, url, config)
        deleted = store.delete_runs(keep_last=keep)
        store.dispose()
    except SparecastError as exc:
        _fail(exc)
        return
    console.print(
        f"{redact_url(store.url)}: deleted {len(deleted)} run(s)"
        + (f" ({', '.join(map(str, deleted))})" if deleted else ""),
        highlight=False,
    )
