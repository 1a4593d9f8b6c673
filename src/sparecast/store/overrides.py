"""Planner overrides in the forecast store: the current override per item (``item_overrides``)
and every change to it appended to ``override_history`` (set, changed, deleted, expired), in
the same transaction.

An override of an item replaces the item's previous one as a whole (the history keeps the
previous one). Expired overrides stay current until :func:`expire_overrides` moves them to the
history (the CLI, the plan and the API's writes call it); readers filter them out by date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sparecast.inventory.overrides import Override, OverrideError, UnknownOverrideItem
from sparecast.store.engine import StoreEngine
from sparecast.store.models import as_utc
from sparecast.store.schema import forecast_runs, forecasts, item_overrides, override_history

__all__ = [
    "OverrideEvent",
    "current_overrides",
    "delete_override",
    "expire_overrides",
    "item_history",
    "override_history_frame",
    "overrides_revision",
    "set_override",
]

_VALUES = (
    "forecast_level",
    "forecast_multiplier",
    "reorder_point",
    "order_up_to",
    "do_not_order",
    "phase_out_date",
    "set_by",
    "reason",
    "created_at",
    "expires",
)


@dataclass(frozen=True)
class OverrideEvent:
    """One row of an item's override history: what happened, when, by whom, and the override
    as it was then (after a set/change, before a deletion/expiry)."""

    event_id: int
    action: str
    recorded_at: datetime
    recorded_by: str
    note: str
    override: Override

    def summary(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "event_id": self.event_id,
            "action": self.action,
            "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by,
            "note": self.note,
            "override": self.override.summary(),
        }


def _db_time(db: StoreEngine, moment: datetime) -> datetime:
    moment = as_utc(moment)
    return moment if db.backend == "postgresql" else moment.replace(tzinfo=None)


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value))


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _override_of(m: Any, revision: int) -> Override:
    return Override(
        item_id=m["unique_id"],
        set_by=m["set_by"],
        reason=m["reason"],
        expires=_as_date(m["expires"]),  # type: ignore[arg-type]
        forecast_level=m["forecast_level"],
        forecast_multiplier=m["forecast_multiplier"],
        reorder_point=m["reorder_point"],
        order_up_to=m["order_up_to"],
        do_not_order=bool(m["do_not_order"]),
        phase_out_date=_as_date(m["phase_out_date"]),
        created_at=_as_datetime(m["created_at"]),
        revision=revision,
    )


def _values_of(db: StoreEngine, o: Override) -> dict[str, Any]:
    values = {k: getattr(o, k) for k in _VALUES}
    values["created_at"] = _db_time(db, o.created_at)
    return values


def _record(
    conn: Connection,
    db: StoreEngine,
    o: Override,
    action: str,
    by: str,
    note: str,
    at: datetime,
) -> int:
    return int(
        conn.execute(
            override_history.insert()
            .values(
                unique_id=o.item_id,
                action=action,
                recorded_at=_db_time(db, at),
                recorded_by=by,
                note=note,
                **_values_of(db, o),
            )
            .returning(override_history.c.id)
        ).scalar_one()
    )


_PG_OVERRIDES_LOCK = 7_305_118_203  # pg_advisory_xact_lock key of every override write


def _serialise(conn: Connection, db: StoreEngine) -> None:
    """Override writes one at a time (PostgreSQL: a transaction-scoped advisory lock, so two
    first writes for one item cannot both insert; SQLite: BEGIN IMMEDIATE does it)."""
    if db.backend == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_OVERRIDES_LOCK})


def _check_item(conn: Connection, item_id: str) -> None:
    run = conn.execute(
        sa.select(forecast_runs.c.id, forecast_runs.c.model_version)
        .order_by(forecast_runs.c.id.desc())
        .limit(1)
    ).first()
    if run is None:
        raise UnknownOverrideItem(
            f"cannot override item {item_id!r}: the store holds no forecast run yet; run "
            "`sparecast run --output DIR` (or `sparecast plan`) first"
        )
    hit = conn.execute(
        sa.select(forecasts.c.unique_id).where(
            forecasts.c.run_id == run[0], forecasts.c.unique_id == item_id
        )
    ).first()
    if hit is None:
        raise UnknownOverrideItem(
            f"unknown item {item_id!r}: not in the latest forecast run {run[0]} (model version "
            f"{run[1]}); check the item id"
        )


def set_override(
    db: StoreEngine, override: Override, *, today: date, check_item: bool = True
) -> Override:
    """Validate ``override`` (``Override.validated``; the item must be in the latest run unless
    ``check_item`` is False) and make it the item's current override, recording ``set`` (or
    ``changed`` when the item had one) in the history; returns it with its revision."""
    override.validated(today)
    now = datetime.now(UTC)
    with db.write(f"setting the override of item {override.item_id!r}") as conn:
        _serialise(conn, db)
        if check_item:
            _check_item(conn, override.item_id)
        had = conn.execute(
            sa.select(item_overrides.c.unique_id).where(
                item_overrides.c.unique_id == override.item_id
            )
        ).first()
        action = "changed" if had is not None else "set"
        revision = _record(conn, db, override, action, override.set_by, "", now)
        values = {**_values_of(db, override), "revision": revision}
        if had is not None:
            conn.execute(
                item_overrides.update()
                .where(item_overrides.c.unique_id == override.item_id)
                .values(**values)
            )
        else:
            conn.execute(item_overrides.insert().values(unique_id=override.item_id, **values))
    return override.with_revision(revision)


def delete_override(db: StoreEngine, item_id: str, *, by: str, note: str = "") -> Override:
    """Remove the item's current override, recording ``deleted`` (by whom, why) in the
    history; returns the removed override. OverrideError when the item has none."""
    if not by.strip():
        raise OverrideError(f"deleting the override of item {item_id!r}: say who (--by NAME)")
    with db.write(f"deleting the override of item {item_id!r}") as conn:
        _serialise(conn, db)
        row = conn.execute(
            sa.select(item_overrides).where(item_overrides.c.unique_id == item_id)
        ).first()
        if row is None:
            raise OverrideError(f"item {item_id!r} has no override to delete")
        old = _override_of(row._mapping, int(row._mapping["revision"]))
        _record(conn, db, old, "deleted", by, note, datetime.now(UTC))
        conn.execute(item_overrides.delete().where(item_overrides.c.unique_id == item_id))
    return old


def expire_overrides(db: StoreEngine, as_of: date) -> list[Override]:
    """Move every override whose expiry date is on or before ``as_of`` to the history
    (``expired``, by ``system``); returns them. Idempotent."""
    with db.write("expiring overrides") as conn:
        _serialise(conn, db)
        rows = conn.execute(
            sa.select(item_overrides).where(item_overrides.c.expires <= as_of)
        ).all()
        gone = [_override_of(r._mapping, int(r._mapping["revision"])) for r in rows]
        now = datetime.now(UTC)
        for o in gone:
            _record(conn, db, o, "expired", "system", f"expired on {o.expires}", now)
        if gone:
            conn.execute(
                item_overrides.delete().where(
                    item_overrides.c.unique_id.in_([o.item_id for o in gone])
                )
            )
    return gone


def current_overrides(
    db: StoreEngine, *, as_of: date | None = None, item_ids: Sequence[str] | None = None
) -> dict[str, Override]:
    """The current overrides by item (only those active on ``as_of`` when given; only
    ``item_ids`` when given)."""
    query = sa.select(item_overrides).order_by(item_overrides.c.unique_id)
    if as_of is not None:
        query = query.where(item_overrides.c.expires > as_of)
    if item_ids is not None:
        query = query.where(item_overrides.c.unique_id.in_(list(item_ids)))
    with db.read("reading overrides") as conn:
        rows = conn.execute(query).all()
    return {
        r._mapping["unique_id"]: _override_of(r._mapping, int(r._mapping["revision"])) for r in rows
    }


def overrides_revision(db: StoreEngine) -> int:
    """The id of the newest history event (0 without any): changes whenever any override is
    set, changed, deleted or expired."""
    with db.read("reading the overrides revision") as conn:
        value = conn.execute(sa.select(sa.func.max(override_history.c.id))).scalar()
    return int(value or 0)


def item_history(db: StoreEngine, item_id: str | None = None) -> list[OverrideEvent]:
    """The history events (of one item, or every item), oldest first."""
    query = sa.select(override_history).order_by(override_history.c.id)
    if item_id is not None:
        query = query.where(override_history.c.unique_id == item_id)
    with db.read("reading the override history") as conn:
        rows = conn.execute(query).all()
    return [
        OverrideEvent(
            event_id=int(r._mapping["id"]),
            action=r._mapping["action"],
            recorded_at=_as_datetime(r._mapping["recorded_at"]),
            recorded_by=r._mapping["recorded_by"],
            note=r._mapping["note"],
            override=_override_of(r._mapping, int(r._mapping["id"])),
        )
        for r in rows
    ]


def override_history_frame(events: Sequence[OverrideEvent]) -> pl.DataFrame:
    """History events as a frame (event_id, unique_id, action, recorded_at, recorded_by, note,
    kinds, the override's values, set_by, reason, expires)."""
    return pl.DataFrame(
        {
            "forecast_level": [e.override.forecast_level for e in events],
            "forecast_multiplier": [e.override.forecast_multiplier for e in events],
            "reorder_point": [e.override.reorder_point for e in events],
            "order_up_to": [e.override.order_up_to for e in events],
            "do_not_order": [e.override.do_not_order for e in events],
            "phase_out_date": [e.override.phase_out_date for e in events],
            "event_id": [e.event_id for e in events],
            "unique_id": [e.override.item_id for e in events],
            "action": [e.action for e in events],
            "recorded_at": [e.recorded_at for e in events],
            "recorded_by": [e.recorded_by for e in events],
            "note": [e.note for e in events],
            "kinds": [",".join(e.override.kinds) for e in events],
            "set_by": [e.override.set_by for e in events],
            "reason": [e.override.reason for e in events],
            "expires": [e.override.expires for e in events],
        },
        schema={
            "forecast_level": pl.Float64,
            "forecast_multiplier": pl.Float64,
            "reorder_point": pl.Float64,
            "order_up_to": pl.Float64,
            "do_not_order": pl.Boolean,
            "phase_out_date": pl.Date,
            "event_id": pl.Int64,
            "unique_id": pl.String,
            "action": pl.String,
            "recorded_at": pl.Datetime("us", "UTC"),
            "recorded_by": pl.String,
            "note": pl.String,
            "kinds": pl.String,
            "set_by": pl.String,
            "reason": pl.String,
            "expires": pl.Date,
        },
    ).select(
        "event_id",
        "unique_id",
        "action",
        "recorded_at",
        "recorded_by",
        "note",
        "kinds",
        "forecast_level",
        "forecast_multiplier",
        "reorder_point",
        "order_up_to",
        "do_not_order",
        "phase_out_date",
        "set_by",
        "reason",
        "expires",
    )
