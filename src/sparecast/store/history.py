"""Forecast history store: runs, forecasts with quantiles, actual demand and run accuracy in
SQLite (embedded default) or PostgreSQL (production), through SQLAlchemy 2 and Alembic.

Every run is written in one transaction: a crash or an error mid-write leaves nothing behind.
Bulk rows go through ``COPY`` on PostgreSQL (psycopg 3) and ``executemany`` on SQLite. Each
item's per-period values are one array (see ``store/schema.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from sparecast.config import redact_url
from sparecast.errors import StoreError, StoreUnavailable
from sparecast.store.schema import (
    actual_demand,
    forecast_runs,
    forecasts,
    run_accuracy,
)

__all__ = [
    "ForecastStore",
    "RunMeta",
    "RunInfo",
    "ItemForecast",
    "default_store_url",
    "model_version_of",
    "quantile_columns",
    "quantile_label",
    "MIGRATIONS_DIR",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_QUANTILE_COL = re.compile(r"^q(\d+(?:\.\d+)?)$")
_ID_CHUNK = 5000  # ids per IN (...) list; SQLite allows 32,766 variables since 3.32
_ROW_CHUNK = 20_000  # rows (items) per executemany / COPY block
_PG_MIGRATE_LOCK = 7_305_118_201  # pg_advisory_xact_lock key of migrate()

StoreProgress = Callable[[str, int, int], None]


def default_store_url(output_dir: str | Path) -> str:
    """``sqlite:///<absolute DIR>/history.sqlite``: the store a run leaves in its output dir."""
    return f"sqlite:///{(Path(output_dir).expanduser().resolve() / 'history.sqlite')}"


def quantile_label(level: float) -> str:
    """Column name of a quantile level in percent: 90 -> ``q90``, 97.5 -> ``q97.5``."""
    return f"q{level:g}"


def quantile_columns(columns: Sequence[str]) -> dict[str, float]:
    """The quantile columns (``q{percent:g}``) among ``columns``, mapped to their level."""
    out = {}
    for name in columns:
        match = _QUANTILE_COL.match(name)
        if match:
            out[name] = float(match.group(1))
    return out


def model_version_of(
    sparecast_version: str, config: dict[str, Any], data_end: date, run_id: int
) -> str:
    """``{version}+{config hash}.{data end}.r{run id}``: what produced a run, unique per run.

    The hash covers the settings that shape forecasts; where they are stored and served
    (``store``, ``service``: URLs, API keys, ports) does not change the model."""
    shaping = {k: v for k, v in config.items() if k not in ("store", "service")}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()
    return f"{sparecast_version}+{digest[:8]}.{data_end:%Y%m%d}.r{run_id}"


@dataclass(frozen=True)
class RunMeta:
    """What a run was: written into ``forecast_runs`` by ``ForecastStore.write_run``."""

    sparecast_version: str
    config: dict[str, Any]
    data_start: date
    data_end: date
    freq: str
    n_items: int
    n_periods: int
    horizon: int
    source: str = ""
    notes: list[str] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(frozen=True)
class RunInfo:
    """A stored run (``forecast_runs`` row); ``quantile_levels`` in percent."""

    run_id: int
    created_at: datetime
    model_version: str
    sparecast_version: str
    config: dict[str, Any]
    source: str
    data_start: date
    data_end: date
    freq: str
    n_items: int
    n_periods: int
    horizon: int
    forecast_dates: list[date]
    quantile_levels: list[float]
    actuals_dates: list[date]
    notes: list[str]

    @property
    def actuals_start(self) -> date | None:
        """First date of the run's stored actual demand (None without actuals)."""
        return self.actuals_dates[0] if self.actuals_dates else None

    @property
    def actuals_end(self) -> date | None:
        """Last date of the run's stored actual demand (None without actuals)."""
        return self.actuals_dates[-1] if self.actuals_dates else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, date | datetime):
                out[key] = value.isoformat()
            elif isinstance(value, list) and value and isinstance(value[0], date):
                out[key] = [d.isoformat() for d in value]
        return out


@dataclass(frozen=True)
class ItemForecast:
    """One item's forecast of one run: dates, point forecast, quantiles by label (``q90``).

    Quantile lists are aligned with ``dates``; a period the run has no value for is None."""

    item_id: str
    run_id: int
    model_version: str
    method: str
    dates: list[date]
    forecast: list[float]
    quantiles: dict[str, list[float | None]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        out = asdict(self)
        out["dates"] = [d.isoformat() for d in self.dates]
        return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ForecastStore:
    """The forecast history in one database (``url``: SQLAlchemy URL, SQLite or PostgreSQL).

    Thread-safe (one engine, pooled connections). Connection errors raise ``StoreUnavailable``;
    the pool pre-pings, so the same object works again when the database is back.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 3.0, echo: bool = False) -> None:
        if url.startswith(("postgresql://", "postgres://")):  # the driver sparecast ships
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = url
        self.backend = sa.make_url(url).get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"store.url {redact_url(url)}: unsupported database {self.backend!r}; use "
                "sqlite:///path/history.sqlite or postgresql+psycopg://user@host:5432/db"
            )
        if self.backend == "postgresql" and sa.make_url(url).get_driver_name() != "psycopg":
            raise StoreError(
                f"store.url {redact_url(url)}: use the psycopg 3 driver, postgresql+psycopg://..."
            )
        if self.backend == "sqlite":
            database = sa.make_url(url).database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                url, echo=echo, connect_args={"timeout": max(connect_timeout_s, 30.0)}
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = sa.create_engine(
                url,
                echo=echo,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                connect_args={"connect_timeout": max(1, int(round(connect_timeout_s)))},
            )

        self._runs: dict[int, RunInfo] = {}
        self._runs_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ForecastStore({redact_url(self.url)!r})"

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # ---------------------------------------------------------------- errors and connections

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except exc.DBAPIError as error:
            raise self._translate(error, action) from error
        except exc.TimeoutError as error:  # every pooled connection busy for pool_timeout
            raise StoreUnavailable(
                f"forecast store {redact_url(self.url)}: no free database connection while "
                f"{action} ({error}); the database is overloaded or connections leak"
            ) from error

    def _translate(self, error: exc.DBAPIError, action: str) -> StoreError:
        where = f"forecast store {redact_url(self.url)}"
        message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        if "no such table" in message or "does not exist" in message and "relation" in message:
            return StoreError(
                f"{where} has no schema ({message}) while {action}; run a pipeline into it or "
                "`sparecast store migrate` (ForecastStore.migrate())"
            )
        if "no such column" in message or "does not exist" in message and "column" in message:
            return StoreError(
                f"{where} has a schema this sparecast does not know ({message}) while {action}; "
                "run `sparecast store migrate`, or use a new store file"
            )
        unavailable = error.connection_invalidated or isinstance(
            error, exc.OperationalError | exc.InterfaceError
        )
        if self.backend == "sqlite" and isinstance(error, exc.OperationalError):
            # SQLite reports SQL errors as OperationalError too: only these mean "can't use it"
            unavailable = any(
                s in message for s in ("unable to open", "locked", "disk I/O", "readonly", "busy")
            )
        if unavailable:
            return StoreUnavailable(
                f"{where} is unreachable while {action}: {message}; check that the database "
                "server is running (store.url)"
            )
        return StoreError(f"{where} failed while {action}: {message}")

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        with self._errors(action):
            with self.engine.connect() as conn:
                conn = conn.execution_options(sparecast_write=True)
                with conn.begin():
                    yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with self._errors(action):
            with self.engine.connect() as conn:
                yield conn

    # ----------------------------------------------------------------------------- schema

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        return cfg

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (alembic upgrade head).

        Idempotent; concurrent callers are serialised (PostgreSQL advisory lock, SQLite
        write lock), so every worker of a service may call it at start."""
        from alembic import command

        cfg = self._alembic_config()
        with self._write("migrating the schema") as conn:
            if self.backend == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_LOCK}
                )
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        """The migration the database is at (None: no schema)."""
        from alembic.runtime.migration import MigrationContext

        with self._read("reading the schema revision") as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def is_migrated(self) -> bool:
        """True when the schema is at the newest migration."""
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        return self.schema_revision() == head

    def ping(self) -> bool:
        """True when the database answers ``SELECT 1``; never raises."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not available"
            return False

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
        report = progress or (lambda label, done, total: None)
        fc = _forecast_grid(forecasts_frame)
        act = _actuals_grid(actuals) if actuals is not None and actuals.height else None
        accuracy_rows = _accuracy_rows(accuracy) if accuracy is not None else None
        created = _utc(meta.created_at or datetime.now(UTC))
        record = {
            "created_at": created if self.backend == "postgresql" else created.replace(tzinfo=None),
            "model_version": f"pending-{uuid.uuid4().hex}",  # set from the id below
            "sparecast_version": meta.sparecast_version,
            "config": json.dumps(meta.config, sort_keys=True, default=str),
            "source": meta.source,
            "data_start": meta.data_start,
            "data_end": meta.data_end,
            "freq": meta.freq,
            "n_items": meta.n_items,
            "n_periods": meta.n_periods,
            "horizon": meta.horizon,
            "forecast_start": fc.dates[0],
            "forecast_dates": _dates_json(fc.dates),
            "quantile_levels": json.dumps(sorted(fc.quantiles)),
            "actuals_start": act.dates[0] if act is not None else None,
            "actuals_dates": _dates_json(act.dates if act is not None else []),
            "notes": json.dumps(list(meta.notes)),
        }
        with self._write("writing a run") as conn:
            run_id = int(
                conn.execute(
                    forecast_runs.insert().values(**record).returning(forecast_runs.c.id)
                ).scalar_one()
            )
            version = model_version_of(meta.sparecast_version, meta.config, meta.data_end, run_id)
            conn.execute(
                forecast_runs.update()
                .where(forecast_runs.c.id == run_id)
                .values(model_version=version)
            )
            n = len(fc.item_ids)
            levels = sorted(fc.quantiles)
            qmatrix = (
                np.concatenate([fc.quantiles[level] for level in levels], axis=1)
                if levels
                else np.zeros((n, 0))
            )
            self._bulk_insert(
                conn,
                "forecasts",
                {"run_id": [run_id] * n, "unique_id": fc.item_ids, "method": fc.methods},
                {"forecast": fc.values, "quantiles": qmatrix},
                report,
                "store forecasts",
            )
            if act is not None:
                m = len(act.item_ids)
                self._bulk_insert(
                    conn,
                    "actual_demand",
                    {"run_id": [run_id] * m, "unique_id": act.item_ids},
                    {"y": act.values},
                    report,
                    "store actuals",
                )
            if accuracy_rows is not None and accuracy_rows.height:
                columns = {c: accuracy_rows[c].to_list() for c in accuracy_rows.columns}
                self._bulk_insert(
                    conn,
                    "run_accuracy",
                    {"run_id": [run_id] * accuracy_rows.height, **columns},
                    {},
                    report,
                    "store accuracy",
                )
            report("store commit", 1, 1)
        if self.backend == "postgresql":
            self._analyze()
        return run_id

    def _analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load (without them PostgreSQL scans
        a whole run for an ``unique_id = ANY(...)`` lookup). Best effort: the run is stored."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE forecast_runs, forecasts, actual_demand")
                conn.commit()
        except exc.DBAPIError:
            pass

    def _bulk_insert(
        self,
        conn: Connection,
        table: str,
        scalars: dict[str, list[Any]],
        arrays: dict[str, np.ndarray],
        report: StoreProgress,
        label: str,
    ) -> None:
        """Insert rows given column-wise: ``scalars`` (lists) and ``arrays`` (2-D float64,
        one array per row). PostgreSQL: COPY (binary when there are arrays, else CSV);
        SQLite: executemany (arrays as float64 BLOBs)."""
        columns = [*scalars, *arrays]
        total = len(next(iter(scalars.values())))
        report(label, 0, total)
        for start in range(0, total, _ROW_CHUNK):
            stop = min(start + _ROW_CHUNK, total)
            if self.backend == "postgresql":
                raw = conn.connection.driver_connection
                if arrays:  # binary COPY: the server parses no float text
                    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"
                    payload = _pg_binary_copy(
                        {c: v[start:stop] for c, v in scalars.items()},
                        [a[start:stop] for a in arrays.values()],
                    )
                else:
                    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
                    buffer = io.BytesIO()
                    pl.DataFrame({c: v[start:stop] for c, v in scalars.items()}).write_csv(
                        buffer, include_header=False, null_value=""
                    )
                    payload = buffer.getvalue()
                with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
                    copy.write(payload)
            else:
                cols = [v[start:stop] for v in scalars.values()]
                cols += [
                    [row.tobytes() for row in a[start:stop].astype("<f8", copy=False)]
                    for a in arrays.values()
                ]
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                conn.exec_driver_sql(sql, list(zip(*cols, strict=True)))  # type: ignore[arg-type]
            report(label, stop, total)

    # ------------------------------------------------------------------------------- read

    def latest_run(self) -> RunInfo | None:
        """The newest run (highest id), or None when the store has none."""
        with self._read("reading the latest run") as conn:
            row = conn.execute(
                sa.select(forecast_runs).order_by(forecast_runs.c.id.desc()).limit(1)
            ).first()
        return _run_info(row) if row is not None else None

    def get_run(self, run_id: int) -> RunInfo | None:
        """The run with this id, or None."""
        with self._read(f"reading run {run_id}") as conn:
            row = conn.execute(sa.select(forecast_runs).where(forecast_runs.c.id == run_id)).first()
        return _run_info(row) if row is not None else None

    def runs(self, limit: int = 20) -> list[RunInfo]:
        """The newest ``limit`` runs, newest first."""
        with self._read("listing runs") as conn:
            rows = conn.execute(
                sa.select(forecast_runs).order_by(forecast_runs.c.id.desc()).limit(limit)
            ).all()
        return [_run_info(r) for r in rows]

    def delete_runs(self, *, keep_last: int) -> list[int]:
        """Delete every run but the newest ``keep_last`` (with their forecasts, actuals and
        accuracy) in one transaction; returns the deleted run ids, oldest first."""
        if keep_last < 1:
            raise StoreError(f"keep_last must be at least 1 (store.keep_runs), got {keep_last}")
        with self._write("deleting old runs") as conn:
            keep = (
                sa.select(forecast_runs.c.id)
                .order_by(forecast_runs.c.id.desc())
                .limit(keep_last)
                .subquery()
            )
            old = sorted(
                conn.execute(
                    sa.select(forecast_runs.c.id).where(forecast_runs.c.id.not_in(sa.select(keep)))
                ).scalars()
            )
            if old:
                for table in (forecasts, actual_demand, run_accuracy):
                    conn.execute(table.delete().where(table.c.run_id.in_(old)))
                conn.execute(forecast_runs.delete().where(forecast_runs.c.id.in_(old)))
        with self._runs_lock:
            for run_id in old:
                self._runs.pop(run_id, None)
        return old

    def _resolve_run(self, conn: Connection, run_id: int | None) -> RunInfo | None:
        """The run (latest when None). A committed run never changes, so its parsed RunInfo is
        kept after the first read and reused while the id still has the same model version
        (a store file replaced under a running service is noticed)."""
        key = sa.select(forecast_runs.c.id, forecast_runs.c.model_version)
        if run_id is None:
            key = key.order_by(forecast_runs.c.id.desc()).limit(1)
        else:
            key = key.where(forecast_runs.c.id == run_id)
        found = conn.execute(key).first()
        if found is None:
            return None
        info = self._runs.get(int(found[0]))
        if info is None or info.model_version != found[1]:
            row = conn.execute(
                sa.select(forecast_runs).where(forecast_runs.c.id == found[0])
            ).first()
            if row is None:
                return None
            info = _run_info(row)
            with self._runs_lock:
                if len(self._runs) >= 256:
                    self._runs.clear()
                self._runs[info.run_id] = info
        return info

    def item_forecast(
        self,
        item_id: str,
        *,
        run_id: int | None = None,
        horizon: int | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> ItemForecast | None:
        """One item's forecast (latest run by default); None for an unknown item or no run."""
        return self.items_forecasts(
            [item_id], run_id=run_id, horizon=horizon, quantiles=quantiles
        ).get(item_id)

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
        if horizon is not None and horizon < 1:
            raise StoreError(f"horizon must be at least 1, got {horizon}")
        ids = list(dict.fromkeys(str(i) for i in item_ids))
        with self._read("reading forecasts") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None or not ids:
                return {}
            levels = _pick_levels(run, quantiles)
            h = len(run.forecast_dates) if horizon is None else horizon
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(ids), _ID_CHUNK):
                rows += self._fetch_items(conn, run.run_id, ids[start : start + _ID_CHUNK], levels)
        full = len(run.forecast_dates)
        h = full if horizon is None else min(horizon, full)
        dates = run.forecast_dates[:h]
        offsets = [(quantile_label(q), run.quantile_levels.index(q) * full) for q in levels]
        found: dict[str, ItemForecast] = {}
        for row in rows:
            qdict: dict[str, list[float | None]] = {}
            for label, offset in offsets:
                part = row[3][offset : offset + h]
                qdict[label] = [None if v != v else v for v in part]  # NaN: no value
            found[row[0]] = ItemForecast(
                row[0], run.run_id, run.model_version, row[1], dates, row[2][:h], qdict
            )
        return {uid: found[uid] for uid in ids if uid in found}

    def _fetch_items(
        self, conn: Connection, run_id: int, ids: list[str], levels: list[float]
    ) -> list[tuple[Any, ...]]:
        """(unique_id, method, forecast list, quantiles list or None) of the ids found.

        The hot path of the service: straight to the driver, one statement. PostgreSQL: ids as
        one array parameter (``= ANY``) and binary results (float8[] arrives as floats);
        SQLite: the BLOBs decoded with numpy."""
        columns = "unique_id, method, forecast" + (", quantiles" if levels else "")
        if self.backend == "postgresql":
            raw = conn.connection.driver_connection
            with raw.cursor(binary=True) as cursor:  # type: ignore[union-attr]
                cursor.execute(
                    f"SELECT {columns} FROM forecasts WHERE run_id = %s AND unique_id = ANY(%s)",
                    (run_id, ids),
                )
                return cursor.fetchall()  # type: ignore[no-any-return]
        marks = ", ".join("?" * len(ids))
        result = conn.exec_driver_sql(
            f"SELECT {columns} FROM forecasts WHERE run_id = ? AND unique_id IN ({marks})",
            (run_id, *ids),
        )
        f8 = np.dtype("<f8")
        return [
            (
                r[0],
                r[1],
                np.frombuffer(r[2], f8).tolist(),
                np.frombuffer(r[3], f8).tolist() if levels else None,
            )
            for r in result
        ]

    def run_forecasts(self, run_id: int | None = None) -> pl.DataFrame:
        """A whole run in the long format it was written in: unique_id, ds, forecast, method
        and the quantile columns (sorted by unique_id, ds). Empty when there is no run."""
        with self._read("reading a run's forecasts") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return pl.DataFrame()
            found = conn.execute(
                sa.select(
                    forecasts.c.unique_id,
                    forecasts.c.method,
                    forecasts.c.forecast,
                    forecasts.c.quantiles,
                ).where(forecasts.c.run_id == run.run_id)
            ).all()
        rows = sorted(found, key=lambda r: r[0])  # code-point order, whatever the collation
        h = len(run.forecast_dates)
        ids = [r[0] for r in rows]
        frame = pl.DataFrame(
            {
                "unique_id": np.repeat(np.array(ids, dtype=object), h).tolist(),
                "ds": run.forecast_dates * len(ids),
                "forecast": np.array([r[2] for r in rows], dtype=float).reshape(-1),
                "method": np.repeat(np.array([r[1] for r in rows], dtype=object), h).tolist(),
            },
            schema={"unique_id": pl.Utf8, "ds": pl.Date, "forecast": pl.Float64, "method": pl.Utf8},
        )
        if run.quantile_levels and rows:
            quantiles = np.array([r[3] for r in rows], dtype=float)  # items x (levels * h)
            for k, level in enumerate(run.quantile_levels):
                values = quantiles[:, k * h : (k + 1) * h].reshape(-1)
                frame = frame.with_columns(pl.Series(quantile_label(level), values).fill_nan(None))
        return frame

    def known_items(self, run_id: int | None = None) -> list[str]:
        """Item ids of a run (latest by default) in code-point order; [] without a run."""
        with self._read("listing items") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return []
            rows = conn.execute(
                sa.select(forecasts.c.unique_id).where(forecasts.c.run_id == run.run_id)
            ).scalars()
            return sorted(rows)  # code-point order, whatever the database's collation

    def has_item(self, item_id: str, run_id: int | None = None) -> bool:
        """True when the run (latest by default) forecast this item."""
        with self._read("looking up an item") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return False
            hit = conn.execute(
                sa.select(forecasts.c.unique_id).where(
                    forecasts.c.run_id == run.run_id, forecasts.c.unique_id == str(item_id)
                )
            ).first()
            return hit is not None

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
        empty = pl.DataFrame(schema={"ds": pl.Date, "y": pl.Float64})
        with self._read("reading actuals") as conn:
            if freq is None:
                latest = self._resolve_run(conn, None)
                if latest is None:
                    return empty
                freq = latest.freq
            rows = conn.execute(
                sa.select(forecast_runs.c.actuals_dates, actual_demand.c.y)
                .join(forecast_runs, forecast_runs.c.id == actual_demand.c.run_id)
                .where(actual_demand.c.unique_id == str(item_id), forecast_runs.c.freq == freq)
                .order_by(actual_demand.c.run_id)
            ).all()
        merged: dict[date, float] = {}
        for dates_json, values in rows:
            merged.update(zip(_dates_of(dates_json), values, strict=True))
        days = sorted(
            d for d in merged if (start is None or d >= start) and (end is None or d <= end)
        )
        if not days:
            return empty
        return pl.DataFrame({"ds": days, "y": [merged[d] for d in days]}, schema=empty.schema)

    def forecast_vs_actual(self, run_id: int | None = None) -> pl.DataFrame:
        """A run's forecasts (latest by default) next to the demand that actually happened,
        as stored by the runs of the same frequency (later runs win): unique_id, ds, step
        (1 = first forecast period), method, forecast, y; only dates with a known actual.

        The realised accuracy of a run once its horizon has passed: feed the frame to
        ``utilsforecast.losses`` (``models=["forecast"]``, ``target_col="y"``)."""
        schema = {
            "unique_id": pl.Utf8,
            "ds": pl.Date,
            "step": pl.Int32,
            "method": pl.Utf8,
            "forecast": pl.Float64,
            "y": pl.Float64,
        }
        run = self.get_run(run_id) if run_id is not None else self.latest_run()
        if run is None:
            return pl.DataFrame(schema=schema)
        first, last = run.forecast_dates[0], run.forecast_dates[-1]
        parts = []
        with self._read("reading actuals") as conn:
            sources = conn.execute(
                sa.select(forecast_runs.c.id, forecast_runs.c.actuals_dates)
                .where(
                    forecast_runs.c.freq == run.freq,
                    forecast_runs.c.actuals_start.is_not(None),
                    forecast_runs.c.actuals_start <= last,
                )
                .order_by(forecast_runs.c.id)
            ).all()
            for source_id, dates_json in sources:
                dates = _dates_of(dates_json)
                keep = [k for k, d in enumerate(dates) if first <= d <= last]
                if not keep:
                    continue
                rows = conn.execute(
                    sa.select(actual_demand.c.unique_id, actual_demand.c.y).where(
                        actual_demand.c.run_id == source_id
                    )
                ).all()
                if not rows:
                    continue
                values = np.array([r[1] for r in rows], dtype=float)[:, keep]
                parts.append(
                    pl.DataFrame(
                        {
                            "unique_id": np.repeat(
                                np.array([r[0] for r in rows], dtype=object), len(keep)
                            ).tolist(),
                            "ds": [dates[k] for k in keep] * len(rows),
                            "y": values.reshape(-1),
                        },
                        schema={"unique_id": pl.Utf8, "ds": pl.Date, "y": pl.Float64},
                    )
                )
        if not parts:
            return pl.DataFrame(schema=schema)
        actual = pl.concat(parts).unique(["unique_id", "ds"], keep="last", maintain_order=True)
        steps = pl.DataFrame(
            {"ds": run.forecast_dates, "step": list(range(1, len(run.forecast_dates) + 1))},
            schema={"ds": pl.Date, "step": pl.Int32},
        )
        return (
            self.run_forecasts(run.run_id)
            .select("unique_id", "ds", "method", "forecast")
            .join(actual, on=["unique_id", "ds"], how="inner")
            .join(steps, on="ds", how="left")
            .select(list(schema))
            .sort("unique_id", "ds")
        )

    def run_accuracy(self, run_id: int | None = None) -> pl.DataFrame:
        """The backtest summary stored with a run (latest by default), wide as written:
        grouping, group, method, chosen, then one Float64 column per metric. Empty when the run
        has none."""
        with self._read("reading run accuracy") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return pl.DataFrame()
            rows = conn.execute(
                sa.select(
                    run_accuracy.c.row_order,
                    run_accuracy.c.grouping,
                    run_accuracy.c.group_name,
                    run_accuracy.c.method,
                    run_accuracy.c.chosen,
                    run_accuracy.c.metric,
                    run_accuracy.c.value,
                )
                .where(run_accuracy.c.run_id == run.run_id)
                .order_by(run_accuracy.c.row_order)
            ).all()
        if not rows:
            return pl.DataFrame()
        long = pl.DataFrame(
            [tuple(r) for r in rows],
            schema={
                "row_order": pl.Int64,
                "grouping": pl.Utf8,
                "group": pl.Utf8,
                "method": pl.Utf8,
                "chosen": pl.Boolean,
                "metric": pl.Utf8,
                "value": pl.Float64,
            },
            orient="row",
        )
        metric_order = list(dict.fromkeys(long["metric"].to_list()))
        wide = long.pivot(
            on="metric",
            index=["row_order", "grouping", "group", "method", "chosen"],
            values="value",
        )
        return wide.sort("row_order").select("grouping", "group", "method", "chosen", *metric_order)


# ------------------------------------------------------------------------------ helpers


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    # Transactions are issued by _sqlite_on_begin (pysqlite's implicit BEGIN skips DDL).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. Switching a new file to WAL needs a moment with
    # no other transaction (the busy handler does not cover it): retry while others migrate.
    deadline = time.monotonic() + 30.0
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sparecast_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_PG_FLOAT8_OID = 701


def _pg_binary_copy(scalars: dict[str, list[Any]], arrays: list[np.ndarray]) -> bytes:
    """Rows in PostgreSQL's binary COPY format: int and str scalars, then float8[] arrays
    (2-D float64, one array per row). The arrays are laid out with numpy in one go."""
    n = len(next(iter(scalars.values())))
    blocks = []
    for matrix in arrays:
        h = matrix.shape[1]
        if h == 0:  # an empty array: ndim 0, no dimensions
            empty = struct.pack(">iiii", 12, 0, 0, _PG_FLOAT8_OID)
            blocks.append((empty, len(empty), np.frombuffer(empty * n, np.uint8)))
            continue
        layout = np.dtype(
            [
                ("size", ">i4"),
                ("ndim", ">i4"),
                ("flags", ">i4"),
                ("oid", ">i4"),
                ("dim", ">i4"),
                ("lbound", ">i4"),
                ("items", [("len", ">i4"), ("value", ">f8")], (h,)),
            ]
        )
        packed = np.zeros(n, dtype=layout)
        packed["size"] = layout.itemsize - 4
        packed["ndim"] = 1
        packed["oid"] = _PG_FLOAT8_OID
        packed["dim"] = h
        packed["lbound"] = 1
        packed["items"]["len"] = 8
        packed["items"]["value"] = matrix
        blocks.append((b"", layout.itemsize, packed.view(np.uint8)))
    field_count = struct.pack(">h", len(scalars) + len(arrays))
    encoded = []
    for values in scalars.values():
        column = []
        for value in values:
            if isinstance(value, str):
                data = value.encode()
                column.append(struct.pack(">i", len(data)) + data)
            elif isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                raise StoreError(f"binary COPY takes int and str scalars, got {value!r}")
            else:
                column.append(b"\x00\x00\x00\x04" + struct.pack(">i", int(value)))
        encoded.append(column)
    raw_blocks = [block.tobytes() for _, _, block in blocks]
    sizes = [size for _, size, _ in blocks]
    out = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
    for i in range(n):
        parts = [field_count, *(column[i] for column in encoded)]
        parts += [
            raw[i * size : (i + 1) * size] for raw, size in zip(raw_blocks, sizes, strict=True)
        ]
        out.append(b"".join(parts))
    out.append(struct.pack(">h", -1))
    return b"".join(out)


def _dates_json(dates: Sequence[date]) -> str:
    return json.dumps([d.isoformat() for d in dates])


def _dates_of(text: str) -> list[date]:
    return [date.fromisoformat(d) for d in json.loads(text)]


@dataclass(frozen=True)
class _Grid:
    """Long rows reshaped to items x dates: item ids, dates, 2-D values, per-item methods and
    quantile matrices by level (NaN where the frame had null)."""

    item_ids: list[str]
    dates: list[date]
    values: np.ndarray
    methods: list[str]
    quantiles: dict[float, np.ndarray]


def _grid(frame: pl.DataFrame, what: str, value: str, extra: Sequence[str]) -> pl.DataFrame:
    """Rows sorted by item and date after checking ids/dates/values and the full grid."""
    for column in ("unique_id", "ds", *extra):
        n_null = frame[column].null_count()
        if n_null:
            raise StoreError(f"{what} column {column} has {n_null} null(s)")
    bad = frame.filter(~pl.col(value).is_finite() | pl.col(value).is_null())
    if bad.height:
        raise StoreError(
            f"{what} column {value} has {bad.height} null/NaN/infinite value(s), e.g. item "
            f"{bad['unique_id'][0]} on {bad['ds'][0]}; fix it before storing it"
        )
    rows = frame.sort("unique_id", "ds")
    dates = rows["ds"].unique().sort()
    item = rows.select(
        (pl.col("unique_id") != pl.col("unique_id").shift()).fill_null(True).cum_sum()
    )
    n_items, n_dates = int(item.to_series()[-1]), dates.len()
    if rows.height == n_items * n_dates:  # fast check: row k is item k // n_dates, date k % n_dates
        ds = rows["ds"].to_physical().to_numpy().reshape(n_items, n_dates)
        idx = item.to_series().to_numpy().reshape(n_items, n_dates)
        if (ds == dates.to_physical().to_numpy()).all() and (idx == idx[:, :1]).all():
            return rows
    _raise_grid_error(rows, what, n_dates)
    raise AssertionError("unreachable")


def _raise_grid_error(rows: pl.DataFrame, what: str, n_dates: int) -> None:
    """Name the first duplicated (item, date) or the first item lacking dates."""
    dup = rows.filter(pl.struct("unique_id", "ds").is_duplicated())
    if dup.height:
        raise StoreError(
            f"{what} frame has {dup.height} duplicated (unique_id, ds) rows, e.g. item "
            f"{dup['unique_id'][0]} on {dup['ds'][0]}"
        )
    counts = rows.group_by("unique_id", maintain_order=True).len()
    short = counts.filter(pl.col("len") != n_dates)
    raise StoreError(
        f"{what} frame: {short.height} item(s) lack some of the {n_dates} dates, e.g. item "
        f"{short['unique_id'][0]} has {short['len'][0]}; give every item the same dates"
    )


def _forecast_grid(frame: pl.DataFrame) -> _Grid:
    """The forecasts frame checked and reshaped to items x dates."""
    missing = [c for c in ("unique_id", "ds", "forecast", "method") if c not in frame.columns]
    if missing:
        raise StoreError(
            f"forecasts frame lacks column(s) {missing}; it needs unique_id, ds, forecast, "
            "method (and optional quantile columns q50, q90, ...)"
        )
    if frame.height == 0:
        raise StoreError("forecasts frame is empty: a run needs at least one forecast row")
    qcols = quantile_columns(frame.columns)
    for name, level in qcols.items():
        if not 0 < level < 100:
            raise StoreError(f"quantile column {name}: level {level:g}% is not between 0 and 100")
    rows = frame.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Date),
        pl.col("forecast").cast(pl.Float64),
        pl.col("method").cast(pl.Utf8),
        *[pl.col(c).cast(pl.Float64) for c in qcols],
    )
    for name in qcols:
        nonfinite = rows.filter(pl.col(name).is_not_null() & ~pl.col(name).is_finite())
        if nonfinite.height:
            raise StoreError(
                f"quantile column {name} has {nonfinite.height} NaN/infinite value(s), e.g. item "
                f"{nonfinite['unique_id'][0]}; use null for a missing quantile"
            )
    rows = _grid(rows, "forecasts", "forecast", ["method"])
    methods = rows.group_by("unique_id", maintain_order=True).agg(
        pl.col("method").first(), pl.col("method").n_unique().alias("n")
    )
    mixed = methods.filter(pl.col("n") > 1)
    if mixed.height:
        raise StoreError(
            f"forecasts frame: item {mixed['unique_id'][0]} has several methods; a run stores "
            "one method per item"
        )
    n_items = methods.height
    return _Grid(
        item_ids=methods["unique_id"].to_list(),
        dates=rows["ds"].unique().sort().to_list(),
        values=rows["forecast"].to_numpy().reshape(n_items, -1),
        methods=methods["method"].to_list(),
        quantiles={
            level: rows[name].fill_null(float("nan")).to_numpy().reshape(n_items, -1)
            for name, level in qcols.items()
        },
    )


def _actuals_grid(frame: pl.DataFrame) -> _Grid:
    """The actuals frame checked and reshaped to items x dates."""
    missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing:
        raise StoreError(f"actuals frame lacks column(s) {missing}; it needs unique_id, ds, y")
    rows = _grid(
        frame.select(
            pl.col("unique_id").cast(pl.Utf8),
            pl.col("ds").cast(pl.Date),
            pl.col("y").cast(pl.Float64),
        ),
        "actuals",
        "y",
        [],
    )
    ids = rows["unique_id"].unique(maintain_order=True).to_list()
    return _Grid(
        item_ids=ids,
        dates=rows["ds"].unique().sort().to_list(),
        values=rows["y"].to_numpy().reshape(len(ids), -1),
        methods=[],
        quantiles={},
    )


_ACCURACY_KEYS = ("grouping", "group", "method")


def _accuracy_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The backtest summary as long rows: grouping, group_name, method, metric, value, chosen."""
    missing = [c for c in _ACCURACY_KEYS if c not in frame.columns]
    if missing:
        raise StoreError(
            f"accuracy frame lacks column(s) {missing}; pass the backtest summary "
            "(backtest_summary.parquet: grouping, group, method, metrics..., chosen)"
        )
    metrics = [
        c
        for c, t in frame.schema.items()
        if c not in (*_ACCURACY_KEYS, "chosen") and t.is_numeric()
    ]
    chosen = pl.col("chosen").fill_null(False) if "chosen" in frame.columns else pl.lit(False)
    wide = frame.select(
        pl.col("grouping").cast(pl.Utf8),
        pl.col("group").cast(pl.Utf8).alias("group_name"),
        pl.col("method").cast(pl.Utf8),
        chosen.cast(pl.Boolean).alias("chosen"),
        pl.int_range(0, pl.len(), dtype=pl.Int32).alias("row_order"),
        *[pl.col(m).cast(pl.Float64) for m in metrics],
    )
    long = wide.unpivot(
        index=["grouping", "group_name", "method", "chosen", "row_order"],
        on=metrics,
        variable_name="metric",
        value_name="value",
    )
    return long.with_columns(
        pl.when(pl.col("value").is_finite()).then(pl.col("value")).otherwise(None).alias("value")
    ).select("grouping", "group_name", "method", "metric", "value", "chosen", "row_order")


def _pick_levels(run: RunInfo, quantiles: Sequence[float] | None) -> list[float]:
    if quantiles is None:
        return list(run.quantile_levels)
    wanted = sorted({float(q) for q in quantiles})
    unknown = [q for q in wanted if q not in run.quantile_levels]
    if unknown:
        have = ", ".join(f"{q:g}" for q in run.quantile_levels) or "none"
        raise StoreError(
            f"quantile level(s) {', '.join(f'{q:g}' for q in unknown)} not in run {run.run_id} "
            f"(model {run.model_version}); it has: {have}"
        )
    return wanted


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value))


def _run_info(row: Any) -> RunInfo:
    m = row._mapping
    created = m["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return RunInfo(
        run_id=int(m["id"]),
        created_at=_utc(created),
        model_version=m["model_version"],
        sparecast_version=m["sparecast_version"],
        config=json.loads(m["config"]),
        source=m["source"],
        data_start=_as_date(m["data_start"]),  # type: ignore[arg-type]
        data_end=_as_date(m["data_end"]),  # type: ignore[arg-type]
        freq=m["freq"],
        n_items=int(m["n_items"]),
        n_periods=int(m["n_periods"]),
        horizon=int(m["horizon"]),
        forecast_dates=_dates_of(m["forecast_dates"]),
        quantile_levels=[float(q) for q in json.loads(m["quantile_levels"])],
        actuals_dates=_dates_of(m["actuals_dates"]),
        notes=list(json.loads(m["notes"])),
    )
