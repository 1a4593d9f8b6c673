"""The pipeline run as plain functions: check -> load -> validate -> panel -> classify ->
backtest -> select -> forecast -> write (into a staging folder) -> store -> commit (files moved
into place). The CLI calls ``run_pipeline`` directly; ``run_plan`` stages the same run and adds
the plan before it commits; scheduled flows wrap the same steps (``load``, ``core``,
``outputs``, ``console``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from sparecast.config import Settings
from sparecast.data.items import plan_tables, read_items_file, validate_items_file
from sparecast.data.sources import FileSource, open_source
from sparecast.methods import get_method
from sparecast.pipeline.chunks import ChunkedPanel
from sparecast.pipeline.console import (
    horizon_line,
    router_lines,
    selection_score,
    summary_lines,
)
from sparecast.pipeline.core import CoreResult, make_router, reported_methods, run_core
from sparecast.pipeline.distributed import DaskEngine, NotChunkable, chunk_bounds, compute_engine
from sparecast.pipeline.engine import Engine
from sparecast.pipeline.load import LoadedData, load_panel
from sparecast.pipeline.monitor import run_items_frame
from sparecast.pipeline.outputs import OUTPUT_FILES, with_forecast_quantiles, write_outputs
from sparecast.pipeline.progress import Progress, Steps, no_progress, no_steps
from sparecast.pipeline.staging import Staging
from sparecast.pipeline.store_step import check_not_loop_managed, check_store, store_run

__all__ = ["RunOutcome", "run_pipeline", "stage_run", "store_and_commit"]


@dataclass
class RunOutcome:
    """What a pipeline run produced: the loaded data, the core result, files and summary lines."""

    loaded: LoadedData
    result: CoreResult
    paths: dict[str, str]
    summary_lines: list[str]
    timings: dict[str, float]


def stage_run(
    source: str,
    output_dir: Path,
    work_dir: Path,
    settings: Settings,
    *,
    with_forecast: bool = True,
    full_extract: bool = False,
    progress: Progress = no_progress,
    steps: Steps = no_steps,
    extra_tables: tuple[str, ...] = (),
    command: str = "run",
    after_load: Callable[[LoadedData], None] | None = None,
    items_file: str | Path | None = None,
    engine: Engine | None = None,
) -> RunOutcome:
    """Check the store, load and validate the source, compute and write the run's files into
    ``work_dir`` (a staging folder of ``output_dir``); nothing is stored or committed yet.
    On a cluster, a long Parquet file is loaded per chunk on the workers when it can be
    (:func:`load_on_workers`), else in one piece here.
    ``after_load``: a check of the loaded data before the long computation; ``items_file``:
    the items file of a long-format source (``load_panel``); ``engine``: where the core runs
    (default: the one ``settings.compute`` asks for, open for this run only)."""
    timings: dict[str, float] = {}
    steps("check")
    if with_forecast:
        check_store(settings, output_dir)  # fails fast, before the computation
    with (
        nullcontext(engine) if engine is not None else compute_engine(settings, progress=progress)
    ) as eng:  # this process, or Dask
        steps("load")
        t0 = time.perf_counter()
        loaded = load_source(
            source,
            settings,
            output_dir,
            eng,
            per_chunk=items_file is not None or not extra_tables,  # a plan: of a file + items
            full_extract=full_extract,
            progress=progress,
            extra_tables=extra_tables,
            items_file=items_file,
        )
        if after_load is not None:
            after_load(loaded)
        timings["load_s"] = time.perf_counter() - t0
        steps("compute")
        result = run_core(
            loaded.panel, settings, with_forecast=with_forecast, progress=progress, engine=eng
        )
        if result.forecasts is not None and settings.quantiles:
            t0 = time.perf_counter()
            result.forecasts = with_forecast_quantiles(
                loaded.panel, result.forecasts, settings.quantiles, engine=eng
            )
            result.timings["quantiles_s"] = time.perf_counter() - t0
        if isinstance(loaded.panel, ChunkedPanel) and isinstance(eng, DaskEngine):
            # what the store and monitoring take of the history, per chunk on the workers
            n_actuals = settings.store.actuals_periods or settings.horizon_for(loaded.panel)
            loaded.panel = eng.with_history(loaded.panel, n_actuals, settings.backtest.seasonality)
    timings.update(result.timings)
    steps("write")
    t0 = time.perf_counter()
    paths = write_outputs(
        output_dir,
        loaded,
        result,
        settings,
        source=source,
        timings=timings,
        command=command,
        work_dir=work_dir,
        progress=progress,
    )
    timings["write_s"] = time.perf_counter() - t0
    lines = []
    if result.summary is not None and result.backtest is not None:
        overall = selection_score(result.backtest, result.selection)
        lines = summary_lines(result.summary, settings, overall, result.selection)
    elif result.selection.height:
        lines = router_lines(result.selection, settings)
    if result.horizon is not None:
        lines.insert(0, horizon_line(result.horizon, loaded.panel.freq, result.backtest))
    return RunOutcome(loaded, result, paths, lines, timings)


def load_source(
    source: str,
    settings: Settings,
    output_dir: Path,
    engine: Engine,
    *,
    per_chunk: bool,
    full_extract: bool = False,
    progress: Progress = no_progress,
    extra_tables: tuple[str, ...] = (),
    items_file: str | Path | None = None,
    forecasting: bool = True,
) -> LoadedData:
    """The source's data for a run or a plan: per chunk on the workers when ``per_chunk`` and
    :func:`load_on_workers` can, else in one piece here by ``load_panel`` (a cluster run then
    says why in ``extract_info["load"]``, for run.json). One rule for ``run`` and ``plan``."""
    chunked: LoadedData | str | None = None
    if per_chunk:
        chunked = load_on_workers(
            source,
            settings,
            engine,
            items_file=items_file,
            plan=bool(extra_tables),
            forecasting=forecasting,
        )
    if isinstance(chunked, LoadedData):
        return chunked
    loaded = load_panel(
        source,
        settings,
        output_dir,
        full_extract=full_extract,
        progress=progress,
        extra_tables=extra_tables,
        items_file=items_file,
    )
    if chunked:  # why a cluster run loaded the file in one piece here
        loaded.extract_info["load"] = f"in one piece on the client: {chunked}"
    return loaded


def load_on_workers(
    source: str,
    settings: Settings,
    engine: Engine,
    *,
    items_file: str | Path | None = None,
    plan: bool = False,
    forecasting: bool = True,
) -> LoadedData | str | None:
    """``source`` loaded per chunk on the workers of ``engine`` (``DaskEngine.load_file``:
    the client holds the item ids and the calendar, not the demand matrix); else why a
    cluster run loads this long-format file in one piece here (a method that learns across
    items and does not train on the cluster needs the whole panel; a file whose chunks could
    differ from the whole: ``NotChunkable``; for the ``plan``, a setting that plans all items
    at once; an items file with categories), for run.json's ``extract.load``; None without a
    cluster or for a database. ``items_file``: validated here as ``load_panel`` validates
    it; its items without demand join the panel with zero demand and it makes
    ``LoadedData.plan_inputs``.
    ``forecasting``: the run forecasts with the settings' methods (not ``plan
    --reuse-forecasts``), so that a method learning across items needs the whole panel."""
    if not isinstance(engine, DaskEngine):
        return None
    src = open_source(source)
    if not isinstance(src, FileSource):
        return None
    glob = [
        n
        for n in reported_methods(make_router(settings))
        if get_method(n).needs_panel and not engine.trains_on_cluster(n, settings.method_params)
    ]
    if glob and forecasting:  # the global methods that train on the cluster read per chunk
        return f"{glob} learn across items and need the whole panel"
    inv = settings.inventory
    if plan and inv.service_mode == "aggregate":
        return "inventory.service_mode = aggregate optimises the plan over all items at once"
    if plan and inv.sparse_policy == "value":
        return "inventory.sparse_policy = value stocks the sparse items as one pool"
    items = None
    if items_file is not None:
        raw_items = read_items_file(items_file)
        items = validate_items_file(raw_items, target_column=inv.item_target_column)
        if items.valid["category"].drop_nulls().len():
            return (
                "the items file's categories set the typical sizes of the extreme-quantity rule "
                "per category"
            )
    try:
        got = engine.load_file(str(src.path), settings)
    except NotChunkable as exc:
        return str(exc)
    panel = got.panel
    reports = {"demand": got.report}
    rejected = {"demand": got.rejected}
    plan_inputs = None
    if items is not None:
        reports = {"items": items.report, **reports}
        rejected = {"items": items.rejected, **rejected}
        if settings.data.strict:
            items.report.raise_if_rejected()
        demand_ids = [str(i) for i in panel.item_ids]
        plan_inputs = plan_tables(
            items.valid,
            demand_ids,
            columns=list(raw_items.columns),
            today=settings.data.today or date.today(),
            moq_column=inv.moq_column,
            lot_size_column=inv.lot_size_column,
        )
        # every item of the demand and of the items file, the latter with zero demand
        known = sorted(set(demand_ids) | set(items.valid["item_id"].to_list()))
        attributes = pl.DataFrame({"unique_id": known}).join(
            items.valid.select(pl.col("item_id").alias("unique_id"), "category", "unit_cost"),
            on="unique_id",
            how="left",
            maintain_order="left",
        )
        panel = panel.with_items(known, chunk_bounds(len(known), engine.chunk_items), attributes)
    return LoadedData(
        panel,
        {},
        reports,
        rejected,
        "long_file",
        src,
        {"load": f"per chunk on the workers ({len(panel.sources)} chunks)"},
        plan_inputs,
    )


def store_and_commit(
    staging: Staging,
    run: RunOutcome | None,
    settings: Settings,
    *,
    source: str,
    progress: Progress = no_progress,
    steps: Steps = no_steps,
) -> None:
    """The staged files are complete: write ``run`` (if any) into the store - the commit point
    - then commit the staging folder (files moved into place, run.json last)."""
    staging.prepare()
    stored = None
    if run is not None:
        steps("store")
        stored = store_run(
            staging.output_dir,
            run.loaded.panel,
            run.result.forecasts,
            run.result.summary,
            settings,
            source=source,
            notes=run.result.notes,
            progress=progress,
            token=staging.token,
            items=_monitoring_items(run, settings),
        )
    if stored is not None and run is not None:  # the forecast history store
        run.paths["store"] = stored.url
        run.timings["store_s"] = stored.seconds
    steps("commit")
    staging.commit(stored.to_dict() if stored is not None else None, steps)
    steps("done")


def _monitoring_items(run: RunOutcome, settings: Settings) -> pl.DataFrame | None:
    """The per-item attributes accuracy monitoring groups and scales by (None: no forecasts)."""
    if run.result.forecasts is None:
        return None
    return run_items_frame(
        run.loaded.panel,
        run.result.classification,
        run.result.selection,
        run.result.backtest,
        seasonality=settings.backtest.seasonality,
    )


def run_pipeline(
    source: str,
    output_dir: Path,
    settings: Settings,
    *,
    with_forecast: bool = True,
    full_extract: bool = False,
    progress: Progress = no_progress,
    steps: Steps = no_steps,
    extra_tables: tuple[str, ...] = (),
) -> RunOutcome:
    """Load, validate, classify, backtest, forecast, store and write everything into
    ``output_dir`` atomically (staging folder; the previous results stay until this run has
    succeeded; files of the previous run this one does not produce are removed then).
    LoopManagedError for a directory the production loop serves (``check_not_loop_managed``)."""
    check_not_loop_managed(settings, output_dir, command="run" if with_forecast else "backtest")
    with Staging(output_dir, remove=OUTPUT_FILES) as staging:
        run = stage_run(
            source,
            output_dir,
            staging.dir,
            settings,
            with_forecast=with_forecast,
            full_extract=full_extract,
            progress=progress,
            steps=steps,
            extra_tables=extra_tables,
            command="run" if with_forecast else "backtest",
        )
        store_and_commit(staging, run, settings, source=source, progress=progress, steps=steps)
    return run
