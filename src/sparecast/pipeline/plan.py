"""The plan step: forecasts + purchasing data -> inventory policy, order suggestions, report.

``run_plan`` stages the forecasting run (or reuses ``DIR/forecasts.parquet``), reads the
purchasing tables of the same source (suppliers, purchase_orders, receipts, stock) or, for a
long-format demand file, the items file (``items_file``: lead times, MOQs, costs, stock; see
:mod:`sparecast.data.items`), computes the plan (:func:`sparecast.inventory.plan.compute_plan`,
no I/O), stages ``policy.parquet`` and ``inventory_report.html`` and then stores and commits
everything in one step.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, cast

import polars as pl

from sparecast._version import __version__
from sparecast.classify import classify
from sparecast.config import Settings
from sparecast.errors import DataValidationError, SourceError
from sparecast.inventory.overrides import (
    Override,
    apply_forecast_overrides,
    apply_policy_overrides,
)
from sparecast.inventory.plan import PlanResult, compute_plan
from sparecast.inventory.report import render_inventory_report
from sparecast.pipeline.chunks import ChunkedPanel
from sparecast.pipeline.console import plan_summary_lines
from sparecast.pipeline.distributed import DaskEngine, compute_engine
from sparecast.pipeline.load import LoadedData
from sparecast.pipeline.outputs import (
    FORECASTS_DIR,
    FORECASTS_FILE,
    OPEN_ORDERS_FILE,
    OUTPUT_FILES,
    PLAN_FILES,
    POLICY_FILE,
    REJECTED_FILE,
    REJECTED_ITEMS_FILE,
    REPORT_FILE,
    SUPPLIERS_FILE,
    read_forecasts,
)
from sparecast.pipeline.progress import Progress, Steps, no_progress, no_steps
from sparecast.pipeline.staging import RUN_JSON, Staging
from sparecast.pipeline.steps import RunOutcome, load_source, stage_run, store_and_commit
from sparecast.pipeline.store_step import check_not_loop_managed, store_url_for
from sparecast.store.history import ForecastStore
from sparecast.urls import redact_url

__all__ = [
    "PLAN_TABLES",
    "RUN_FILES",
    "PlanOutcome",
    "apply_plan_overrides",
    "plan_inputs_of",
    "planner_overrides",
    "recorded_items_file",
    "write_plan",
    "run_plan",
]

PLAN_TABLES: tuple[str, ...] = ("suppliers", "purchase_orders", "receipts", "stock")
"""The canonical tables the plan reads besides items and demand."""


@dataclass
class PlanOutcome:
    """A run of ``run_plan``: the plan, the forecasting run (None when forecasts were reused),
    the files written and lines for the console."""

    plan: PlanResult
    run: RunOutcome | None
    paths: dict[str, str]
    summary_lines: list[str]


def write_plan(
    output_dir: Path,
    plan: PlanResult,
    *,
    source: str,
    forecasts_reused: bool,
    work_dir: Path | None = None,
    base_run: Path | None = None,
    items_file: str | Path | None = None,
) -> dict[str, str]:
    """Write policy.parquet, inventory_report.html, suppliers.parquet, open_orders.parquet,
    rejected_purchasing.parquet (only if any)
    and run.json with its ``plan`` section into ``work_dir`` (the staging folder, default
    ``output_dir``); the paths returned are those in ``output_dir``. run.json starts from
    ``base_run`` (default: the run.json in ``work_dir``: the forecasting run just staged);
    ``items_file`` is recorded in its ``command`` (a retrain plans with it again)."""
    final_dir = output_dir
    output_dir = work_dir if work_dir is not None else output_dir
    paths: dict[str, str] = {}
    plan.policy.write_parquet(output_dir / POLICY_FILE)
    paths["policy"] = str(final_dir / POLICY_FILE)
    # supplier performance and open purchase orders (the web app's supplier and item pages)
    plan.lead_times.suppliers.write_parquet(output_dir / SUPPLIERS_FILE)
    paths["suppliers"] = str(final_dir / SUPPLIERS_FILE)
    plan.lead_times.open_orders.write_parquet(output_dir / OPEN_ORDERS_FILE)
    paths["open_orders"] = str(final_dir / OPEN_ORDERS_FILE)
    if plan.rejected.height:
        plan.rejected.write_parquet(output_dir / REJECTED_FILE)
        paths["rejected_purchasing"] = str(final_dir / REJECTED_FILE)
    html = render_inventory_report(plan, source=redact_url(source))
    (output_dir / REPORT_FILE).write_text(html, encoding="utf-8")
    paths["inventory_report"] = str(final_dir / REPORT_FILE)
    run_path = output_dir / RUN_JSON
    base = base_run if base_run is not None else run_path
    run: dict[str, Any] = {}
    if base.exists():
        try:
            run = json.loads(base.read_text())
        except json.JSONDecodeError:
            run = {}
    run.setdefault("sparecast_version", __version__)
    run["command"] = {"name": "plan", "reuse_forecasts": forecasts_reused}
    if items_file is not None:
        run["command"]["items"] = str(Path(items_file).expanduser().resolve())
    run["plan"] = {
        **plan.summary,
        "forecasts_reused": forecasts_reused,
        "notes": plan.notes,
        "timings_s": {k: round(v, 3) for k, v in plan.timings.items()},
        "outputs": dict(paths),
    }
    run_path.write_text(json.dumps(run, indent=2, default=str))
    paths["run"] = str(final_dir / RUN_JSON)
    return paths


def recorded_items_file(output_dir: Path) -> str | None:
    """The items file the plan in ``output_dir`` was made with (``run.json`` ``command.items``;
    a retrain plans with it again), None when there is none."""
    try:
        command = json.loads((output_dir / RUN_JSON).read_text()).get("command")
    except (OSError, ValueError):
        return None
    items = command.get("items") if isinstance(command, dict) else None
    return str(items) if items else None


def planner_overrides(settings: Settings, output_dir: Path, today: date) -> dict[str, Override]:
    """The planner overrides active on ``today`` in the store of ``output_dir`` (``store.url``
    or ``DIR/history.sqlite``); {} when the directory has no store yet. Read only: ``today``
    may be a replayed date (``data.today``), so expiry is recorded by the override commands and
    the API, which use the real date."""
    url = store_url_for(settings, output_dir)
    if not settings.store.url and not (output_dir / "history.sqlite").is_file():
        return {}
    store = ForecastStore(url)
    try:
        if store.schema_revision() is None:
            return {}
        if not store.is_migrated():
            store.migrate()
        return store.overrides(as_of=today)
    finally:
        store.dispose()


def apply_plan_overrides(
    plan: PlanResult, overrides: dict[str, Override], today: date
) -> PlanResult:
    """``plan`` with the policy overrides applied to its policy (``apply_policy_overrides``),
    a note per overridden item and ``summary["n_overrides"]``; unchanged without overrides."""
    if not overrides:
        return plan
    plan.policy = apply_policy_overrides(plan.policy, overrides, today)
    applied = plan.policy.filter(pl.col("override").is_not_null())
    lines = [
        f"{r['unique_id']}: {r['override']} by {r['override_by']} ({r['override_reason']}), "
        f"until {r['override_expires']}"
        for r in applied.head(20).iter_rows(named=True)
    ]
    more = f"; and {applied.height - 20} more" if applied.height > 20 else ""
    plan.notes.append(
        f"{applied.height} item(s) with a planner override (policy column override): "
        + "; ".join(lines)
        + more
    )
    plan.summary["n_overrides"] = applied.height
    plan.summary["n_to_order"] = int((plan.policy["suggested_order"] > 0).sum())
    plan.summary["order_value"] = float(plan.policy["order_value"].fill_null(0.0).sum())
    return plan


def _not_long_file(source: str) -> Callable[[LoadedData], None]:
    def check(loaded: LoadedData) -> None:
        if loaded.source_kind == "long_file" and loaded.plan_inputs is None:
            raise SourceError(
                f"{redact_url(source)} is a long-format file (unique_id, ds, y) without purchase "
                "orders or stock; `sparecast plan` needs an ERP database with the "
                "purchase_orders, receipts and stock tables, or --items FILE: the items' "
                "lead_time_days, lead_time_std_days, moq, lot_size, unit_cost, on_hand and "
                "on_order (use `sparecast run` to forecast it only)"
            )

    return check


def plan_inputs_of(loaded: LoadedData) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """The tables compute_plan reads (those of the items file, or the source's purchasing
    tables) and the notes of the items file: what ``plan`` and ``evaluate-plan`` plan on."""
    if loaded.plan_inputs is None:
        return dict(loaded.tables), []
    notes = list(loaded.plan_inputs.notes)
    report = loaded.reports.get("items")
    if report is not None and report.rows_rejected:
        counts = ", ".join(f"{r} {n}" for r, n in report.counts.items())
        notes.insert(
            0,
            f"{report.rows_rejected} row(s) of the items file rejected ({counts}), listed in "
            f"{REJECTED_ITEMS_FILE}: not used (an item without a kept row takes the defaults)",
        )
    return dict(loaded.plan_inputs.tables), notes


RUN_FILES: tuple[str, ...] = (
    "classification.parquet",
    "backtest.parquet",
    "backtest_summary.parquet",
    "selection.parquet",
    FORECASTS_FILE,
    FORECASTS_DIR,
    "rejected_rows.parquet",
)
"""A forecasting run's files that a plan on it (``forecasts_from``) stages beside the plan."""


def _stage_run_files(folder: Path, work_dir: Path) -> None:
    """Copy the run files of ``folder`` (those it has) into the staging folder."""
    for name in RUN_FILES:
        src = folder / name
        if src.is_dir():
            shutil.copytree(src, work_dir / name)
        elif src.is_file():
            shutil.copy2(src, work_dir / name)


def _record_forecasts_from(run_json: Path, folder: Path) -> None:
    """The staged run.json names the run the plan was made on: its ``store`` entry (the model
    version) and ``plan.forecasts_from``."""
    run = json.loads(run_json.read_text())
    try:
        kept = json.loads((folder / RUN_JSON).read_text())
    except (OSError, ValueError):
        kept = {}
    if isinstance(kept.get("store"), dict):
        run["store"] = kept["store"]
    run["plan"]["forecasts_from"] = str(folder)
    run["plan"]["model_version"] = (run.get("store") or {}).get("model_version")
    run_json.write_text(json.dumps(run, indent=2, default=str))


def run_plan(
    source: str,
    output_dir: Path,
    settings: Settings,
    *,
    reuse_forecasts: bool = False,
    full_extract: bool = False,
    progress: Progress = no_progress,
    steps: Steps = no_steps,
    items_file: str | Path | None = None,
    forecasts_from: Path | None = None,
) -> PlanOutcome:
    """Forecast (the whole forecasting run, or ``DIR/forecasts.parquet`` with
    ``reuse_forecasts``), then plan; everything is staged and replaces the directory's previous
    results in one step when it has succeeded (``sparecast.pipeline.staging``).
    ``items_file``: the items file of a long-format ``source`` (``sparecast plan --items``).
    ``forecasts_from``: plan on the forecasting run kept in that folder (a model version of
    the production loop, ``DIR/models/<version>``): its run files (forecasts, classification,
    backtest, selection) are staged with the plan and replace the directory's, and its store
    entry replaces run.json's ``store``, so that the directory shows the served model."""
    today = settings.data.today or date.today()
    run: RunOutcome | None = None
    forecasts: pl.DataFrame | None
    reuse = reuse_forecasts or forecasts_from is not None
    remove = PLAN_FILES if reuse_forecasts and forecasts_from is None else OUTPUT_FILES
    if reuse and items_file is not None:
        remove = (*remove, REJECTED_ITEMS_FILE)
    if not reuse:
        check_not_loop_managed(settings, output_dir, command="plan")
    with (
        Staging(output_dir, remove=remove) as staging,
        compute_engine(settings, progress=progress) as engine,  # this process, or Dask
    ):
        if reuse:
            try:
                forecasts = read_forecasts(forecasts_from or output_dir)
                if forecasts_from is not None:
                    _stage_run_files(forecasts_from, staging.dir)
            except FileNotFoundError:
                raise SourceError(
                    f"--reuse-forecasts: no forecasts.parquet (nor forecasts/ of a run on Dask) "
                    f"in {output_dir}; run `sparecast run` (or `sparecast plan` without "
                    "--reuse-forecasts) into this directory first"
                ) from None
            if not {"unique_id", "forecast"} <= set(forecasts.columns):
                raise SourceError(
                    f"the forecasts in {output_dir} lack the columns unique_id and forecast; "
                    "they are not sparecast forecasts: run without --reuse-forecasts"
                )
            steps("load")
            # on a cluster, a long Parquet file with its items file is read per chunk
            loaded = load_source(
                source,
                settings,
                output_dir,
                engine,
                per_chunk=items_file is not None,
                full_extract=full_extract,
                progress=progress,
                extra_tables=PLAN_TABLES,
                items_file=items_file,
                forecasting=False,
            )
            if isinstance(loaded.panel, ChunkedPanel):
                # each item's history mean (the rate of an item without a forecast)
                loaded.panel = cast(DaskEngine, engine).with_history(
                    loaded.panel, 1, settings.backtest.seasonality
                )
            _not_long_file(source)(loaded)
            item_rejects = loaded.rejected.get("items")
            if items_file is not None and item_rejects is not None and item_rejects.height:
                item_rejects.write_parquet(staging.dir / REJECTED_ITEMS_FILE)
            classification = (
                engine.classify(loaded.panel, settings.tiers.thresholds())
                if isinstance(loaded.panel, ChunkedPanel)
                else classify(loaded.panel, thresholds=settings.tiers.thresholds())
            )
        else:
            run = stage_run(
                source,
                output_dir,
                staging.dir,
                settings,
                full_extract=full_extract,
                progress=progress,
                steps=steps,
                extra_tables=PLAN_TABLES,
                command="plan",
                after_load=_not_long_file(source),
                items_file=items_file,
                engine=engine,
            )
            loaded, classification = run.loaded, run.result.classification
            forecasts = run.result.forecasts
        steps("plan")
        tables, item_notes = plan_inputs_of(loaded)
        if loaded.source_kind == "database" and not loaded.extract_info.get("full", True):
            # Incremental extraction appends purchase orders by order date, so changes to older
            # lines (cancelled, re-quantified, re-promised) would never be seen: open quantities
            # must come from the current table, re-read in full (receipts only ever grow).
            tables["purchase_orders"] = loaded.source.read_tables(["purchase_orders"])[
                "purchase_orders"
            ]
        overrides = planner_overrides(settings, output_dir, today)
        planner: Callable[..., Any] = engine.plan_items
        history_mean = None
        if isinstance(loaded.panel, ChunkedPanel) and isinstance(engine, DaskEngine):
            # the history stays on the workers: each plan chunk reads its rows
            planner = partial(engine.plan_items, panel=loaded.panel)
            history_mean = loaded.panel.means
        planned = forecasts
        if overrides and forecasts is not None:  # the forecast levels/multipliers
            planned = apply_forecast_overrides(forecasts, overrides, today)
        plan = compute_plan(
            loaded.panel,
            classification,
            planned,
            tables,
            settings,
            today=today,
            progress=progress,
            planner=planner,
            history_mean=history_mean,
        )
        plan.notes[:0] = item_notes
        plan = apply_plan_overrides(plan, overrides, today)
        if settings.data.strict and plan.rejected.height:
            raise DataValidationError(
                f"{plan.rejected.height} purchasing/stock row(s) rejected ("
                + ", ".join(f"{k} {v}" for k, v in plan.summary["rejected_by_reason"].items())
                + "); fix them in the source or run without --strict"
            )
        steps("write plan")
        paths = write_plan(
            output_dir,
            plan,
            source=source,
            forecasts_reused=reuse,
            work_dir=staging.dir,
            base_run=output_dir / RUN_JSON if reuse else None,
            items_file=items_file,
        )
        if forecasts_from is not None:
            _record_forecasts_from(staging.dir / RUN_JSON, forecasts_from)
        store_and_commit(staging, run, settings, source=source, progress=progress, steps=steps)
    return PlanOutcome(plan, run, paths, plan_summary_lines(plan))
