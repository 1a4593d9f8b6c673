"""The items file of ``sparecast plan --items``: the planning attributes of each item when the
demand comes from a long-format file (no ERP purchase orders or stock table).

The file (CSV or Parquet) has ``unique_id`` and any of the columns of :data:`ITEM_FILE_COLUMNS`;
``description``, ``category``, ``active`` and the per-item service target column
(``inventory.item_target_column``, default ``service_target``) are read too when present. A
column that is absent, or a blank cell, takes the default of :data:`ITEM_FILE_DEFAULTS`
(documented in docs/guides/inventory.md); ``plan_tables`` turns the valid rows into the
canonical tables ``compute_plan`` reads and names every default it applied in its notes.

Rows are rejected with one reason each (the first that applies, in this order), like every other
table (``sparecast.data.schema``): ``valid.height + rejected.height == rows in``.

========================= ======================================================================
reason                    meaning
========================= ======================================================================
missing_unique_id         unique_id is null or blank
bad_<col>                 a value of a numeric column does not parse as a finite number
negative_<col>            lead_time_days, lead_time_std_days, moq, unit_cost, on_hand or
                          on_order below 0
non_positive_lot_size     lot_size is 0 or below
bad_<target column>       the service target is not in (0, 1)
duplicate                 a later row with the unique_id of an earlier kept row
========================= ======================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from sparecast.data.schema import (
    TABLE_SCHEMAS,
    ValidationResult,
    _blank_expr,
    _build_result,
    _parse_bool_expr,
    _parse_str_expr,
    parse_float_expr,
)
from sparecast.data.sources import read_frame_file
from sparecast.errors import DataValidationError, SourceError

__all__ = [
    "ITEM_FILE_COLUMNS",
    "ITEM_FILE_DEFAULTS",
    "ITEMS_FILE_REASONS",
    "PlanInputs",
    "read_items_file",
    "validate_items_file",
    "plan_tables",
]

ITEM_FILE_COLUMNS: tuple[str, ...] = (
    "lead_time_days",
    "lead_time_std_days",
    "moq",
    "lot_size",
    "unit_cost",
    "on_hand",
    "on_order",
)
"""The numeric planning columns of an items file (all optional besides ``unique_id``)."""

ITEM_FILE_DEFAULTS: dict[str, str] = {
    "lead_time_days": "inventory.default_lead_time_days, lead_time_source 'default'",
    "lead_time_std_days": "0, the quoted lead time is taken as certain",
    "moq": "inventory.moq",
    "lot_size": "inventory.lot_size",
    "unit_cost": "none, no order or stock values",
    "on_hand": "0",
    "on_order": "0",
}
"""What an absent column or a blank cell means, per column (notes and docs)."""

ITEMS_FILE_REASONS: tuple[str, ...] = (
    "missing_unique_id",
    *(f"bad_{c}" for c in ITEM_FILE_COLUMNS),
    *(f"negative_{c}" for c in ITEM_FILE_COLUMNS if c != "lot_size"),
    "non_positive_lot_size",
    "bad_service_target",
    "duplicate",
)

_ROW = "input_row"
_ID = "unique_id"


def read_items_file(path: str | Path) -> pl.DataFrame:
    """Read an items file (CSV or Parquet, by extension; CSV as strings so that nothing is lost
    to type inference and bad values reach validation). It must have ``unique_id``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SourceError(f"items file {p} does not exist")
    df = read_frame_file(p, "items file")
    if _ID not in df.columns:
        raise SourceError(
            f"items file {p} lacks the column 'unique_id'; it has {df.columns}. It needs "
            f"'unique_id' and any of {list(ITEM_FILE_COLUMNS)}."
        )
    return df


def validate_items_file(
    df: pl.DataFrame | pd.DataFrame, *, target_column: str = "service_target"
) -> ValidationResult:
    """Validate the rows of an items file (see the module docstring for the reasons).

    ``valid`` has ``item_id`` (from unique_id), ``description``, ``category``, ``active`` (true
    when absent or blank), every column of ITEM_FILE_COLUMNS (float, null where absent or
    blank) and ``target_column`` (float, null where absent); ``rejected`` holds the rejected rows
    as they came (strings) with ``input_row`` and ``reason``.
    """
    frame = pl.from_pandas(df) if isinstance(df, pd.DataFrame) else df
    if _ID not in frame.columns:
        raise DataValidationError(
            f"the items lack the column 'unique_id'; they have {frame.columns}"
        )
    schema = frame.schema
    raw = frame.with_row_index(_ROW)
    numeric = [*ITEM_FILE_COLUMNS, target_column]
    exprs: list[pl.Expr] = [pl.col(_ROW), _parse_str_expr(pl.col(_ID)).alias("item_id")]
    for col in ("description", "category"):
        e = _parse_str_expr(pl.col(col)) if col in schema else pl.lit(None, pl.String)
        exprs.append(e.alias(col))
    active = (
        _parse_bool_expr(pl.col("active"), schema["active"]).fill_null(True)
        if "active" in schema
        else pl.lit(True)
    )
    exprs.append(active.alias("active"))
    for col in numeric:
        if col in schema:
            exprs.append(parse_float_expr(pl.col(col), schema[col]).alias(col))
            exprs.append(_blank_expr(col, schema[col]).alias(f"_blank_{col}"))
        else:
            exprs.append(pl.lit(None, pl.Float64).alias(col))
            exprs.append(pl.lit(True).alias(f"_blank_{col}"))
    parsed = raw.select(exprs)
    chain: Any = pl.when(pl.col("item_id").is_null()).then(pl.lit("missing_unique_id"))
    for col in numeric:
        label = "bad_service_target" if col == target_column else f"bad_{col}"
        chain = chain.when(~pl.col(f"_blank_{col}") & pl.col(col).is_null()).then(pl.lit(label))
    for col in ITEM_FILE_COLUMNS:
        if col == "lot_size":
            chain = chain.when(pl.col(col) <= 0).then(pl.lit("non_positive_lot_size"))
        else:
            chain = chain.when(pl.col(col) < 0).then(pl.lit(f"negative_{col}"))
    target = pl.col(target_column)
    chain = chain.when((target <= 0) | (target >= 1)).then(pl.lit("bad_service_target"))
    parsed = parsed.with_columns(chain.otherwise(None).cast(pl.String).alias("reason"))
    dup = (
        parsed.filter(pl.col("reason").is_null())
        .select(pl.col(_ROW), (~pl.col("item_id").is_first_distinct()).alias("_dup"))
        .filter("_dup")
    )
    parsed = parsed.with_columns(
        pl.when(pl.col(_ROW).is_in(dup[_ROW].implode()))
        .then(pl.lit("duplicate"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    columns = ["item_id", "description", "category", "active", *numeric]
    valid = parsed.filter(pl.col("reason").is_null()).select(columns)
    return _build_result("items", raw, parsed["reason"], valid, ITEMS_FILE_REASONS)


@dataclass
class PlanInputs:
    """What ``plan_tables`` made of the items: the canonical ``tables`` for
    ``sparecast.inventory.plan.compute_plan`` (items, stock, empty purchase_orders and
    receipts), the items of the file that have no demand history (``only_in_items``) and
    ``notes`` naming every default applied."""

    tables: dict[str, pl.DataFrame]
    only_in_items: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=TABLE_SCHEMAS[table])


def plan_tables(
    items: pl.DataFrame,
    demand_ids: Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    today: date | None = None,
    moq_column: str = "moq",
    lot_size_column: str = "lot_size",
) -> PlanInputs:
    """The planning tables of the valid rows of an items file (``validate_items_file``) for the
    items ``demand_ids`` (the demand history's items) and every item of the file.

    ``columns``: the columns the file had (default: the non-null ones of ``items``); each
    planning column it lacks gets a note naming its default. Items of the demand without a row
    in the file get every default (one note with their count); items only in the file are
    returned in ``only_in_items`` (the caller plans them with zero demand history). ``on_hand``
    becomes the stock table (dated ``today``), ``on_order`` stays an items column (open
    quantity without a date), ``moq``/``lot_size`` are named ``moq_column``/``lot_size_column``.
    """
    given = (
        set(columns)
        if columns is not None
        else {c for c in items.columns if items[c].null_count() < items.height}
    )
    notes: list[str] = []
    absent = [c for c in ITEM_FILE_COLUMNS if c not in given]
    if absent:
        notes.append(
            "items file without "
            + "; ".join(f"{c} (default: {ITEM_FILE_DEFAULTS[c]})" for c in absent)
        )
    blanks = {
        c: int(items[c].null_count())
        for c in ITEM_FILE_COLUMNS
        if c in given and items[c].null_count()
    }
    if blanks:
        notes.append(
            "blank cells in the items file take the column's default: "
            + ", ".join(f"{c} {n}" for c, n in blanks.items())
        )
    in_file = set(items["item_id"].to_list())
    demand = [str(i) for i in demand_ids]
    missing = [i for i in demand if i not in in_file]
    if missing:
        notes.append(
            f"{len(missing)} item(s) of the demand have no row in the items file, e.g. "
            f"{missing[:3]}: every planning column takes its default"
        )
    demand_set = set(demand)
    only = [i for i in items["item_id"].to_list() if i not in demand_set]
    if only:
        notes.append(
            f"{len(only)} item(s) of the items file have no demand history, e.g. {only[:3]}: "
            "planned with zero demand (no stock, no orders)"
        )
    renames = {"moq": moq_column, "lot_size": lot_size_column}
    # the demand's items without a row: every column null (its default), active
    filler = pl.DataFrame({"item_id": missing}, schema={"item_id": pl.String}).with_columns(
        pl.lit(True).alias("active")
    )
    item_table = pl.concat([items, filler], how="diagonal_relaxed")
    item_table = item_table.rename({k: v for k, v in renames.items() if k != v})
    stock = items.filter(pl.col("on_hand").is_not_null()).select(
        "item_id", "on_hand", pl.lit(today, pl.Date).alias("as_of")
    )
    tables = {
        "items": item_table,
        "stock": stock,
        "purchase_orders": _empty("purchase_orders"),
        "receipts": _empty("receipts"),
    }
    return PlanInputs(tables, only, notes)
