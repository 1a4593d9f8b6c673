"""Forecast history store: runs, forecasts with quantiles, actual demand and run accuracy in
SQLite (embedded default) or PostgreSQL (production), through SQLAlchemy 2 and Alembic.

``ForecastStore`` is the one object callers use; it composes the database and its migrations
(``store/engine.py``), the writes (``store/writes.py``) and the queries (``store/reads.py``).
The data it takes and gives are in ``store/models.py``. Every run is written in one
transaction: a crash or an error mid-write leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl
from sqlalchemy.engine import Engine

from sparecast.config import redact_url
from sparecast.store import writes
from sparecast.store.engine import StoreEngine
from sparecast.store.models import ItemForecast, RunInfo, RunMeta
from sparecast.store.reads import HistoryReader
from sparecast.store.writes import StoreProgress

__all__ = ["ForecastStore", "default_store_url"]


def default_store_url(output_dir: str | Path) -> str:
    """``sqlite:///<absolute DIR>/history.sqlite``: the store a run leaves in its output dir."""
    return f"sqlite:///{(Path(output_dir).expanduser().resolve() / 'history.sqlite')}"


class ForecastStore:
    """The forecast history in one database (``url``: SQLAlchemy URL, SQLite or PostgreSQL).

    Thread-safe (one engine, pooled connections). Connection errors raise ``StoreUnavailable``;
    the pool pre-pings, so the same object works again when the database is back.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 3.0, echo: bool = False) -> None:
        self._db = StoreEngine(url, connect_timeout_s=connect_timeout_s, echo=echo)
        self._reader = HistoryReader(self._db)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (``postgresql://`` made explicit as ``postgresql+psycopg://``)."""
        return self._db.url

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.backend

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (its pool is shared by every thread)."""
        return self._db.engine

    def __repr__(self) -> str:
        return f"ForecastStore({redact_url(self.url)!r})"

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._db.dispose()

    # ----------------------------------------------------------------------------- schema

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (alembic upgrade head).

        Idempotent; concurrent callers are serialised (PostgreSQL advisory lock, SQLite
        write lock), so every worker of a service may call it at start."""
        self._db.migrate()

    def schema_revision(self) -> str | None:
        """The migration the database is at (None: no schema)."""
        return self._db.schema_revision()

    def is_migrated(self) -> bool:
        """True when the schema is at the newest migration."""
        return self._db.is_migrated()

    def ping(self) -> bool:
        """True when the database answers ``SELECT 1``; never raises."""
        return self._db.ping()

    # ------------------------------------------------------------------------------ write

    def write_run(
        self,
        meta: RunMeta,
        forecasts_frame: pl.DataFrame,
        *,
        actuals: pl.DataFrame | None = None,
        accuracy: pl.DataFrame | None = None,
        progress: StoreProgress | None = None,
    ) -> int:
        """Store one run in one transaction and return its id.

        ``forecasts_frame``: unique_id, ds, forecast, method and optional quantile columns
        ``q{percent:g}``, one row per item and date, the same dates for every item;
        ``actuals``: unique_id, ds, y (recent demand, the same dates for every item);
        ``accuracy``: the backtest summary (grouping, group, method, metrics, chosen).
        ``progress(label, done, total)`` is called as the tables fill.
        """
        return writes.write_run(
            self._db,
            meta,
            forecasts_frame,
            actuals=actuals,
            accuracy=accuracy,
            progress=progress,
        )

    def delete_runs(self, *, keep_last: int) -> list[int]:
        """Delete every run but the newest ``keep_last`` (with their forecasts, actuals and
        accuracy) in one transaction; returns the deleted run ids, oldest first."""
        old = writes.delete_runs(self._db, keep_last=keep_last)
        self._reader.forget(old)
        return old

    # ------------------------------------------------------------------------------- read

    def latest_run(self) -> RunInfo | None:
        """The newest run (highest id), or None when the store has none."""
        return self._reader.latest_run()

    def get_run(self, run_id: int) -> RunInfo | None:
        """The run with this id, or None."""
        return self._reader.get_run(run_id)

    def runs(self, limit: int = 20) -> list[RunInfo]:
        """The newest ``limit`` runs, newest first."""
        return self._reader.runs(limit)

    def item_forecast(
        self,
        item_id: str,
        *,
        run_id: int | None = None,
        horizon: int | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> ItemForecast | None:
        """One item's forecast (latest run by default); None for an unknown item or no run."""
        return self._reader.item_forecast(
            item_id, run_id=run_id, horizon=horizon, quantiles=quantiles
        )

    def items_forecasts(
        self,
        item_ids: Sequence[str],
        *,
        run_id: int | None = None,
        horizon: int | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> dict[str, ItemForecast]:
        """Forecasts of many items from one run, in three queries per 5,000 ids (the run, the
        forecasts, the quantiles); unknown items are left out. ``horizon``: first k periods;
        ``quantiles``: levels in percent (None: all the run has, []: none)."""
        return self._reader.items_forecasts(
            item_ids, run_id=run_id, horizon=horizon, quantiles=quantiles
        )

    def run_forecasts(self, run_id: int | None = None) -> pl.DataFrame:
        """A whole run in the long format it was written in: unique_id, ds, forecast, method
        and the quantile columns (sorted by unique_id, ds). Empty when there is no run."""
        return self._reader.run_forecasts(run_id)

    def known_items(self, run_id: int | None = None) -> list[str]:
        """Item ids of a run (latest by default) in code-point order; [] without a run."""
        return self._reader.known_items(run_id)

    def has_item(self, item_id: str, run_id: int | None = None) -> bool:
        """True when the run (latest by default) forecast this item."""
        return self._reader.has_item(item_id, run_id)

    def actuals(
        self,
        item_id: str,
        *,
        start: date | None = None,
        end: date | None = None,
        freq: str | None = None,
    ) -> pl.DataFrame:
        """Actual demand of one item (``ds``, ``y``, sorted by date) from every run of the
        frequency that stored it; where runs overlap the later run wins (corrections, late
        returns). ``freq`` defaults to the latest run's. Empty when nothing is stored."""
        return self._reader.actuals(item_id, start=start, end=end, freq=freq)

    def forecast_vs_actual(self, run_id: int | None = None) -> pl.DataFrame:
        """A run's forecasts (latest by default) next to the demand that actually happened,
        as stored by the runs of the same frequency (later runs win): unique_id, ds, step
        (1 = first forecast period), method, forecast, y; only dates with a known actual.

        The realised accuracy of a run once its horizon has passed: feed the frame to
        ``utilsforecast.losses`` (``models=["forecast"]``, ``target_col="y"``)."""
        return self._reader.forecast_vs_actual(run_id)

    def run_accuracy(self, run_id: int | None = None) -> pl.DataFrame:
        """The backtest summary stored with a run (latest by default), wide as written:
        grouping, group, method, chosen, then one Float64 column per metric. Empty when the run
        has none."""
        return self._reader.run_accuracy(run_id)
