"""``sparecast overrides set | list | delete | history | fva``: planner overrides in the store.

The store is ``--url``, else ``store.url`` of the settings, else ``DIR/history.sqlite`` of
``--data DIR``. ``fva`` scores the overridden forecasts against the model's on the demand that
actually happened (``sparecast.evaluate.fva``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sparecast.config import load_settings
from sparecast.errors import SparecastError, StoreError
from sparecast.inventory.overrides import Override
from sparecast.store.history import ForecastStore, default_store_url
from sparecast.urls import redact_text, redact_url

__all__ = ["overrides_app"]

overrides_app = typer.Typer(
    help="Planner overrides: set, list, delete, history, forecast value added (fva).",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
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
ByOpt = Annotated[str, typer.Option("--by", help="who does it (user name)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date like 2027-03-01", param_hint=option
        ) from None


@contextmanager
def _opened(data: Path, url: str | None, config: Path | None) -> Iterator[ForecastStore]:
    """The migrated store of ``data`` (errors end the command with exit code 2)."""
    store: ForecastStore | None = None
    try:
        settings = load_settings(config)
        chosen = url or settings.store.url
        if chosen is None and not (data / "history.sqlite").is_file():
            raise StoreError(
                f"no forecast store in {data} (history.sqlite): run `sparecast run --output "
                f"{data}` or `sparecast plan` into it first, or give --url"
            )
        store = ForecastStore(chosen or default_store_url(data))
        if not store.is_migrated():
            store.migrate()
        yield store
    except SparecastError as exc:
        err_console.print("error:", style="bold red", end=" ")
        err_console.print(redact_text(str(exc)), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    finally:
        if store is not None:
            store.dispose()


def _kinds_text(o: Override) -> str:
    parts = []
    if o.forecast_level is not None:
        parts.append(f"level {o.forecast_level:g}")
    if o.forecast_multiplier is not None:
        parts.append(f"x{o.forecast_multiplier:g}")
    if o.reorder_point is not None:
        parts.append(f"ROP {o.reorder_point:g}")
    if o.order_up_to is not None:
        parts.append(f"up to {o.order_up_to:g}")
    if o.do_not_order:
        parts.append("do not order")
    if o.phase_out_date is not None:
        parts.append(f"phase out {o.phase_out_date}")
    return ", ".join(parts)


@overrides_app.command("set")
def set_cmd(
    item: Annotated[str, typer.Argument(help="item id")],
    by: ByOpt,
    reason: Annotated[str, typer.Option("--reason", help="why")],
    expires: Annotated[
        str, typer.Option("--expires", help="first date it no longer applies (YYYY-MM-DD)")
    ],
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
    multiplier: Annotated[
        float | None, typer.Option("--multiplier", help="scale the forecast (> 0)")
    ] = None,
    level: Annotated[
        float | None, typer.Option("--level", help="forecast level, units per period")
    ] = None,
    reorder_point: Annotated[
        float | None, typer.Option("--reorder-point", help="fixed reorder point (units)")
    ] = None,
    order_up_to: Annotated[
        float | None, typer.Option("--order-up-to", help="fixed order-up-to level (units)")
    ] = None,
    do_not_order: Annotated[
        bool, typer.Option("--do-not-order", help="no suggested orders while it applies")
    ] = False,
    phase_out: Annotated[
        str | None, typer.Option("--phase-out", help="no orders from this date (YYYY-MM-DD)")
    ] = None,
) -> None:
    """Set ITEM's override (replacing its previous one; the history keeps every version)."""
    override = Override(
        item_id=item,
        set_by=by,
        reason=reason,
        expires=_date(expires, "--expires"),  # type: ignore[arg-type]
        forecast_level=level,
        forecast_multiplier=multiplier,
        reorder_point=reorder_point,
        order_up_to=order_up_to,
        do_not_order=do_not_order,
        phase_out_date=_date(phase_out, "--phase-out"),
    )
    with _opened(data, url, config) as store:
        store.expire_overrides()
        stored = store.set_override(override)
    console.print(
        f"override of {item} set ({_kinds_text(stored)}) by {by} until {stored.expires}, "
        f"revision {stored.revision}",
        highlight=False,
        markup=False,
    )


def _show(
    summaries: list[dict[str, Any]],
    rows: list[tuple[str, ...]],
    *,
    columns: tuple[str, ...],
    title: str,
    empty: str,
    as_json: bool,
) -> None:
    """Print ``summaries`` as JSON, or ``rows`` as a table (``empty`` when there are none)."""
    if as_json:
        console.print_json(json.dumps(summaries))
        return
    if not rows:
        console.print(empty, highlight=False)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@overrides_app.command("list")
def list_cmd(
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the overrides that apply today (expired ones are moved to the history first)."""
    with _opened(data, url, config) as store:
        store.expire_overrides()
        found = store.overrides(as_of=date.today())
        where = redact_url(store.url)
    _show(
        [o.summary() for o in found.values()],
        [
            (
                o.item_id,
                _kinds_text(o),
                o.set_by,
                o.reason,
                o.created_at.strftime("%Y-%m-%d %H:%M"),
                str(o.expires),
                str(o.revision),
            )
            for o in found.values()
        ],
        columns=("item", "override", "by", "reason", "set (UTC)", "expires", "revision"),
        title=f"Overrides in {where}",
        empty=f"{where}: no overrides",
        as_json=as_json,
    )


@overrides_app.command("delete")
def delete_cmd(
    item: Annotated[str, typer.Argument(help="item id")],
    by: ByOpt,
    reason: Annotated[str, typer.Option("--reason", help="why")] = "",
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Remove ITEM's override (recorded in its history, by whom and why)."""
    with _opened(data, url, config) as store:
        store.expire_overrides()
        removed = store.delete_override(item, by=by, note=reason)
    console.print(
        f"override of {item} ({_kinds_text(removed)}) deleted by {by}",
        highlight=False,
        markup=False,
    )


@overrides_app.command("history")
def history_cmd(
    item: Annotated[str | None, typer.Argument(help="item id (default: every item)")] = None,
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every change of the overrides (set, changed, deleted, expired), oldest first."""
    with _opened(data, url, config) as store:
        store.expire_overrides()
        events = store.override_history(item)
        where = redact_url(store.url)
    _show(
        [e.summary() for e in events],
        [
            (
                str(e.event_id),
                e.recorded_at.strftime("%Y-%m-%d %H:%M"),
                e.override.item_id,
                e.action,
                e.recorded_by,
                _kinds_text(e.override),
                e.note or e.override.reason,
                str(e.override.expires),
            )
            for e in events
        ],
        columns=("#", "when (UTC)", "item", "action", "by", "override", "reason", "expires"),
        title=f"Override history in {where}",
        empty=f"{where}: no override history" + (f" for {item}" if item else ""),
        as_json=as_json,
    )


@overrides_app.command("fva")
def fva_cmd(
    data: DataOpt = Path("."),
    url: UrlOpt = None,
    config: ConfigOpt = None,
    run: Annotated[
        int | None, typer.Option("--run", help="one run id (default: every stored run)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Forecast value added of the overrides: the overridden forecast against the model's on
    the actual demand stored since (MAE and RMSSE, > 0: the overrides helped)."""
    with _opened(data, url, config) as store:
        result = store.override_fva([run] if run is not None else None)
    if as_json:
        console.print_json(
            json.dumps({"summary": result.summary, "items": result.per_item.to_dicts()})
        )
        return
    s = result.summary
    if not s["n_items"]:
        console.print(
            "no overridden forecast has known actuals yet: FVA needs a forecast override that "
            "applied on dates whose demand a later run stored"
        )
        return

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    table = Table(title="Forecast value added of overrides (model - override; > 0: helped)")
    for column in ("item", "override", "periods", "MAE model", "MAE override", "MAE FVA"):
        table.add_column(column)
    for column in ("RMSSE model", "RMSSE override", "RMSSE FVA"):
        table.add_column(column)
    for r in result.per_item.iter_rows(named=True):
        table.add_row(
            r["unique_id"],
            r["override"],
            str(r["n_periods"]),
            num(r["mae_model"]),
            num(r["mae_override"]),
            num(r["mae_fva"]),
            num(r["rmsse_model"]),
            num(r["rmsse_override"]),
            num(r["rmsse_fva"]),
        )
    table.add_row(
        "all",
        "",
        str(s["n_periods"]),
        num(s["mae_model"]),
        num(s["mae_override"]),
        num(s["mae_fva"]),
        num(s["rmsse_model"]),
        num(s["rmsse_override"]),
        num(s["rmsse_fva"]),
        style="bold",
    )
    console.print(table)
    console.print(
        f"{s['n_items']} overridden item(s): the override helped {s['share_helped']:.0%}, "
        f"hurt {s['share_hurt']:.0%} (MAE)",
        highlight=False,
    )
