"""Approved orders written back: to CSV/Excel files and, configured, into an ERP table.

The ERP table (``[writeback] url`` + ``table``) gets one row per order line, keyed by the
line's unique key (``<plan id>:<item>``): a retry, a second click or a re-run updates the row
and never adds a second one. The table is created when missing (any SQLAlchemy database:
MariaDB/MySQL, PostgreSQL, SQLite, SQL Server...).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc

from sparecast.errors import SourceError
from sparecast.urls import redact_url

__all__ = [
    "ERP_COLUMNS",
    "WritebackResult",
    "erp_table",
    "write_erp_orders",
    "orders_csv",
    "orders_xlsx",
]

ERP_COLUMNS = (
    "line_key",
    "plan_id",
    "item_id",
    "supplier_id",
    "quantity",
    "unit_cost",
    "order_value",
    "status",
    "decided_by",
    "decided_at",
    "reason",
    "written_at",
)
"""Columns of the ERP order-proposal table, in order."""


def erp_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The ERP order-proposal table ``name`` (unique ``line_key``)."""
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("line_key", sa.String(250), nullable=False, unique=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("supplier_id", sa.String(200), nullable=True),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("unit_cost", sa.Float, nullable=True),
        sa.Column("order_value", sa.Float, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("written_at", sa.DateTime, nullable=False),
    )


@dataclass(frozen=True)
class WritebackResult:
    """What one write-back did: lines inserted, lines updated (already there), their keys."""

    inserted: int
    updated: int
    keys: list[str]


def _erp_rows(decisions: pl.DataFrame, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for d in decisions.iter_rows(named=True):
        cost = d["unit_cost"]
        decided = d["decided_at"]
        rows.append(
            {
                "line_key": d["line_key"],
                "plan_id": d["plan_id"],
                "item_id": d["unique_id"],
                "supplier_id": d["supplier_id"],
                "quantity": float(d["quantity"]),
                "unit_cost": cost,
                "order_value": None if cost is None else round(float(d["quantity"]) * cost, 2),
                "status": d["decision"],
                "decided_by": d["decided_by"],
                # naive UTC: MariaDB DATETIME has no time zone
                "decided_at": decided.astimezone(UTC).replace(tzinfo=None),
                "reason": d["reason"],
                "written_at": now.replace(tzinfo=None),
            }
        )
    return rows


def write_erp_orders(
    url: str, table: str, decisions: pl.DataFrame, *, engine: sa.Engine | None = None
) -> WritebackResult:
    """Upsert ``decisions`` (rows of ``OrderDecisions``) into the ERP table ``table`` at ``url``.

    A line already in the table (same ``line_key``) is updated, never inserted twice; rejected
    lines are only written when the table already holds them (their status becomes rejected).
    Raises SourceError naming the table and the database (password hidden)."""
    now = datetime.now(UTC)
    owned = engine is None
    eng = engine if engine is not None else sa.create_engine(url, pool_pre_ping=True)
    t = erp_table(table)
    shown = redact_url(url)
    try:
        t.create(eng, checkfirst=True)
        rows = _erp_rows(decisions, now)
        inserted = updated = 0
        keys: list[str] = []
        with eng.begin() as conn:
            existing: set[str] = set()
            all_keys = [r["line_key"] for r in rows]
            for start in range(0, len(all_keys), 500):
                chunk = all_keys[start : start + 500]
                existing.update(
                    conn.execute(sa.select(t.c.line_key).where(t.c.line_key.in_(chunk))).scalars()
                )
            for row in rows:
                if row["line_key"] in existing:
                    conn.execute(
                        t.update()
                        .where(t.c.line_key == row["line_key"])
                        .values(**{k: v for k, v in row.items() if k != "line_key"})
                    )
                    updated += 1
                elif row["status"] == "approved":
                    conn.execute(t.insert().values(**row))
                    inserted += 1
                keys.append(row["line_key"])
    except exc.IntegrityError as error:  # a concurrent write of the same line: retry updates
        raise SourceError(
            f"writing approved orders into {table} at {shown}: another writer added the same "
            f"order line at the same time ({error.orig}); retry (lines are never duplicated)"
        ) from error
    except exc.SQLAlchemyError as error:
        raise SourceError(
            f"writing approved orders into {table} at {shown} failed: "
            f"{str(getattr(error, 'orig', error) or error).splitlines()[0]}; check "
            "[writeback] url and table and that the user may create and write that table"
        ) from error
    finally:
        if owned:
            eng.dispose()
    return WritebackResult(inserted=inserted, updated=updated, keys=keys)


def orders_csv(frame: pl.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV (header row, ISO dates)."""
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def orders_xlsx(frame: pl.DataFrame, sheet: str = "orders") -> bytes:
    """``frame`` as an Excel workbook (one sheet, header row, frozen; needs openpyxl: the
    ``web`` extra)."""
    try:
        from openpyxl import Workbook
    except ImportError as error:  # pragma: no cover - openpyxl is in the web extra
        raise SourceError("Excel export needs openpyxl: pip install 'sparecast[web]'") from error
    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet[:31])
    ws.freeze_panes = "A2"
    ws.append(list(frame.columns))
    for row in frame.iter_rows():
        ws.append([_cell(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)  # Excel has no time zones
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list | dict):
        return str(value)
    return value
