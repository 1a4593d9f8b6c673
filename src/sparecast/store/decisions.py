"""The planner's decisions on suggested orders (approve / reject with a reason), in the store.

One row per order line, keyed by ``line_key`` = ``<plan id>:<item>``: deciding again on the
same line of the same plan updates the row (the planner changed their mind), and the ERP
write-back (``store.writeback``) uses the same key, so a retry never duplicates a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc

from sparecast.errors import SparecastError, StoreError
from sparecast.store.schema import order_decisions
from sparecast.urls import redact_url

__all__ = ["OrderDecision", "OrderDecisions", "line_key", "DECISIONS"]

DECISIONS = ("approved", "rejected")
"""The decisions a planner can take on a suggested order line."""


def line_key(plan_id: str, item_id: str) -> str:
    """The unique key of one order line of one plan: ``<plan id>:<item>``."""
    return f"{plan_id}:{item_id}"


@dataclass(frozen=True)
class OrderDecision:
    """One planner decision on one suggested order line."""

    plan_id: str
    unique_id: str
    supplier_id: str | None
    suggested_quantity: float
    quantity: float
    unit_cost: float | None
    decision: Literal["approved", "rejected"]
    reason: str
    decided_by: str
    decided_at: datetime | None = None

    @property
    def line_key(self) -> str:
        """``<plan id>:<item>`` (the row's primary key and the ERP line key)."""
        return line_key(self.plan_id, self.unique_id)


_COLUMNS = [c.name for c in order_decisions.columns]


class OrderDecisions:
    """Reads and writes ``order_decisions`` through ``engine`` (the forecast store's)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _error(self, action: str, error: Exception) -> StoreError:
        return StoreError(
            f"forecast store {redact_url(str(self.engine.url))}: {action} failed ({error}); "
            "is the schema migrated? run `sparecast store migrate`"
        )

    def record(self, decision: OrderDecision) -> None:
        """Store ``decision`` (insert, or update the line's earlier decision); checks it first."""
        if decision.decision not in DECISIONS:
            raise SparecastError(
                f"order decision for item {decision.unique_id!r} is {decision.decision!r}; "
                f"expected one of {', '.join(DECISIONS)}"
            )
        if decision.quantity < 0 or decision.quantity != decision.quantity:
            raise SparecastError(
                f"order quantity for item {decision.unique_id!r} is {decision.quantity}; "
                "give a number of 0 or more"
            )
        if decision.decision == "rejected" and not decision.reason.strip():
            raise SparecastError(
                f"rejecting the order of item {decision.unique_id!r} needs a reason"
            )
        values = {
            "line_key": decision.line_key,
            "plan_id": decision.plan_id,
            "unique_id": decision.unique_id,
            "supplier_id": decision.supplier_id,
            "suggested_quantity": float(decision.suggested_quantity),
            "quantity": float(decision.quantity),
            "unit_cost": decision.unit_cost,
            "decision": decision.decision,
            "reason": decision.reason.strip(),
            "decided_by": decision.decided_by,
            "decided_at": decision.decided_at or datetime.now(UTC),
            "written_at": None,
        }
        t = order_decisions
        for _ in range(2):  # a concurrent insert of the same line: update it on the retry
            try:
                with self.engine.begin() as conn:
                    found = conn.execute(
                        sa.select(t.c.line_key, t.c.written_at).where(
                            t.c.line_key == values["line_key"]
                        )
                    ).first()
                    if found is None:
                        conn.execute(t.insert().values(**values))
                    else:  # written_at None: the write-back sends the new state again
                        conn.execute(
                            t.update().where(t.c.line_key == values["line_key"]).values(**values)
                        )
                return
            except exc.IntegrityError:
                continue
            except exc.DBAPIError as error:
                raise self._error(
                    f"recording the decision on {values['line_key']}", error
                ) from error

    def of_plan(self, plan_id: str) -> pl.DataFrame:
        """Every decision on the lines of plan ``plan_id`` (one row per item)."""
        t = order_decisions
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(t).where(t.c.plan_id == plan_id)).all()
        except exc.DBAPIError as error:
            raise self._error(f"reading the decisions of plan {plan_id}", error) from error
        return _frame(rows)

    def signature(self, plan_id: str) -> tuple[int, str]:
        """(number of decisions, latest decision time) of a plan: changes with every decision,
        so a page may keep what it derived from them until it does."""
        t = order_decisions
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(sa.func.count(), sa.func.max(t.c.decided_at)).where(
                        t.c.plan_id == plan_id
                    )
                ).one()
        except exc.DBAPIError as error:
            raise self._error(f"reading the decisions of plan {plan_id}", error) from error
        return int(row[0]), str(row[1])

    def approved(self, plan_id: str | None = None) -> pl.DataFrame:
        """Approved lines (of one plan, or of every plan), oldest decision first."""
        t = order_decisions
        query = sa.select(t).where(t.c.decision == "approved")
        if plan_id is not None:
            query = query.where(t.c.plan_id == plan_id)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(t.c.decided_at, t.c.line_key)).all()
        except exc.DBAPIError as error:
            raise self._error("reading the approved orders", error) from error
        return _frame(rows)

    def pending(self) -> pl.DataFrame:
        """Decisions not yet written back (approved ones, and changed ones), oldest first."""
        t = order_decisions
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(t).where(t.c.written_at.is_(None)).order_by(t.c.decided_at)
                ).all()
        except exc.DBAPIError as error:
            raise self._error("reading the order lines to write back", error) from error
        return _frame(rows)

    def mark_written(self, keys: list[str], when: datetime | None = None) -> None:
        """Note that the lines ``keys`` are in the ERP table."""
        if not keys:
            return
        t = order_decisions
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.update()
                    .where(t.c.line_key.in_(keys))
                    .values(written_at=when or datetime.now(UTC))
                )
        except exc.DBAPIError as error:
            raise self._error("marking written order lines", error) from error


def _frame(rows: Sequence[sa.Row[Any]]) -> pl.DataFrame:
    schema: dict[str, Any] = {
        "line_key": pl.String,
        "plan_id": pl.String,
        "unique_id": pl.String,
        "supplier_id": pl.String,
        "suggested_quantity": pl.Float64,
        "quantity": pl.Float64,
        "unit_cost": pl.Float64,
        "decision": pl.String,
        "reason": pl.String,
        "decided_by": pl.String,
        "decided_at": pl.Datetime("us", "UTC"),
        "written_at": pl.Datetime("us", "UTC"),
    }
    data = []
    for row in rows:
        d = dict(row._mapping)
        for col in ("decided_at", "written_at"):  # SQLite gives naive datetimes back
            v = d[col]
            if v is not None and v.tzinfo is None:
                d[col] = v.replace(tzinfo=UTC)
        data.append(d)
    return pl.DataFrame(data, schema=schema, orient="row") if data else pl.DataFrame(schema=schema)
