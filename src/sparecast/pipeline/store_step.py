"""Pipeline step: write a finished run (forecasts, recent actual demand, backtest accuracy) into
the forecast history store and record the store's run id and model version in run.json."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast._version import __version__
from sparecast.config import Settings
from sparecast.data.panel import DemandPanel
from sparecast.errors import LoopManagedError
from sparecast.pipeline.chunks import ChunkedPanel
from sparecast.pipeline.progress import Progress
from sparecast.store.history import ForecastStore, RunMeta, default_store_url
from sparecast.urls import redact_url, redact_values

__all__ = [
    "StoredRun",
    "store_url_for",
    "actuals_frame",
    "run_meta",
    "store_run",
    "check_store",
    "check_not_loop_managed",
]


@dataclass(frozen=True)
class StoredRun:
    """Where a run went: the store (password redacted), its run id and model version."""

    url: str
    run_id: int
    model_version: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """For run.json."""
        return asdict(self)


def store_url_for(settings: Settings, output_dir: Path) -> str:
    """``store.url``, or the SQLite file ``history.sqlite`` in the run's output directory."""
    return settings.store.url or default_store_url(output_dir)


def actuals_frame(panel: DemandPanel, n_periods: int) -> pl.DataFrame:
    """The last ``n_periods`` periods of the panel in long format (unique_id, ds, y), zeros
    included: a stored zero is a known zero, a missing row an unknown."""
    n = max(0, min(n_periods, panel.n_periods))
    if n == 0:
        return pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Date, "y": pl.Float64})
    dates = panel.dates[-n:].astype("datetime64[D]")
    return pl.DataFrame(
        {
            "unique_id": np.repeat(panel.item_ids.astype(str), n),
            "ds": np.tile(dates, panel.n_items),
            "y": _last(panel, n).astype(np.float64).reshape(-1),
        }
    ).with_columns(pl.col("ds").cast(pl.Date))


def _last(panel: DemandPanel, n: int) -> np.ndarray:
    """The last ``n`` periods of every item (a panel read per chunk keeps them apart)."""
    if isinstance(panel, ChunkedPanel):
        return panel.history_tail(n)
    return panel.y[:, -n:]


def _day(value: Any) -> date:
    return date.fromisoformat(str(np.datetime64(value, "D")))


def run_meta(
    panel: DemandPanel,
    settings: Settings,
    *,
    source: str,
    notes: list[str] | None = None,
    token: str | None = None,
) -> RunMeta:
    """The run's description for the store (config as in run.json, secrets redacted).
    ``token``: the staging folder's token, kept as ``config.store.staging_token`` so that a
    recovery can tell whether the store has the run of an interrupted command."""
    config = redact_values(settings.to_dict())
    if token is not None:
        config["store"] = {**config.get("store", {}), "staging_token": token}
    return RunMeta(
        sparecast_version=__version__,
        config=config,
        data_start=_day(panel.dates[0]),
        data_end=_day(panel.end),
        freq=panel.freq,
        n_items=panel.n_items,
        n_periods=panel.n_periods,
        horizon=settings.horizon_for(panel),
        source=redact_url(source),
        notes=list(notes or []),
    )


def store_run(
    output_dir: Path,
    panel: DemandPanel,
    forecasts: pl.DataFrame | None,
    summary: pl.DataFrame | None,
    settings: Settings,
    *,
    source: str,
    notes: list[str] | None = None,
    progress: Progress | None = None,
    token: str | None = None,
    items: pl.DataFrame | None = None,
) -> StoredRun | None:
    """Migrate the store if needed, write the run in one transaction (then delete runs beyond
    ``store.keep_runs``); the caller records the result in run.json (``Staging.commit``).
    ``items``: what accuracy monitoring needs per item (``pipeline.monitor.run_items_frame``).
    None when ``store.write_runs`` is off or there are no forecasts (``sparecast backtest``)."""
    if not settings.store.write_runs or forecasts is None:
        return None
    t0 = time.perf_counter()
    url = store_url_for(settings, output_dir)
    store = ForecastStore(url)
    try:
        store.migrate()
        n_actuals = settings.store.actuals_periods or settings.horizon_for(panel)
        run_id = store.write_run(
            run_meta(panel, settings, source=source, notes=notes, token=token),
            forecasts,
            actuals=actuals_frame(panel, n_actuals),
            accuracy=summary,
            items=items,
            progress=progress,
        )
        if settings.store.keep_runs is not None:
            store.delete_runs(keep_last=settings.store.keep_runs)
        info = store.get_run(run_id)
    finally:
        store.dispose()
    assert info is not None  # just written in a committed transaction
    return StoredRun(redact_url(url), run_id, info.model_version, time.perf_counter() - t0)


def check_store(settings: Settings, output_dir: Path) -> None:
    """Before the long computation: the store is reachable and migrated (raises
    StoreUnavailable fast otherwise). Nothing to check when ``store.write_runs`` is off."""
    if not settings.store.write_runs:
        return
    store = ForecastStore(store_url_for(settings, output_dir))
    try:
        store.migrate()
    finally:
        store.dispose()


_ALIASES_REVISION = "0004"  # the migration that added the served-model pointer


def check_not_loop_managed(settings: Settings, output_dir: Path, *, command: str = "run") -> None:
    """Refuse a forecasting run into a directory the production loop serves (its store has a
    ``champion`` alias): the store's served-model pointer, not the newest run, says what the
    API serves, so a plain run there would write files and a store run that are never served.
    A challenger goes through ``sparecast pipeline run weekly`` (trained, tested against the
    champion, promoted or not); LoopManagedError names it. Nothing to check without a store."""
    if not settings.store.write_runs:
        return
    if not settings.store.url and not (output_dir / "history.sqlite").is_file():
        return
    store = ForecastStore(store_url_for(settings, output_dir))
    try:
        revision = store.schema_revision()
        if revision is None or revision[:4] < _ALIASES_REVISION:
            return
        champion = store.aliases().get("champion")
    finally:
        store.dispose()
    if champion is None:
        return
    raise LoopManagedError(
        f"{output_dir} is managed by the production loop (champion {champion.model_version}): "
        f"a `{command}` there would not change what is served. Train a challenger with "
        f"`sparecast pipeline run weekly --data {output_dir}` (--challenger-config FILE for "
        "another configuration; it is promoted only if it beats the champion), re-plan on the "
        "served forecasts with `sparecast plan --reuse-forecasts`, or give a new --output"
    )
