"""Forecast history store: runs, forecasts with quantiles, actual demand and run accuracy in
SQLite (embedded default) or PostgreSQL (production), through SQLAlchemy 2 and Alembic.

Every run is written in one transaction: a crash or an error mid-write leaves nothing behind.
Bulk rows go through ``COPY`` on PostgreSQL (psycopg 3) and ``executemany`` on SQLite.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from sparecast.config import redact_url
from sparecast.errors import StoreError, StoreUnavailable
from sparecast.store.schema import (
    actual_demand,
    forecast_quantiles,
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
_ROW_CHUNK = 100_000  # rows per executemany / COPY block
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
    """``{version}+{config hash}.{data end}.r{run id}``: what produced a run, unique per run."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
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
    quantile_levels: list[float]
    actuals_start: date | None
    actuals_end: date | None
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, date | datetime):
                out[key] = value.isoformat()
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

    def _translate(self, error: exc.DBAPIError, action: str) -> StoreError:
        where = f"forecast store {redact_url(self.url)}"
        message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        if "no such table" in message or "does not exist" in message and "relation" in message:
            return StoreError(
                f"{where} has no schema ({message}) while {action}; run a pipeline into it or "
                "call ForecastStore.migrate()"
            )
        unavailable = error.connection_invalidated or isinstance(
            error, exc.OperationalError | exc.InterfaceError
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
        ``q{percent:g}``; ``actuals``: unique_id, ds, y (upserted per item, freq and date);
        ``accuracy``: the backtest summary (grouping, group, method, metrics, chosen).
        ``progress(label, done, total)`` is called as the tables fill.
        """
        report = progress or (lambda label, done, total: None)
        rows = _forecast_rows(forecasts_frame)
        levels = sorted(quantile_columns(forecasts_frame.columns).values())
        actual_rows = _actual_rows(actuals, meta.freq) if actuals is not None else None
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
            "quantile_levels": json.dumps(levels),
            "actuals_start": actual_rows["ds"].min()
            if actual_rows is not None and actual_rows.height
            else None,
            "actuals_end": actual_rows["ds"].max()
            if actual_rows is not None and actual_rows.height
            else None,
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
            main = rows.select(
                pl.lit(run_id, pl.Int32).alias("run_id"),
                "unique_id",
                "step",
                "ds",
                "forecast",
                "method",
            )
            self._bulk_insert(conn, "forecasts", main, report, "store forecasts")
            if levels:
                qcols = quantile_columns(forecasts_frame.columns)
                long = (
                    rows.select("unique_id", "step", *qcols)
                    .unpivot(index=["unique_id", "step"], variable_name="name", value_name="value")
                    .drop_nulls("value")
                    .with_columns(
                        pl.col("name").replace_strict(qcols, return_dtype=pl.Float64).alias("level")
                    )
                    .select(
                        pl.lit(run_id, pl.Int32).alias("run_id"),
                        "unique_id",
                        "level",
                        "step",
                        "value",
                    )
                )
                self._bulk_insert(conn, "forecast_quantiles", long, report, "store quantiles")
            if actual_rows is not None and actual_rows.height:
                self._upsert_actuals(
                    conn, actual_rows.with_columns(pl.lit(run_id, pl.Int32).alias("run_id")), report
                )
            if accuracy_rows is not None and accuracy_rows.height:
                self._bulk_insert(
                    conn,
                    "run_accuracy",
                    accuracy_rows.select(pl.lit(run_id, pl.Int32).alias("run_id"), pl.all()),
                    report,
                    "store accuracy",
                )
            report("store commit", 1, 1)
        return run_id

    def _bulk_insert(
        self,
        conn: Connection,
        table: str,
        frame: pl.DataFrame,
        report: StoreProgress,
        label: str,
    ) -> None:
        total = frame.height
        report(label, 0, total)
        columns = frame.columns
        if self.backend == "postgresql":
            raw = conn.connection.driver_connection
            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
            with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
                for start in range(0, total, _ROW_CHUNK):
                    buffer = io.BytesIO()
                    frame.slice(start, _ROW_CHUNK).write_csv(
                        buffer, include_header=False, null_value=""
                    )
                    copy.write(buffer.getvalue())
                    report(label, min(start + _ROW_CHUNK, total), total)
        else:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            flat = _sqlite_ready(frame)
            for start in range(0, total, _ROW_CHUNK):
                conn.exec_driver_sql(sql, flat.slice(start, _ROW_CHUNK).rows())  # type: ignore[arg-type]
                report(label, min(start + _ROW_CHUNK, total), total)

    def _upsert_actuals(self, conn: Connection, frame: pl.DataFrame, report: StoreProgress) -> None:
        frame = frame.select("unique_id", "freq", "ds", "y", "run_id")
        update = (
            "ON CONFLICT (unique_id, freq, ds) DO UPDATE SET y = excluded.y, "
            "run_id = excluded.run_id"
        )
        if self.backend == "postgresql":
            conn.exec_driver_sql(
                "CREATE TEMP TABLE _actual_demand_stage (unique_id varchar(200), freq varchar(1), "
                "ds date, y double precision, run_id integer) ON COMMIT DROP"
            )
            self._bulk_insert(conn, "_actual_demand_stage", frame, report, "store actuals")
            conn.exec_driver_sql(
                "INSERT INTO actual_demand (unique_id, freq, ds, y, run_id) "
                "SELECT unique_id, freq, ds, y, run_id FROM _actual_demand_stage " + update
            )
        else:
            sql = (
                "INSERT INTO actual_demand (unique_id, freq, ds, y, run_id) VALUES (?, ?, ?, ?, ?) "
                + update
            )
            flat = _sqlite_ready(frame)
            total = flat.height
            for start in range(0, total, _ROW_CHUNK):
                conn.exec_driver_sql(sql, flat.slice(start, _ROW_CHUNK).rows())  # type: ignore[arg-type]
                report("store actuals", min(start + _ROW_CHUNK, total), total)

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

    def _resolve_run(self, conn: Connection, run_id: int | None) -> RunInfo | None:
        query = sa.select(forecast_runs)
        if run_id is None:
            query = query.order_by(forecast_runs.c.id.desc()).limit(1)
        else:
            query = query.where(forecast_runs.c.id == run_id)
        row = conn.execute(query).first()
        return _run_info(row) if row is not None else None

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
        """Forecasts of many items from one run in two queries per 5,000 ids (forecasts and
        quantiles); unknown items are left out. ``horizon``: first k periods; ``quantiles``:
        levels in percent (None: all the run has, []: none)."""
        if horizon is not None and horizon < 1:
            raise StoreError(f"horizon must be at least 1, got {horizon}")
        ids = list(dict.fromkeys(str(i) for i in item_ids))
        with self._read("reading forecasts") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None or not ids:
                return {}
            levels = _pick_levels(run, quantiles)
            values: dict[str, tuple[str, list[date], list[float]]] = {}
            qvalues: dict[tuple[str, float], dict[int, float]] = {}
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                query = sa.select(
                    forecasts.c.unique_id, forecasts.c.ds, forecasts.c.forecast, forecasts.c.method
                ).where(forecasts.c.run_id == run.run_id, forecasts.c.unique_id.in_(chunk))
                if horizon is not None:
                    query = query.where(forecasts.c.step <= horizon)
                for uid, ds, value, method in conn.execute(
                    query.order_by(forecasts.c.unique_id, forecasts.c.step)
                ):
                    entry = values.get(uid)
                    if entry is None:
                        entry = values[uid] = (method, [], [])
                    entry[1].append(ds)
                    entry[2].append(value)
                if levels:
                    qq = sa.select(
                        forecast_quantiles.c.unique_id,
                        forecast_quantiles.c.level,
                        forecast_quantiles.c.step,
                        forecast_quantiles.c.value,
                    ).where(
                        forecast_quantiles.c.run_id == run.run_id,
                        forecast_quantiles.c.unique_id.in_(chunk),
                        forecast_quantiles.c.level.in_(levels),
                    )
                    if horizon is not None:
                        qq = qq.where(forecast_quantiles.c.step <= horizon)
                    for uid, level, step, value in conn.execute(qq):
                        qvalues.setdefault((uid, float(level)), {})[int(step)] = value
        out: dict[str, ItemForecast] = {}
        for uid in ids:
            entry = values.get(uid)
            if entry is None:
                continue
            method, dates, point = entry
            qdict: dict[str, list[float | None]] = {}
            for level in levels:
                by_step = qvalues.get((uid, level), {})
                qdict[quantile_label(level)] = [by_step.get(s) for s in range(1, len(dates) + 1)]
            out[uid] = ItemForecast(uid, run.run_id, run.model_version, method, dates, point, qdict)
        return out

    def known_items(self, run_id: int | None = None) -> list[str]:
        """Item ids of a run (latest by default), sorted; [] when there is no run."""
        with self._read("listing items") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return []
            rows = conn.execute(
                sa.select(forecasts.c.unique_id)
                .where(forecasts.c.run_id == run.run_id, forecasts.c.step == 1)
                .order_by(forecasts.c.unique_id)
            ).scalars()
            return list(rows)

    def has_item(self, item_id: str, run_id: int | None = None) -> bool:
        """True when the run (latest by default) forecast this item."""
        with self._read("looking up an item") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return False
            hit = conn.execute(
                sa.select(forecasts.c.unique_id).where(
                    forecasts.c.run_id == run.run_id,
                    forecasts.c.unique_id == str(item_id),
                    forecasts.c.step == 1,
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
        """Stored actual demand of one item (``ds``, ``y``), sorted by date; ``freq`` defaults
        to the latest run's frequency. Empty when nothing is stored."""
        with self._read("reading actuals") as conn:
            if freq is None:
                run = self._resolve_run(conn, None)
                if run is None:
                    return pl.DataFrame(schema={"ds": pl.Date, "y": pl.Float64})
                freq = run.freq
            query = sa.select(actual_demand.c.ds, actual_demand.c.y).where(
                actual_demand.c.unique_id == str(item_id), actual_demand.c.freq == freq
            )
            if start is not None:
                query = query.where(actual_demand.c.ds >= start)
            if end is not None:
                query = query.where(actual_demand.c.ds <= end)
            rows = conn.execute(query.order_by(actual_demand.c.ds)).all()
        return pl.DataFrame(
            {"ds": [r[0] for r in rows], "y": [float(r[1]) for r in rows]},
            schema={"ds": pl.Date, "y": pl.Float64},
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
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sparecast_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates as ISO text (the storage format of SQLAlchemy's Date on SQLite)."""
    return frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%d") for c, t in frame.schema.items() if t == pl.Date
    )


def _forecast_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Validated forecast rows with ``step`` (1..h, the rank of ``ds`` among the run's dates)."""
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
    for column in ("unique_id", "ds", "method"):
        if rows[column].null_count():
            raise StoreError(f"forecasts column {column} has {rows[column].null_count()} null(s)")
    bad = rows.filter(~pl.col("forecast").is_finite() | pl.col("forecast").is_null())
    if bad.height:
        raise StoreError(
            f"forecasts column forecast has {bad.height} null/NaN/infinite value(s), e.g. item "
            f"{bad['unique_id'][0]} on {bad['ds'][0]}; fix the forecast before storing it"
        )
    for name in qcols:
        nonfinite = rows.filter(pl.col(name).is_not_null() & ~pl.col(name).is_finite())
        if nonfinite.height:
            raise StoreError(
                f"quantile column {name} has {nonfinite.height} NaN/infinite value(s), e.g. item "
                f"{nonfinite['unique_id'][0]}; use null for a missing quantile"
            )
    dates = rows["ds"].unique().sort()
    steps = pl.DataFrame({"ds": dates, "step": pl.int_range(1, dates.len() + 1, eager=True)})
    rows = rows.join(steps.with_columns(pl.col("step").cast(pl.Int16)), on="ds", how="left")
    dup = rows.filter(pl.struct("unique_id", "ds").is_duplicated())
    if dup.height:
        raise StoreError(
            f"forecasts frame has {dup.height} duplicated (unique_id, ds) rows, e.g. item "
            f"{dup['unique_id'][0]} on {dup['ds'][0]}"
        )
    return rows


def _actual_rows(frame: pl.DataFrame, freq: str) -> pl.DataFrame:
    missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing:
        raise StoreError(f"actuals frame lacks column(s) {missing}; it needs unique_id, ds, y")
    rows = frame.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.lit(freq).alias("freq"),
        pl.col("ds").cast(pl.Date),
        pl.col("y").cast(pl.Float64),
    )
    bad = rows.filter(
        pl.col("unique_id").is_null()
        | pl.col("ds").is_null()
        | ~pl.col("y").is_finite()
        | pl.col("y").is_null()
    )
    if bad.height:
        raise StoreError(
            f"actuals frame has {bad.height} row(s) with a null id/date or non-finite y"
        )
    dup = rows.filter(pl.struct("unique_id", "ds").is_duplicated())
    if dup.height:
        raise StoreError(
            f"actuals frame has {dup.height} duplicated (unique_id, ds) rows, e.g. item "
            f"{dup['unique_id'][0]} on {dup['ds'][0]}"
        )
    return rows


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
        quantile_levels=[float(q) for q in json.loads(m["quantile_levels"])],
        actuals_start=_as_date(m["actuals_start"]),
        actuals_end=_as_date(m["actuals_end"]),
        notes=list(json.loads(m["notes"])),
    )
