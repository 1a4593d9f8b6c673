"""The store's side of accuracy monitoring: demand observed after the runs (incremental,
idempotent load), the per-run item attributes monitoring groups and scales by, accuracy alerts
and the record of monitoring passes.

``MonitoringStore`` is a base class of ``ForecastStore``; the scoring itself is
``sparecast.evaluate.monitoring`` and the step that ties them together
``sparecast.pipeline.monitor``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sparecast.errors import StoreError
from sparecast.store.engine import StoreEngine
from sparecast.store.models import RunInfo, as_utc
from sparecast.store.reads import observed_frame
from sparecast.store.schema import alerts, monitor_runs, observed_demand, run_items

__all__ = [
    "MonitoringStore",
    "ObservedLoad",
    "StoredAlert",
    "AlertChange",
    "MonitorPass",
    "RUN_ITEM_COLUMNS",
]

RUN_ITEM_COLUMNS: tuple[str, ...] = tuple(c.name for c in run_items.columns if c.name != "run_id")
"""Columns of a run's item frame (``ForecastStore.write_run(items=...)``), unique_id first."""

_FREQS = ("D", "W", "M")


@dataclass(frozen=True)
class ObservedLoad:
    """What an incremental load of observed demand wrote: new rows, corrected rows (a changed
    value: the later load wins) and rows already stored with the same value (not written)."""

    inserted: int
    updated: int
    unchanged: int

    def to_dict(self) -> dict[str, int]:
        """For logs and JSON."""
        return asdict(self)


@dataclass(frozen=True)
class StoredAlert:
    """An ``alerts`` row."""

    alert_id: int
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    model_version: str
    grouping: str
    group: str
    metric: str
    value: float | None
    expected: float | None
    threshold: float
    periods: int
    period_end: date | None
    status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, date | datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True)
class AlertChange:
    """An alert to open (``alert_id`` None), refresh or close (``close``) in a monitoring pass."""

    alert_id: int | None
    model_version: str
    grouping: str
    group: str
    metric: str
    value: float | None
    expected: float | None
    threshold: float
    periods: int
    period_end: date | None
    reason: str
    close: bool = False


@dataclass(frozen=True)
class MonitorPass:
    """A ``monitor_runs`` row: one monitoring pass."""

    ran_at: datetime
    model_version: str | None
    as_of: date
    periods_scored: int
    degraded: bool
    open_alerts: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["ran_at"] = self.ran_at.isoformat()
        out["as_of"] = self.as_of.isoformat()
        return out


def _naive_utc(value: datetime, backend: str) -> datetime:
    """A timestamp as the backend stores it: aware on PostgreSQL, naive UTC on SQLite."""
    value = as_utc(value)
    return value if backend == "postgresql" else value.replace(tzinfo=None)


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value))


def _stamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _alert(row: Any) -> StoredAlert:
    m = row._mapping
    return StoredAlert(
        alert_id=int(m["id"]),
        opened_at=_stamp(m["opened_at"]),  # type: ignore[arg-type]
        updated_at=_stamp(m["updated_at"]),  # type: ignore[arg-type]
        closed_at=_stamp(m["closed_at"]),
        model_version=m["model_version"],
        grouping=m["grouping"],
        group=m["group_name"],
        metric=m["metric"],
        value=m["value"],
        expected=m["expected"],
        threshold=float(m["threshold"]),
        periods=int(m["periods"]),
        period_end=_day(m["period_end"]),
        status=m["status"],
        reason=m["reason"],
    )


class MonitoringStore:
    """Monitoring reads and writes of a ``ForecastStore`` (its base class) on one database."""

    _db: StoreEngine

    # ------------------------------------------------------------------ observed demand

    def record_observed(
        self, frame: pl.DataFrame, *, freq: str, loaded_at: datetime | None = None
    ) -> ObservedLoad:
        """Load observed demand (unique_id, ds, y; one row per item and period of ``freq``)
        incrementally in one transaction: new (item, period) rows are inserted, rows whose
        value changed are updated (the later load wins: corrections, late returns), equal
        rows are left alone, so that loading the same day twice writes nothing the second
        time."""
        if freq not in _FREQS:
            raise StoreError(f"observed demand freq must be one of {_FREQS}, got {freq!r}")
        missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
        if missing:
            raise StoreError(
                f"observed demand frame lacks column(s) {missing}; it needs unique_id, ds, y"
            )
        rows = frame.select(
            pl.col("unique_id").cast(pl.Utf8),
            pl.col("ds").cast(pl.Date),
            pl.col("y").cast(pl.Float64),
        )
        bad = rows.filter(
            pl.col("unique_id").is_null()
            | pl.col("ds").is_null()
            | pl.col("y").is_null()
            | ~pl.col("y").is_finite()
        )
        if bad.height:
            raise StoreError(
                f"observed demand has {bad.height} row(s) with a null id/date or a null/NaN/"
                f"infinite y, e.g. item {bad['unique_id'][0]} on {bad['ds'][0]}; fix them first"
            )
        dup = rows.filter(pl.struct("unique_id", "ds").is_duplicated())
        if dup.height:
            raise StoreError(
                f"observed demand has {dup.height} duplicated (unique_id, ds) rows, e.g. item "
                f"{dup['unique_id'][0]} on {dup['ds'][0]}; sum them first"
            )
        if rows.height == 0:
            return ObservedLoad(0, 0, 0)
        first, last = rows["ds"].min(), rows["ds"].max()
        stamp = _naive_utc(loaded_at or datetime.now(UTC), self._db.backend)
        with self._db.write("loading observed demand") as conn:
            old = observed_frame(
                conn,
                sa.select(
                    observed_demand.c.unique_id, observed_demand.c.ds, observed_demand.c.y
                ).where(
                    observed_demand.c.freq == freq,
                    observed_demand.c.ds >= first,
                    observed_demand.c.ds <= last,
                ),
            ).rename({"y": "old_y"})
            joined = rows.join(old, on=["unique_id", "ds"], how="left")
            new = joined.filter(pl.col("old_y").is_null())
            changed = joined.filter(
                pl.col("old_y").is_not_null() & (pl.col("old_y") != pl.col("y"))
            )
            if new.height and self._db.backend == "postgresql":  # COPY: 100,000s of rows a day
                raw = conn.connection.driver_connection
                sql = "COPY observed_demand (freq, unique_id, ds, y, loaded_at) FROM STDIN"
                with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
                    for u, d, y in new.select("unique_id", "ds", "y").iter_rows():
                        copy.write_row((freq, u, d, y, stamp))
            elif new.height:  # SQLite: straight to the driver, in SQLAlchemy's text formats
                text = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
                values = new.select(
                    pl.lit(freq).alias("freq"),
                    "unique_id",
                    pl.col("ds").dt.strftime("%Y-%m-%d"),
                    "y",
                    pl.lit(text).alias("loaded_at"),
                )
                conn.exec_driver_sql(
                    "INSERT INTO observed_demand (freq, unique_id, ds, y, loaded_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    values.rows(),  # type: ignore[arg-type]
                )
            if changed.height:
                conn.execute(
                    observed_demand.update()
                    .where(
                        observed_demand.c.freq == freq,
                        observed_demand.c.unique_id == sa.bindparam("b_id"),
                        observed_demand.c.ds == sa.bindparam("b_ds"),
                    )
                    .values(y=sa.bindparam("b_y"), loaded_at=stamp),
                    [
                        {"b_id": u, "b_ds": d, "b_y": y}
                        for u, d, y in changed.select("unique_id", "ds", "y").iter_rows()
                    ],
                )
        return ObservedLoad(new.height, changed.height, rows.height - new.height - changed.height)

    def observed(
        self, freq: str, *, start: date | None = None, end: date | None = None
    ) -> pl.DataFrame:
        """Observed demand of ``freq`` (unique_id, ds, y, loaded_at in UTC), sorted by item
        and date, between ``start`` and ``end`` (inclusive; None: open)."""
        query = sa.select(
            observed_demand.c.unique_id,
            observed_demand.c.ds,
            observed_demand.c.y,
            observed_demand.c.loaded_at,
        ).where(observed_demand.c.freq == freq)
        if start is not None:
            query = query.where(observed_demand.c.ds >= start)
        if end is not None:
            query = query.where(observed_demand.c.ds <= end)
        with self._db.read("reading observed demand") as conn:
            return observed_frame(conn, query).sort("unique_id", "ds")

    # ------------------------------------------------------------------ runs and items

    def run_of_version(self, model_version: str) -> RunInfo | None:
        """The run whose model version is ``model_version`` (None: no such run)."""
        from sparecast.store.schema import forecast_runs

        with self._db.read("looking up a model version") as conn:
            run_id = conn.execute(
                sa.select(forecast_runs.c.id).where(forecast_runs.c.model_version == model_version)
            ).scalar()
        if run_id is None:
            return None
        return self.get_run(int(run_id))  # type: ignore[attr-defined, no-any-return]

    def run_items(self, run_id: int) -> pl.DataFrame:
        """The item attributes stored with a run (``RUN_ITEM_COLUMNS``), sorted by unique_id;
        empty for a run stored without them."""
        schema: dict[str, Any] = {
            c: (pl.Float64 if c.startswith(("scale_", "expected_")) else pl.Utf8)
            for c in RUN_ITEM_COLUMNS
        }
        cols = [run_items.c[c] for c in RUN_ITEM_COLUMNS]
        with self._db.read("reading a run's items") as conn:
            found = conn.execute(sa.select(*cols).where(run_items.c.run_id == run_id)).all()
        return pl.DataFrame([tuple(r) for r in found], schema=schema, orient="row").sort(
            "unique_id"
        )

    # ------------------------------------------------------------------ alerts

    def alerts(
        self,
        *,
        status: str | None = None,
        model_version: str | None = None,
        limit: int | None = None,
    ) -> list[StoredAlert]:
        """Alerts, newest first; ``status``: ``open`` or ``closed`` (None: both)."""
        query = sa.select(alerts).order_by(alerts.c.id.desc())
        if status is not None:
            query = query.where(alerts.c.status == status)
        if model_version is not None:
            query = query.where(alerts.c.model_version == model_version)
        if limit is not None:
            query = query.limit(limit)
        with self._db.read("reading alerts") as conn:
            return [_alert(r) for r in conn.execute(query).all()]

    def open_alerts(self, model_version: str | None = None) -> list[StoredAlert]:
        """The open alerts (of one model version, or all), newest first."""
        return self.alerts(status="open", model_version=model_version)

    def close_alerts(self, model_version: str, reason: str) -> list[int]:
        """Close every open alert of ``model_version`` (e.g. the version was rolled back:
        ``reason`` says so); returns the closed alert ids."""
        now = _naive_utc(datetime.now(UTC), self._db.backend)
        with self._db.write("closing alerts") as conn:
            ids = sorted(
                conn.execute(
                    sa.select(alerts.c.id).where(
                        alerts.c.status == "open", alerts.c.model_version == model_version
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    alerts.update()
                    .where(alerts.c.id.in_(ids))
                    .values(
                        status="closed",
                        closed_at=now,
                        updated_at=now,
                        reason=sa.literal(f"{reason} (opened: ") + alerts.c.reason + ")",
                    )
                )
        return ids

    def last_monitor_pass(self) -> MonitorPass | None:
        """The newest monitoring pass, or None when monitoring never ran on this store."""
        with self._db.read("reading the last monitoring pass") as conn:
            row = conn.execute(
                sa.select(monitor_runs).order_by(monitor_runs.c.id.desc()).limit(1)
            ).first()
        if row is None:
            return None
        m = row._mapping
        return MonitorPass(
            ran_at=_stamp(m["ran_at"]),  # type: ignore[arg-type]
            model_version=m["model_version"],
            as_of=_day(m["as_of"]),  # type: ignore[arg-type]
            periods_scored=int(m["periods_scored"]),
            degraded=bool(m["degraded"]),
            open_alerts=int(m["open_alerts"]),
            reason=m["reason"],
        )

    def record_monitor_pass(
        self, run: MonitorPass, changes: Sequence[AlertChange]
    ) -> list[StoredAlert]:
        """Apply a monitoring pass in one transaction: open, refresh or close alerts
        (``changes``) and record the pass; returns the alerts as stored after it, in the
        order of ``changes``."""
        now = _naive_utc(run.ran_at, self._db.backend)
        ids: list[int] = []
        with self._db.write("recording a monitoring pass") as conn:
            for change in changes:
                ids.append(self._apply_change(conn, change, now))
            conn.execute(
                monitor_runs.insert().values(
                    ran_at=now,
                    model_version=run.model_version,
                    as_of=run.as_of,
                    periods_scored=run.periods_scored,
                    degraded=run.degraded,
                    open_alerts=run.open_alerts,
                    reason=run.reason,
                )
            )
            rows = conn.execute(sa.select(alerts).where(alerts.c.id.in_(ids))).all() if ids else []
        by_id = {int(r._mapping["id"]): _alert(r) for r in rows}
        return [by_id[i] for i in ids]

    @staticmethod
    def _apply_change(conn: Connection, change: AlertChange, now: datetime) -> int:
        values: dict[str, Any] = {
            "updated_at": now,
            "value": change.value,
            "expected": change.expected,
            "threshold": change.threshold,
            "periods": change.periods,
            "period_end": change.period_end,
            "reason": change.reason,
        }
        if change.alert_id is None:
            return int(
                conn.execute(
                    alerts.insert()
                    .values(
                        opened_at=now,
                        model_version=change.model_version,
                        grouping=change.grouping,
                        group_name=change.group,
                        metric=change.metric,
                        status="open",
                        **values,
                    )
                    .returning(alerts.c.id)
                ).scalar_one()
            )
        if change.close:
            values.update(status="closed", closed_at=now)
        else:  # an open alert follows the served lineage: it names the version serving now
            values["model_version"] = change.model_version
        conn.execute(alerts.update().where(alerts.c.id == change.alert_id).values(**values))
        return change.alert_id
