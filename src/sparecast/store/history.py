"""Forecast history store: runs, forecasts with quantiles, actual demand and run accuracy in
SQLite (embedded default) or PostgreSQL (production), through SQLAlchemy 2 and Alembic.

``ForecastStore`` is the one object callers use; it composes the database and its migrations
(``store/engine.py``) and the writes (``store/writes.py``), and inherits the queries
(``HistoryReader``, ``store/reads.py``).
The data it takes and gives are in ``store/models.py``. Every run is written in one
transaction: a crash or an error mid-write leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy.engine import Engine

from sparecast.evaluate.fva import FvaResult, forecast_value_added
from sparecast.inventory.overrides import Override, forecasts_with_override_history
from sparecast.store import aliases, writes
from sparecast.store import overrides as _overrides
from sparecast.store.aliases import AliasEvent, AliasRow
from sparecast.store.engine import StoreEngine
from sparecast.store.models import RunMeta
from sparecast.store.monitoring import MonitoringStore
from sparecast.store.overrides import OverrideEvent, override_history_frame
from sparecast.store.reads import HistoryReader
from sparecast.store.writes import StoreProgress
from sparecast.urls import redact_url

__all__ = ["ForecastStore", "default_store_url"]


def default_store_url(output_dir: str | Path) -> str:
    """``sqlite:///<absolute DIR>/history.sqlite``: the store a run leaves in its output dir."""
    return f"sqlite:///{(Path(output_dir).expanduser().resolve() / 'history.sqlite')}"


class ForecastStore(MonitoringStore, HistoryReader):
    """The forecast history in one database (``url``: SQLAlchemy URL, SQLite or PostgreSQL).

    The queries (``latest_run``, ``items_forecasts``, ``actuals``, ...) are ``HistoryReader``'s
    (``store/reads.py``), observed demand and alerts ``MonitoringStore``'s
    (``store/monitoring.py``); this class adds the schema, the writes and the engine's properties.

    Thread-safe (one engine, pooled connections). Connection errors raise ``StoreUnavailable``;
    the pool pre-pings, so the same object works again when the database is back.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 3.0,
        statement_timeout_s: float | None = None,
        echo: bool = False,
    ) -> None:
        super().__init__(
            StoreEngine(
                url,
                connect_timeout_s=connect_timeout_s,
                statement_timeout_s=statement_timeout_s,
                echo=echo,
            )
        )

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

    def abort(self, thread_id: int) -> bool:
        """Break the connection thread ``thread_id`` uses (a call past its deadline): the call
        fails now and the connection is discarded, not pooled (``StoreEngine.abort``)."""
        return self._db.abort(thread_id)

    # ------------------------------------------------------------------------------ write

    def write_run(
        self,
        meta: RunMeta,
        forecasts_frame: pl.DataFrame,
        *,
        actuals: pl.DataFrame | None = None,
        accuracy: pl.DataFrame | None = None,
        items: pl.DataFrame | None = None,
        progress: StoreProgress | None = None,
    ) -> int:
        """Store one run in one transaction and return its id.

        ``forecasts_frame``: unique_id, ds, forecast, method and optional quantile columns
        ``q{percent:g}``, one row per item and date, the same dates for every item;
        ``actuals``: unique_id, ds, y (recent demand, the same dates for every item);
        ``accuracy``: the backtest summary (grouping, group, method, metrics, chosen);
        ``items``: what monitoring needs per item (``store.monitoring.RUN_ITEM_COLUMNS``:
        groups, MASE/RMSSE scales, the served method's backtest scores).
        ``progress(label, done, total)`` is called as the tables fill.
        """
        return writes.write_run(
            self._db,
            meta,
            forecasts_frame,
            actuals=actuals,
            accuracy=accuracy,
            items=items,
            progress=progress,
        )

    def delete_runs(self, *, keep_last: int) -> list[int]:
        """Delete every run but the newest ``keep_last`` (with their forecasts, actuals and
        accuracy) in one transaction; returns the deleted run ids, oldest first."""
        old = writes.delete_runs(self._db, keep_last=keep_last)
        self.forget(old)
        return old

    # ------------------------------------------------------------- served-model pointer

    def aliases(self) -> dict[str, AliasRow]:
        """Every model alias (champion, challenger) -> the model version it names."""
        return aliases.get_aliases(self._db)

    def move_alias(
        self,
        alias: str,
        model_version: str,
        *,
        action: str,
        reason: str,
        expect: str | None = None,
        check_expected: bool = False,
    ) -> str | None:
        """Point ``alias`` at ``model_version`` and record why (one transaction); the version
        it named before. See ``store/aliases.py``."""
        return aliases.move_alias(
            self._db,
            alias,
            model_version,
            action=action,
            reason=reason,
            expect=expect,
            check_expected=check_expected,
        )

    def record_event(
        self, action: str, alias: str, model_version: str, reason: str, previous: str | None = None
    ) -> None:
        """Record a decision that moved no alias (``keep``)."""
        aliases.record_event(self._db, action, alias, model_version, reason, previous)

    def alias_events(self, limit: int | None = None) -> list[AliasEvent]:
        """The alias history, oldest first."""
        return aliases.list_events(self._db, limit)

    # -------------------------------------------------------------------------- overrides

    def set_override(
        self, override: Override, *, today: date | None = None, check_item: bool = True
    ) -> Override:
        """Validate and store the item's planner override (replacing its previous one), with a
        ``set``/``changed`` history event; returns it with its revision. The item must be in
        the latest run (``UnknownOverrideItem`` otherwise) unless ``check_item`` is False;
        ``today`` (default: the date today) is what the expiry must be after."""
        return _overrides.set_override(
            self._db, override, today=today or date.today(), check_item=check_item
        )

    def delete_override(self, item_id: str, *, by: str, note: str = "") -> Override:
        """Remove the item's override (a ``deleted`` history event by ``by``); returns it.
        ``OverrideError`` when the item has none."""
        return _overrides.delete_override(self._db, item_id, by=by, note=note)

    def expire_overrides(self, as_of: date | None = None) -> list[Override]:
        """Move the overrides expired on ``as_of`` (default today) to the history."""
        return _overrides.expire_overrides(self._db, as_of or date.today())

    def overrides(
        self, *, as_of: date | None = None, item_ids: Sequence[str] | None = None
    ) -> dict[str, Override]:
        """The current overrides by item (only those active on ``as_of`` when given)."""
        return _overrides.current_overrides(self._db, as_of=as_of, item_ids=item_ids)

    def override_history(self, item_id: str | None = None) -> list[OverrideEvent]:
        """The override history (of one item or all), oldest first."""
        return _overrides.item_history(self._db, item_id)

    def overrides_revision(self) -> int:
        """The newest override history id (0: none): changes with every override change."""
        return _overrides.overrides_revision(self._db)

    def override_forecast_vs_actual(self, run_id: int | None = None) -> pl.DataFrame:
        """``forecast_vs_actual`` of a run (latest by default) with the forecast override that
        applied on each date by the override history: forecast_model (the model's), forecast
        (overridden), override (the kind, null where none): the input of
        ``sparecast.evaluate.fva.forecast_value_added``."""
        frame = self.forecast_vs_actual(run_id)
        events = override_history_frame(self.override_history())
        return forecasts_with_override_history(frame, events)

    def override_fva(
        self, run_ids: Sequence[int] | None = None, *, until: date | None = None
    ) -> FvaResult:
        """The forecast value added of the planner overrides on the given runs (default: every
        run the store keeps) whose forecasts have known actuals
        (``sparecast.evaluate.fva.forecast_value_added``), only forecast dates up to ``until``
        when given; each item's RMSSE scale is the mean squared one-step difference of its
        stored actual demand before its first scored date."""
        ids = list(run_ids) if run_ids is not None else [r.run_id for r in self.runs(10_000)]
        events = override_history_frame(self.override_history())
        overridden = events["unique_id"].unique().to_list() if events.height else []
        parts = (
            [
                forecasts_with_override_history(
                    self.forecast_vs_actual(i).filter(pl.col("unique_id").is_in(overridden)),
                    events,
                )
                for i in ids
            ]
            if overridden  # no override ever: nothing to read
            else []
        )
        if until is not None:
            parts = [p.filter(pl.col("ds") <= until) for p in parts]
        kept = [p for p in parts if p.height]
        if not kept:
            return forecast_value_added(
                pl.DataFrame(
                    schema={
                        "unique_id": pl.String,
                        "ds": pl.Date,
                        "y": pl.Float64,
                        "forecast_model": pl.Float64,
                        "forecast": pl.Float64,
                        "override": pl.String,
                    }
                )
            )
        frame = pl.concat(kept, how="vertical_relaxed")
        firsts = (
            frame.filter(pl.col("override").is_not_null())
            .group_by("unique_id")
            .agg(pl.col("ds").min())
            .iter_rows()
        )
        scales = {}
        for item, first in firsts:
            y = self.actuals(item, end=first - timedelta(days=1))["y"].to_numpy()
            scales[item] = float(np.mean(np.diff(y) ** 2)) if y.size > 1 else float("nan")
        return forecast_value_added(frame, scales=scales)
