"""Writing a run's outputs: the output file names (one list, the plan's files included),
preparing the output directory, the forecast quantile columns, the Parquet files and run.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from sparecast._version import __version__
from sparecast.config import Settings
from sparecast.core import PERIOD_UNITS
from sparecast.data.panel import DemandPanel
from sparecast.pipeline.core import CoreResult
from sparecast.pipeline.distributed import uses_cluster
from sparecast.pipeline.engine import LOCAL, Engine
from sparecast.pipeline.load import LoadedData
from sparecast.pipeline.progress import Progress, no_progress
from sparecast.pipeline.staging import RUN_JSON
from sparecast.urls import redact_url, redact_values

__all__ = [
    "FORECASTS_FILE",
    "FORECASTS_DIR",
    "read_forecasts",
    "write_forecasts",
    "POLICY_FILE",
    "REPORT_FILE",
    "REJECTED_FILE",
    "REJECTED_ITEMS_FILE",
    "SUPPLIERS_FILE",
    "OPEN_ORDERS_FILE",
    "PLAN_FILES",
    "OUTPUT_FILES",
    "quantile_column",
    "with_forecast_quantiles",
    "write_outputs",
]


FORECASTS_FILE = "forecasts.parquet"
FORECASTS_DIR = "forecasts"
"""On a Dask cluster the forecasts are written as ``forecasts/part-00000.parquet``, ... (one
part per chunk of items, in panel order) instead of one ``forecasts.parquet``."""
POLICY_FILE = "policy.parquet"
REPORT_FILE = "inventory_report.html"
REJECTED_FILE = "rejected_purchasing.parquet"
REJECTED_ITEMS_FILE = "rejected_items.parquet"
SUPPLIERS_FILE = "suppliers.parquet"
OPEN_ORDERS_FILE = "open_orders.parquet"
PLAN_FILES: tuple[str, ...] = (
    POLICY_FILE,
    REPORT_FILE,
    REJECTED_FILE,
    SUPPLIERS_FILE,
    OPEN_ORDERS_FILE,
)
"""The files the plan step (sparecast.pipeline.plan) writes."""
# Files a run writes; its commit removes those of an earlier run it does not produce, so that no
# stale result survives (sparecast.pipeline.staging).
OUTPUT_FILES: tuple[str, ...] = (
    "classification.parquet",
    "backtest.parquet",
    "backtest_summary.parquet",
    "selection.parquet",
    FORECASTS_FILE,
    FORECASTS_DIR,
    "rejected_rows.parquet",
    REJECTED_ITEMS_FILE,
    RUN_JSON,
    *PLAN_FILES,
)


def quantile_column(level: float) -> str:
    """Name of the forecast column of quantile ``level``: 0.9 -> ``q90``, 0.975 -> ``q97.5``."""
    return f"q{round(level * 100, 6):g}"


def with_forecast_quantiles(
    panel: DemandPanel, forecasts: pl.DataFrame, levels: list[float], *, engine: Engine = LOCAL
) -> pl.DataFrame:
    """``forecasts`` with one column per quantile level of each period's demand around the
    chosen ``forecast`` (sparecast.methods.quantiles.forecast_quantiles: compound
    Bernoulli-size from the item's history, integer for integer demand), computed by
    ``engine`` (per chunk on the workers on a Dask cluster)."""
    h = forecasts.height // max(panel.n_items, 1)
    point = forecasts["forecast"].to_numpy().reshape(panel.n_items, h)
    values = engine.forecast_quantiles(panel, point, levels)
    return forecasts.with_columns(
        pl.Series(quantile_column(q), values[:, :, k].reshape(-1)) for k, q in enumerate(levels)
    )


def write_forecasts(
    output_dir: Path,
    forecasts: pl.DataFrame,
    n_items: int,
    *,
    chunk_items: int | None = None,
    progress: Progress = no_progress,
) -> Path:
    """Write ``forecasts`` (``h`` rows per item, items in panel order) into ``output_dir``: one
    ``forecasts.parquet``, or with ``chunk_items`` (a run on a Dask cluster) one
    ``forecasts/part-NNNNN.parquet`` per chunk of that many items, written chunk by chunk
    (``progress`` after each). Returns the file or directory written; :func:`read_forecasts`
    reads either."""
    if chunk_items is None:
        forecasts.write_parquet(output_dir / FORECASTS_FILE)
        return output_dir / FORECASTS_FILE
    folder = output_dir / FORECASTS_DIR
    folder.mkdir(exist_ok=True)
    h = forecasts.height // max(n_items, 1)
    starts = list(range(0, n_items, chunk_items)) or [0]
    for i, a in enumerate(starts):
        b = min(a + chunk_items, n_items)
        forecasts.slice(a * h, (b - a) * h).write_parquet(folder / f"part-{i:05d}.parquet")
        progress(f"write forecasts part {i + 1}/{len(starts)}", i + 1, len(starts))
    return folder


def read_forecasts(output_dir: Path) -> pl.DataFrame:
    """The forecasts a run wrote into ``output_dir``: ``forecasts.parquet`` or the parts of
    ``forecasts/`` (a run on a Dask cluster) in order. FileNotFoundError when there are none."""
    file, folder = output_dir / FORECASTS_FILE, output_dir / FORECASTS_DIR
    if file.is_file():
        return pl.read_parquet(file)
    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not parts:
        raise FileNotFoundError(f"no {FORECASTS_FILE} nor {FORECASTS_DIR}/part-*.parquet")
    return pl.concat([pl.read_parquet(p) for p in parts], how="vertical")


def write_outputs(
    output_dir: Path,
    loaded: LoadedData,
    result: CoreResult,
    settings: Settings,
    *,
    source: str,
    timings: dict[str, float],
    command: str = "run",
    work_dir: Path | None = None,
    progress: Progress = no_progress,
) -> dict[str, str]:
    """Write classification, backtest, forecasts, rejected rows and run.json into ``work_dir``
    (the staging folder, default ``output_dir``); the paths returned and recorded are those
    in ``output_dir``, where the files go when the run commits. ``command``: what made the
    directory (``run``, ``plan``, ``backtest``), recorded in run.json (the retrain repeats it)."""
    paths: dict[str, str] = {}
    final_dir = output_dir
    output_dir = work_dir if work_dir is not None else output_dir
    result.classification.write_parquet(output_dir / "classification.parquet")
    paths["classification"] = str(output_dir / "classification.parquet")
    if result.backtest is not None:
        scores = result.backtest.scores.join(
            result.selection.select("unique_id", pl.col("method").alias("chosen_method"), "reason"),
            on="unique_id",
            how="left",
        ).with_columns((pl.col("method") == pl.col("chosen_method")).alias("chosen"))
        scores.write_parquet(output_dir / "backtest.parquet")
        paths["backtest"] = str(output_dir / "backtest.parquet")
    result.selection.write_parquet(output_dir / "selection.parquet")
    paths["selection"] = str(output_dir / "selection.parquet")
    if result.summary is not None:
        result.summary.write_parquet(output_dir / "backtest_summary.parquet")
        paths["backtest_summary"] = str(output_dir / "backtest_summary.parquet")
    if result.forecasts is not None:
        c = settings.compute
        written = write_forecasts(
            output_dir,
            result.forecasts,
            loaded.panel.n_items,
            chunk_items=c.chunk_items if uses_cluster(c) else None,
            progress=progress,
        )
        paths["forecasts"] = str(written)
    for table, rows in loaded.rejected.items():
        if rows.height:
            name = "rejected_rows.parquet" if table == "demand" else f"rejected_{table}.parquet"
            rows.write_parquet(output_dir / name)
            paths[f"rejected_{table}"] = str(output_dir / name)
    paths = {k: str(final_dir / Path(v).name) for k, v in paths.items()}
    panel = loaded.panel
    run = {
        "sparecast_version": __version__,
        "command": {"name": command},
        "source": redact_url(source),
        "source_kind": loaded.source_kind,
        "config": redact_values(settings.to_dict()),
        "data_window": {
            "start": str(panel.dates[0]),
            "end": str(panel.end),
            "freq": panel.freq,
            "n_items": panel.n_items,
            "n_periods": panel.n_periods,
        },
        "horizon": {
            "periods": result.horizon,
            "unit": PERIOD_UNITS[panel.freq],
            "asked": settings.horizon,  # None: the frequency's default
        },
        "validation": {t: r.to_dict() for t, r in loaded.reports.items()},
        "extract": loaded.extract_info,
        "notes": result.notes,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "outputs": paths,
    }
    (output_dir / RUN_JSON).write_text(json.dumps(run, indent=2, default=str))
    paths["run"] = str(final_dir / RUN_JSON)
    return paths
