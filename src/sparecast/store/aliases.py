"""The served-model pointer: which stored run each alias names (``champion``: the run the API
serves; ``challenger``: the newest trained candidate) and the history of every alias move.

The production loop (``sparecast.pipeline.loop``) writes these rows; the service reads only the
champion (``served_run``), so it follows a promotion or a rollback within its version refresh
interval without importing MLflow. A move and its event row are one transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sparecast.store.engine import StoreEngine
from sparecast.store.models import as_utc
from sparecast.store.schema import alias_events, model_aliases

__all__ = [
    "CHAMPION",
    "CHALLENGER",
    "AliasRow",
    "AliasEvent",
    "get_aliases",
    "move_alias",
    "record_event",
    "list_events",
    "champion_stack",
    "served_lineage",
]

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class AliasRow:
    """An alias and the model version (store run) it names."""

    alias: str
    model_version: str
    set_at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["set_at"] = self.set_at.isoformat()
        return out


@dataclass(frozen=True)
class AliasEvent:
    """One step of the loop that moved an alias or decided not to (``keep``)."""

    id: int
    at: datetime
    action: str
    alias: str
    model_version: str
    previous_version: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


def get_aliases(db: StoreEngine) -> dict[str, AliasRow]:
    """Every alias -> its row (empty before the loop has run)."""
    with db.read("reading the model aliases") as conn:
        rows = conn.execute(sa.select(model_aliases)).all()
    return {r.alias: AliasRow(r.alias, r.model_version, as_utc(r.set_at), r.reason) for r in rows}


def _insert_event(
    conn: sa.Connection,
    action: str,
    alias: str,
    model_version: str,
    previous: str | None,
    reason: str,
    at: datetime,
) -> None:
    conn.execute(
        alias_events.insert().values(
            at=at,
            action=action,
            alias=alias,
            model_version=model_version,
            previous_version=previous,
            reason=reason,
        )
    )


def move_alias(
    db: StoreEngine,
    alias: str,
    model_version: str,
    *,
    action: str,
    reason: str,
    expect: str | None = None,
    check_expected: bool = False,
) -> str | None:
    """Point ``alias`` at ``model_version`` and record the move, in one transaction; returns
    the version it named before (None: new alias). With ``check_expected`` the move happens
    only while the alias still names ``expect`` (another process moved it: StoreError)."""
    from sparecast.errors import StoreError

    now = datetime.now(UTC)
    with db.write(f"moving the {alias} alias") as conn:
        row = conn.execute(
            sa.select(model_aliases.c.model_version).where(model_aliases.c.alias == alias)
        ).first()
        previous = row[0] if row is not None else None
        if check_expected and previous != expect:
            raise StoreError(
                f"the {alias} alias names {previous} now, not {expect}: another process moved "
                "it; re-run the step"
            )
        if row is None:
            conn.execute(
                model_aliases.insert().values(
                    alias=alias, model_version=model_version, set_at=now, reason=reason
                )
            )
        else:
            conn.execute(
                model_aliases.update()
                .where(model_aliases.c.alias == alias)
                .values(model_version=model_version, set_at=now, reason=reason)
            )
        _insert_event(conn, action, alias, model_version, previous, reason, now)
    return previous


def record_event(
    db: StoreEngine,
    action: str,
    alias: str,
    model_version: str,
    reason: str,
    previous: str | None = None,
) -> None:
    """Record a decision that moved nothing (e.g. ``keep``: a challenger not promoted)."""
    with db.write("recording a model event") as conn:
        _insert_event(conn, action, alias, model_version, previous, reason, datetime.now(UTC))


def list_events(db: StoreEngine, limit: int | None = None) -> list[AliasEvent]:
    """Alias events, oldest first (the newest ``limit`` of them)."""
    query = sa.select(alias_events).order_by(alias_events.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with db.read("reading the model events") as conn:
        rows = conn.execute(query).all()
    return [
        AliasEvent(
            r.id, as_utc(r.at), r.action, r.alias, r.model_version, r.previous_version, r.reason
        )
        for r in reversed(rows)
    ]


def champion_stack(events: list[AliasEvent]) -> list[str]:
    """The champions in the order they served, replayed from the events (oldest first): a
    bootstrap or promotion pushes a version, a refresh (the same configuration on newer data)
    replaces the top, a rollback pops the top and serves the configuration below it (that
    version, or its retraining on newer data, which replaces it): one entry per configuration
    served in turn."""
    stack: list[str] = []
    for event in events:
        if event.alias != CHAMPION:
            continue
        if event.action == "rollback":  # back to the configuration below the top
            if event.model_version in stack:  # a version served before: back to it
                while stack[-1] != event.model_version:
                    stack.pop()
            else:  # that configuration retrained on newer data: it replaces it
                if stack:
                    stack.pop()
                if stack:
                    stack[-1] = event.model_version
                else:
                    stack.append(event.model_version)
        elif event.action == "refresh":  # the same model on newer data: replaces the top
            if stack:
                stack[-1] = event.model_version
            else:
                stack.append(event.model_version)
        elif event.action in ("bootstrap", "promote", "set"):
            if not stack or stack[-1] != event.model_version:
                stack.append(event.model_version)
    return stack


def served_lineage(events: list[AliasEvent], model_version: str) -> list[str]:
    """The versions that served ``model_version``'s configuration without a break, oldest
    first, ending with ``model_version``: the champions it replaced through a chain of
    ``refresh`` events (the same configuration retrained on newer data). A bootstrap,
    promotion or rollback starts a new lineage (another configuration serves: monitoring
    counts its degraded periods afresh). ``[model_version]`` when it never was champion."""
    lineages: dict[str, list[str]] = {}
    current: list[str] = []
    for event in events:
        if event.alias != CHAMPION:
            continue
        if event.action == "refresh" and current and current[-1] == event.previous_version:
            current = [*current, event.model_version]
        elif event.action in ("bootstrap", "promote", "set", "rollback", "refresh"):
            current = [event.model_version]
        else:
            continue
        lineages[event.model_version] = current
    return lineages.get(model_version, [model_version])
