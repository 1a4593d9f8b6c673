"""The pipeline run as plain functions: load -> validate -> panel -> classify -> backtest ->
select -> forecast -> write -> store. The CLI calls ``run_pipeline`` directly; scheduled flows wrap
the same steps (``load``, ``core``, ``outputs``, ``console``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sparecast.config import Settings
from sparecast.pipeline.console import router_lines, selection_score, summary_lines
from sparecast.pipeline.core import CoreResult, run_core
from sparecast.pipeline.load import LoadedData, load_panel
from sparecast.pipeline.outputs import prepare_output_dir, with_forecast_quantiles, write_outputs
from sparecast.pipeline.progress import Progress, no_progress
from sparecast.pipeline.store_step import store_run

__all__ = ["RunOutcome", "run_pipeline"]


@dataclass
class RunOutcome:
    """What a pipeline run produced: the loaded data, the core result, files and summary lines."""

    loaded: LoadedData
    result: CoreResult
    paths: dict[str, str]
    summary_lines: list[str]
    timings: dict[str, float]


def run_pipeline(
    source: str,
    output_dir: Path,
    settings: Settings,
    *,
    with_forecast: bool = True,
    full_extract: bool = False,
    progress: Progress = no_progress,
    extra_tables: tuple[str, ...] = (),
) -> RunOutcome:
    """Load, validate, classify, backtest, forecast and write everything into ``output_dir``."""
    timings: dict[str, float] = {}
    prepare_output_dir(output_dir)
    t0 = time.perf_counter()
    loaded = load_panel(
        source,
        settings,
        output_dir,
        full_extract=full_extract,
        progress=progress,
        extra_tables=extra_tables,
    )
    timings["load_s"] = time.perf_counter() - t0
    result = run_core(loaded.panel, settings, with_forecast=with_forecast, progress=progress)
    if result.forecasts is not None and settings.quantiles:
        t0 = time.perf_counter()
        result.forecasts = with_forecast_quantiles(
            loaded.panel, result.forecasts, settings.quantiles
        )
        result.timings["quantiles_s"] = time.perf_counter() - t0
    timings.update(result.timings)
    t0 = time.perf_counter()
    paths = write_outputs(output_dir, loaded, result, settings, source=source, timings=timings)
    timings["write_s"] = time.perf_counter() - t0
    stored = store_run(
        output_dir,
        loaded.panel,
        result.forecasts,
        result.summary,
        settings,
        source=source,
        notes=result.notes,
        progress=progress,
    )
    if stored is not None:  # the forecast history store (history.sqlite or store.url)
        paths["store"] = stored.url
        timings["store_s"] = stored.seconds
    lines = []
    if result.summary is not None and result.backtest is not None:
        overall = selection_score(result.backtest, result.selection)
        lines = summary_lines(result.summary, settings, overall, result.selection)
    elif result.selection.height:
        lines = router_lines(result.selection, settings)
    return RunOutcome(loaded, result, paths, lines, timings)
