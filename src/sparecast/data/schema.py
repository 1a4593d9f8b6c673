"""Canonical tables and their validation.

Every source (ERP database, CSV/Parquet file, the demo generator) is mapped to the canonical
tables below; validation turns raw rows (possibly all strings, as read from a CSV) into frames
with the canonical types and accounts for every row: a row is either kept (``valid``) or rejected
with a reason (``rejected``); nothing is dropped silently, so
``valid.height + rejected.height == rows in``.

Demand rules (``validate_demand``), one reason per rejected row, checked in this order:

==================== ==========================================================================
reason               meaning
==================== ==========================================================================
missing_item         item_id is null or blank
unknown_item         item_id is not in ``known_items`` (the items table)
missing_date         date is null or blank
bad_date             date does not parse (ISO ``YYYY-MM-DD`` with optional time, ``YYYY/MM/DD``,
                     ``YYYYMMDD``, ``DD.MM.YYYY``; impossible dates such as 2024-02-30 too)
future_date          date is after ``today``
outside_window       date is before ``window_start`` or after ``window_end`` (both inclusive)
missing_quantity     quantity is null or blank
non_numeric_quantity quantity does not parse as a finite number (``abc``, ``nan``, ``inf``)
duplicate            an exact duplicate of an earlier kept row: same item_id, date and quantity.
                     An ERP that books two identical issues on one day must therefore give each a
                     line id: when a ``line_id`` column is present, rows with a line id are
                     duplicates only if an earlier row has the same line id (rows without one
                     fall back to the item/date/quantity rule).
extreme_quantity     the quantity is far above both the item's and its category's typical size
                     (``sparecast.data.outliers``) and ``outlier_action`` is ``reject``
==================== ==========================================================================

With ``outlier_action`` ``cap`` or ``report`` an extreme row is kept (its quantity cut to the
threshold, or as it is) and listed among the rejected rows with reason
``extreme_quantity_capped`` or ``extreme_quantity_reported`` and its original quantity; the report
counts it in ``rows_flagged``, not in ``rows_rejected``. So in general
``valid.height + report.rows_rejected == rows in`` and
``rejected.height == report.rows_rejected + report.rows_flagged``.

Returns and corrections are negative quantities: they are kept and counted (``report.returns``).
Zero quantities are kept too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import polars as pl

from sparecast.data.outliers import (
    DEFAULT_OUTLIER_ACTION,
    DEFAULT_OUTLIER_FACTOR,
    OUTLIER_ACTIONS,
    OutlierPool,
    extreme_thresholds,
)
from sparecast.errors import DataValidationError

__all__ = [
    "TABLES",
    "TABLE_SCHEMAS",
    "REQUIRED_COLUMNS",
    "MAX_EXAMPLES",
    "OPTIONAL_COLUMNS",
    "DATE_COLUMNS",
    "DATED_TABLES",
    "DEMAND_REASONS",
    "FLAGGED_REASONS",
    "ValidationReport",
    "ValidationResult",
    "validate_demand",
    "validate_long",
    "validate_table",
    "validate_tables",
    "parse_date_expr",
    "parse_float_expr",
]

# --------------------------------------------------------------------------- canonical schemas
TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "items": {
        "item_id": pl.String(),
        "description": pl.String(),
        "category": pl.String(),
        "unit_cost": pl.Float64(),
        "unit": pl.String(),
        "active": pl.Boolean(),
    },
    "demand": {"item_id": pl.String(), "date": pl.Date(), "quantity": pl.Float64()},
    "suppliers": {
        "supplier_id": pl.String(),
        "name": pl.String(),
        "country": pl.String(),
        "quoted_lead_time_days": pl.Float64(),
    },
    "purchase_orders": {
        "po_id": pl.String(),
        "item_id": pl.String(),
        "supplier_id": pl.String(),
        "order_date": pl.Date(),
        "quantity": pl.Float64(),
        "promised_date": pl.Date(),
    },
    "receipts": {
        "po_id": pl.String(),
        "item_id": pl.String(),
        "receipt_date": pl.Date(),
        "quantity": pl.Float64(),
    },
    "stock": {"item_id": pl.String(), "on_hand": pl.Float64(), "as_of": pl.Date()},
}
"""Canonical column names and types of every table (optional columns included)."""

TABLES: tuple[str, ...] = tuple(TABLE_SCHEMAS)

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "items": ("item_id",),
    "demand": ("item_id", "date", "quantity"),
    "suppliers": ("supplier_id",),
    "purchase_orders": ("po_id", "item_id", "supplier_id", "order_date", "quantity"),
    "receipts": ("po_id", "item_id", "receipt_date", "quantity"),
    "stock": ("item_id", "on_hand"),
}
"""Columns a source must provide; the others are filled with nulls (or defaults) when absent."""

OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c for c in cols if c not in REQUIRED_COLUMNS[name])
    for name, cols in TABLE_SCHEMAS.items()
}
OPTIONAL_COLUMNS["demand"] = ("line_id",)  # defines duplicates when present (see module doc)
# the item master's planning columns, read when the source (or its mapping) has them; kept as
# extra columns by validate_table, parsed by the plan (sparecast.inventory.plan)
OPTIONAL_COLUMNS["items"] += ("lead_time_days", "lead_time_std_days", "moq", "lot_size")

DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c for c, t in cols.items() if t == pl.Date())
    for name, cols in TABLE_SCHEMAS.items()
}

DATED_TABLES: dict[str, str] = {
    "demand": "date",
    "purchase_orders": "order_date",
    "receipts": "receipt_date",
}
"""The transactional tables and the date column incremental extraction uses as watermark."""

# Rows whose value in these columns is null/unparseable are rejected (other tables).
_KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "items": ("item_id",),
    "suppliers": ("supplier_id",),
    "purchase_orders": ("po_id", "item_id", "order_date", "quantity"),
    "receipts": ("po_id", "item_id", "receipt_date", "quantity"),
    "stock": ("item_id", "on_hand"),
}
# Tables whose key must be unique; later rows with the same key are rejected as duplicate.
_UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "items": ("item_id",),
    "suppliers": ("supplier_id",),
    "stock": ("item_id",),
}

DEMAND_REASONS: tuple[str, ...] = (
    "missing_item",
    "unknown_item",
    "missing_date",
    "bad_date",
    "future_date",
    "outside_window",
    "missing_quantity",
    "non_numeric_quantity",
    "duplicate",
    "extreme_quantity",
    "extreme_quantity_capped",
    "extreme_quantity_reported",
)

FLAGGED_REASONS: frozenset[str] = frozenset(
    {"extreme_quantity_capped", "extreme_quantity_reported"}
)
"""Reasons of rows that are listed among the rejected rows but kept (see the module doc)."""

_ROW = "input_row"
MAX_EXAMPLES = 3
"""Examples of rejected rows a report keeps per reason."""
_MAX_EXAMPLES = MAX_EXAMPLES


# --------------------------------------------------------------------------- report and result
@dataclass
class ValidationReport:
    """What validation did to one table: rows in/kept/rejected, counts and examples per reason."""

    table: str
    rows_in: int
    rows_kept: int
    rows_rejected: int
    rows_flagged: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    returns: int = 0
    date_min: date | None = None
    date_max: date | None = None

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return self.rows_rejected == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        return {
            "table": self.table,
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "rows_flagged": self.rows_flagged,
            "returns": self.returns,
            "counts": dict(self.counts),
            "examples": {k: [dict(e) for e in v] for k, v in self.examples.items()},
            "date_min": self.date_min.isoformat() if self.date_min else None,
            "date_max": self.date_max.isoformat() if self.date_max else None,
        }

    def summary_lines(self) -> list[str]:
        """Human-readable lines for the CLI, one per reason after a headline."""
        head = (
            f"{self.table}: {self.rows_in} rows in, {self.rows_kept} kept, "
            f"{self.rows_rejected} rejected"
        )
        if self.rows_flagged:
            head += f", {self.rows_flagged} flagged (kept)"
        if self.table == "demand":
            head += f", {self.returns} returns (negative rows, kept)"
        if self.date_min is not None:
            head += f", dates {self.date_min} .. {self.date_max}"
        lines = [head]
        for reason, n in self.counts.items():
            lines.append(
                f"  {reason}: {n} row(s), e.g. {_format_examples(self.examples.get(reason, []))}"
            )
        return lines

    def raise_if_rejected(self) -> None:
        """Raise DataValidationError naming counts, reasons and examples if any row was rejected.

        Used by ``--strict``: a clean source passes, any rejected row stops the run.
        """
        if self.ok:
            return
        parts = [
            f"{reason} {n} (e.g. {_format_examples(self.examples.get(reason, []))})"
            for reason, n in self.counts.items()
            if reason not in FLAGGED_REASONS
        ]
        raise DataValidationError(
            f"{self.table}: {self.rows_rejected} of {self.rows_in} rows rejected: "
            + "; ".join(parts)
            + ". Fix these rows in the source, or run without --strict to drop them "
            "(they are listed in the validation report)."
        )


def _format_examples(examples: list[dict[str, Any]]) -> str:
    out = []
    for ex in examples:
        fields = ", ".join(f"{k}={v!r}" for k, v in ex.items() if k != _ROW)
        out.append(f"row {ex.get(_ROW)}: {fields}")
    return "; ".join(out) if out else "-"


@dataclass
class ValidationResult:
    """Output of a validation: ``valid`` rows in canonical types, ``rejected`` rows as they came
    (all columns as strings, plus ``input_row`` and ``reason``) and the ``report``."""

    valid: pl.DataFrame
    rejected: pl.DataFrame
    report: ValidationReport


# --------------------------------------------------------------------------- parsing helpers
_ISO_DATE = r"^(\d{4}-\d{1,2}-\d{1,2})(?:[ T].*)?$"
_SLASH_DATE = r"^(\d{4}/\d{1,2}/\d{1,2})(?:[ T].*)?$"


def parse_date_expr(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Lenient date parsing: dates pass, datetimes are truncated, strings in the formats of the
    module doc are parsed; anything else becomes null (the caller decides whether it rejects)."""
    if dtype == pl.Date():
        return expr
    if isinstance(dtype, pl.Datetime):
        return expr.dt.date()
    s = expr.cast(pl.String).str.strip_chars()
    return pl.coalesce(
        s.str.extract(_ISO_DATE, 1).str.to_date("%Y-%m-%d", strict=False),
        s.str.extract(_SLASH_DATE, 1).str.to_date("%Y/%m/%d", strict=False),
        s.str.extract(r"^(\d{8})$", 1).str.to_date("%Y%m%d", strict=False),
        s.str.extract(r"^(\d{1,2}\.\d{1,2}\.\d{4})$", 1).str.to_date("%d.%m.%Y", strict=False),
    )


def parse_float_expr(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Lenient number parsing: numbers pass, strings are stripped and parsed; non-finite values
    (nan, inf) and anything unparseable become null."""
    if dtype.is_numeric():
        out = expr.cast(pl.Float64)
    else:
        out = expr.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(out.is_finite()).then(out).otherwise(None)


def _parse_bool_expr(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean():
        return expr
    if dtype.is_numeric():
        return expr.cast(pl.Float64) != 0
    s = expr.cast(pl.String).str.strip_chars().str.to_lowercase()
    return (
        pl.when(s.is_in(["1", "true", "t", "yes", "y", "1.0"]))
        .then(True)
        .when(s.is_in(["0", "false", "f", "no", "n", "0.0"]))
        .then(False)
        .otherwise(None)
    )


def _parse_str_expr(expr: pl.Expr) -> pl.Expr:
    s = expr.cast(pl.String).str.strip_chars()
    return pl.when(s.str.len_chars() > 0).then(s).otherwise(None)


def _parse_expr(col: str, target: pl.DataType, dtype: pl.DataType) -> pl.Expr:
    e = pl.col(col)
    if target == pl.Date():
        return parse_date_expr(e, dtype)
    if target == pl.Float64():
        return parse_float_expr(e, dtype)
    if target == pl.Boolean():
        return _parse_bool_expr(e, dtype)
    return _parse_str_expr(e)


def _blank_expr(col: str, dtype: pl.DataType) -> pl.Expr:
    """True where the raw value is null or (for strings) blank."""
    e = pl.col(col)
    if dtype == pl.String():
        return e.is_null() | (e.str.strip_chars().str.len_chars() == 0)
    return e.is_null()


def _as_polars(df: pl.DataFrame | pd.DataFrame, table: str) -> pl.DataFrame:
    if isinstance(df, pl.DataFrame):
        return df
    if isinstance(df, pd.DataFrame):
        return pl.from_pandas(df)
    raise DataValidationError(
        f"{table}: expected a polars or pandas DataFrame, got {type(df).__name__}"
    )


def _require_columns(frame: pl.DataFrame, table: str, required: Iterable[str]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{table} lacks required column(s) {missing}; it has {frame.columns}. "
            "Rename the source columns or map them in the [data.erp_mapping] section of the config "
            f'(e.g. [data.erp_mapping.{table}.columns] {missing[0]} = "SOURCE_COLUMN").'
        )


def _stringify(frame: pl.DataFrame) -> pl.DataFrame:
    """All columns as strings (dates ISO), so rejected rows show what came in."""
    return frame.select(
        [pl.col(c).cast(pl.String) if c != _ROW else pl.col(c) for c in frame.columns]
    )


def _build_result(
    table: str,
    raw: pl.DataFrame,
    reason: pl.Series,
    valid: pl.DataFrame,
    reasons_order: Iterable[str],
    *,
    date_col: str | None = None,
    qty_col: str | None = None,
) -> ValidationResult:
    """Assemble valid/rejected/report from the raw frame (with input_row) and one reason per row
    (rows with a reason in FLAGGED_REASONS are listed but were kept in ``valid``)."""
    rejected = _stringify(raw.filter(reason.is_not_null())).with_columns(
        reason.filter(reason.is_not_null()).alias("reason")
    )
    counts_df = rejected.group_by("reason").len()
    counts_map = dict(zip(counts_df["reason"].to_list(), counts_df["len"].to_list(), strict=True))
    order = [r for r in reasons_order if r in counts_map] + sorted(
        r for r in counts_map if r not in set(reasons_order)
    )
    counts = {r: int(counts_map[r]) for r in order}
    examples: dict[str, list[dict[str, Any]]] = {}
    for r in order:
        ex = rejected.filter(pl.col("reason") == r).head(_MAX_EXAMPLES).drop("reason")
        examples[r] = ex.to_dicts()
    n_flagged = sum(n for r, n in counts.items() if r in FLAGGED_REASONS)
    returns = int((valid[qty_col] < 0).sum()) if qty_col is not None and valid.height else 0
    dmin = dmax = None
    if date_col is not None and valid.height:
        dmin, dmax = valid[date_col].min(), valid[date_col].max()
    report = ValidationReport(
        table=table,
        rows_in=raw.height,
        rows_kept=valid.height,
        rows_rejected=rejected.height - n_flagged,
        rows_flagged=n_flagged,
        counts=counts,
        examples=examples,
        returns=returns,
        date_min=dmin,  # type: ignore[arg-type]
        date_max=dmax,  # type: ignore[arg-type]
    )
    return ValidationResult(valid=valid, rejected=rejected, report=report)


def _known_item_series(known_items: Any) -> pl.Series:
    if isinstance(known_items, pl.DataFrame):
        known_items = known_items["item_id"]
    elif isinstance(known_items, pd.DataFrame):
        known_items = known_items["item_id"].tolist()
    if isinstance(known_items, pl.Series):
        return known_items.cast(pl.String).str.strip_chars()
    return pl.Series([str(i).strip() for i in known_items], dtype=pl.String)


def _to_date(value: Any, name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value if type(value) is date else value.date()  # type: ignore[attr-defined]
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise DataValidationError(f"{name} must be a date (YYYY-MM-DD), got {value!r}") from exc


# --------------------------------------------------------------------------- demand
def validate_demand(
    df: pl.DataFrame | pd.DataFrame,
    *,
    known_items: Iterable[str] | pl.Series | pl.DataFrame | None = None,
    window_start: date | str | None = None,
    window_end: date | str | None = None,
    today: date | str | None = None,
    categories: pl.DataFrame | Mapping[str, str | None] | None = None,
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
    outlier_action: str = DEFAULT_OUTLIER_ACTION,
    outlier_pool: OutlierPool | None = None,
) -> ValidationResult:
    """Validate demand rows ``item_id, date, quantity`` (optional ``line_id``).

    Returns the kept rows in canonical types (``item_id`` str, ``date`` date, ``quantity`` f64,
    input order) and every rejected row with its reason; see the module docstring for the rules.
    ``known_items`` is the ERP's item list (ids or the items frame); ``today`` rejects future
    dates; ``window_start``/``window_end`` (inclusive) reject rows outside the analysis window.
    ``categories`` (the items frame or item -> category), ``outlier_factor`` and
    ``outlier_action`` drive the extreme-quantity rule (``sparecast.data.outliers``);
    ``outlier_pool``: its typical sizes of all items when ``df`` holds the rows of some of them
    (validation in chunks of items, ``sparecast.pipeline.chunks``).
    """
    frame = _as_polars(df, "demand")
    _require_columns(frame, "demand", REQUIRED_COLUMNS["demand"])
    return _validate_demand_frame(
        frame,
        "demand",
        ("item_id", "date", "quantity"),
        known_items=known_items,
        window_start=window_start,
        window_end=window_end,
        today=today,
        categories=categories,
        outlier_factor=outlier_factor,
        outlier_action=outlier_action,
        outlier_pool=outlier_pool,
    )


def validate_long(
    df: pl.DataFrame | pd.DataFrame,
    *,
    known_items: Iterable[str] | pl.Series | pl.DataFrame | None = None,
    window_start: date | str | None = None,
    window_end: date | str | None = None,
    today: date | str | None = None,
    categories: pl.DataFrame | Mapping[str, str | None] | None = None,
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
    outlier_action: str = DEFAULT_OUTLIER_ACTION,
    outlier_pool: OutlierPool | None = None,
) -> ValidationResult:
    """Validate long-format rows ``unique_id, ds, y`` (statsforecast's layout) with the demand
    rules; ``valid`` is canonical demand (``item_id, date, quantity``), ``rejected`` keeps the
    input column names."""
    frame = _as_polars(df, "long-format input")
    missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"long-format input lacks column(s) {missing}; it has {frame.columns}. "
            "Expected columns 'unique_id' (item), 'ds' (date), 'y' (quantity)."
        )
    return _validate_demand_frame(
        frame,
        "demand",
        ("unique_id", "ds", "y"),
        known_items=known_items,
        window_start=window_start,
        window_end=window_end,
        today=today,
        categories=categories,
        outlier_factor=outlier_factor,
        outlier_action=outlier_action,
        outlier_pool=outlier_pool,
    )


_EXTREME_REASON = {
    "reject": "extreme_quantity",
    "cap": "extreme_quantity_capped",
    "report": "extreme_quantity_reported",
}


def _validate_demand_frame(
    frame: pl.DataFrame,
    table: str,
    cols: tuple[str, str, str],
    *,
    known_items: Any,
    window_start: date | str | None,
    window_end: date | str | None,
    today: date | str | None,
    categories: pl.DataFrame | Mapping[str, str | None] | None,
    outlier_factor: float,
    outlier_action: str,
    outlier_pool: OutlierPool | None = None,
) -> ValidationResult:
    """The demand rules on ``frame`` whose item, date and quantity columns are ``cols``
    (``validate_demand`` and ``validate_long``); the dates are parsed here, once for both."""
    if outlier_action not in OUTLIER_ACTIONS:
        raise DataValidationError(
            f"outlier_action must be one of {list(OUTLIER_ACTIONS)}, got {outlier_action!r}"
        )
    if not outlier_factor > 0:
        raise DataValidationError(f"outlier_factor must be positive, got {outlier_factor!r}")
    window_start = _to_date(window_start, "window_start")
    window_end = _to_date(window_end, "window_end")
    today = _to_date(today, "today")
    item_c, date_c, qty_c = cols
    has_line = "line_id" in frame.columns
    schema = frame.schema
    raw = frame.with_row_index(_ROW)
    parsed = raw.select(
        pl.col(_ROW),
        _parse_str_expr(pl.col(item_c)).alias("item_id"),
        parse_date_expr(pl.col(date_c), schema[date_c]).alias("date"),
        parse_float_expr(pl.col(qty_c), schema[qty_c]).alias("quantity"),
        _blank_expr(date_c, schema[date_c]).alias("_date_blank"),
        _blank_expr(qty_c, schema[qty_c]).alias("_qty_blank"),
        (_parse_str_expr(pl.col("line_id")) if has_line else pl.lit(None, pl.String)).alias(
            "_line"
        ),
    )
    d, q = pl.col("date"), pl.col("quantity")
    chain: Any = pl.when(pl.col("item_id").is_null()).then(pl.lit("missing_item"))
    if known_items is not None:
        chain = chain.when(
            ~pl.col("item_id").is_in(_known_item_series(known_items).implode())
        ).then(pl.lit("unknown_item"))
    chain = chain.when(pl.col("_date_blank")).then(pl.lit("missing_date"))
    chain = chain.when(d.is_null()).then(pl.lit("bad_date"))
    if today is not None:
        chain = chain.when(d > today).then(pl.lit("future_date"))
    if window_start is not None:
        chain = chain.when(d < window_start).then(pl.lit("outside_window"))
    if window_end is not None:
        chain = chain.when(d > window_end).then(pl.lit("outside_window"))
    chain = chain.when(pl.col("_qty_blank")).then(pl.lit("missing_quantity"))
    chain = chain.when(q.is_null()).then(pl.lit("non_numeric_quantity"))
    parsed = parsed.with_columns(chain.otherwise(None).cast(pl.String).alias("reason"))

    # Duplicates among the rows that passed every other rule (first occurrence kept).
    candidates = parsed.filter(pl.col("reason").is_null())
    by_line = pl.col("_line").is_not_null()
    dup = candidates.select(
        pl.col(_ROW),
        pl.when(by_line)
        .then(~pl.col("_line").is_first_distinct().over(by_line))
        # per item: the same rows as over (item_id, date, quantity) at once, with a hash table
        # per item instead of one of all rows (a sixth of the memory at 2 million rows)
        .otherwise(~pl.struct("date", "quantity").is_first_distinct().over(by_line, "item_id"))
        .alias("_dup"),
    )
    parsed = parsed.join(dup, on=_ROW, how="left", maintain_order="left").with_columns(
        pl.when(pl.col("_dup").fill_null(False))
        .then(pl.lit("duplicate"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    # Extreme quantities among the rows still kept, judged against those rows only.
    kept = parsed.filter(pl.col("reason").is_null())
    extreme = (
        kept.select(
            pl.col(_ROW),
            pl.col("quantity"),
            extreme_thresholds(
                kept, factor=outlier_factor, categories=categories, pool=outlier_pool
            ).alias("_thr"),
        )
        .filter(pl.col("quantity").abs() > pl.col("_thr"))  # a huge return is extreme too
        .select(_ROW, "_thr")
    )
    parsed = parsed.join(extreme, on=_ROW, how="left", maintain_order="left").with_columns(
        pl.when(pl.col("_thr").is_not_null())
        .then(pl.lit(_EXTREME_REASON[outlier_action]))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    if outlier_action == "cap":
        parsed = parsed.with_columns(
            pl.col("quantity").clip(-pl.col("_thr"), pl.col("_thr")).alias("quantity")
        )
    reason = parsed["reason"]
    valid = parsed.filter(
        pl.col("reason").is_null() | pl.col("reason").is_in(list(FLAGGED_REASONS))
    ).select("item_id", "date", "quantity")
    result = _build_result(
        table, raw, reason, valid, DEMAND_REASONS, date_col="date", qty_col="quantity"
    )
    if extreme.height:  # show the threshold beside the examples of extreme rows
        limits = dict(zip(extreme[_ROW].to_list(), extreme["_thr"].to_list(), strict=True))
        for r, examples in result.report.examples.items():
            if r.startswith("extreme_quantity"):
                for ex in examples:
                    ex["threshold"] = limits.get(ex[_ROW])
    return result


# --------------------------------------------------------------------------- other tables
_DEFAULTS: dict[tuple[str, str], Any] = {("items", "active"): True}


def validate_table(name: str, df: pl.DataFrame | pd.DataFrame) -> ValidationResult:
    """Lighter validation of a master/transaction table other than demand.

    Required columns must be present (DataValidationError naming the missing ones); optional
    canonical columns that are absent are added as nulls (``items.active`` defaults to true);
    extra columns are kept as they are. Values are parsed leniently to the canonical types; rows
    whose key columns are null/blank (``missing_<col>``) or do not parse (``bad_<col>``) are
    rejected, and so are later rows repeating a unique key (``duplicate``: items.item_id,
    suppliers.supplier_id, stock.item_id). A bad value in a non-key column becomes null.
    """
    if name == "demand":
        return validate_demand(df)
    if name not in TABLE_SCHEMAS:
        raise DataValidationError(f"unknown table {name!r}; canonical tables are {list(TABLES)}")
    frame = _as_polars(df, name)
    _require_columns(frame, name, REQUIRED_COLUMNS[name])
    canon = TABLE_SCHEMAS[name]
    schema = frame.schema
    raw = frame.with_row_index(_ROW)
    exprs: list[pl.Expr] = [pl.col(_ROW)]
    for col, target in canon.items():
        if col in schema:
            exprs.append(_parse_expr(col, target, schema[col]).alias(col))
        else:
            exprs.append(pl.lit(_DEFAULTS.get((name, col)), dtype=target).alias(col))
    extras = [c for c in frame.columns if c not in canon]
    exprs += [pl.col(c) for c in extras]
    keys = _KEY_COLUMNS[name]
    blanks = [_blank_expr(k, schema[k]).alias(f"_blank_{k}") for k in keys]
    parsed = raw.select(exprs + blanks)
    chain: Any = None
    reasons_order: list[str] = []
    for k in keys:
        for cond, label in (
            (pl.col(f"_blank_{k}"), f"missing_{k}"),
            (pl.col(k).is_null(), f"bad_{k}"),
        ):
            chain = (pl.when(cond) if chain is None else chain.when(cond)).then(pl.lit(label))
            reasons_order.append(label)
    parsed = parsed.with_columns(chain.otherwise(None).cast(pl.String).alias("reason"))
    if name in _UNIQUE_KEYS:
        ukey = list(_UNIQUE_KEYS[name])
        cand = parsed.filter(pl.col("reason").is_null()).select(
            pl.col(_ROW), (~pl.struct(ukey).is_first_distinct()).alias("_dup")
        )
        parsed = parsed.join(cand, on=_ROW, how="left", maintain_order="left").with_columns(
            pl.when(pl.col("_dup").fill_null(False))
            .then(pl.lit("duplicate"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
        reasons_order.append("duplicate")
    reason = parsed["reason"]
    valid = parsed.filter(pl.col("reason").is_null()).select(list(canon) + extras)
    if name == "suppliers":  # a supplier without a name is shown by its id
        valid = valid.with_columns(pl.col("name").fill_null(pl.col("supplier_id")))
    date_col = DATED_TABLES.get(name)
    return _build_result(name, raw, reason, valid, reasons_order, date_col=date_col)


def validate_tables(
    tables: Mapping[str, pl.DataFrame | pd.DataFrame],
    *,
    window_start: date | str | None = None,
    window_end: date | str | None = None,
    today: date | str | None = None,
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
    outlier_action: str = DEFAULT_OUTLIER_ACTION,
) -> dict[str, ValidationResult]:
    """Validate every canonical table present in ``tables``; demand is checked against the
    validated items table when there is one (unknown items rejected, categories used by the
    extreme-quantity rule)."""
    out: dict[str, ValidationResult] = {}
    for name in TABLES:
        if name in tables and name != "demand":
            out[name] = validate_table(name, tables[name])
    if "demand" in tables:
        items = out["items"].valid if "items" in out else None
        out["demand"] = validate_demand(
            tables["demand"],
            known_items=items["item_id"] if items is not None else None,
            window_start=window_start,
            window_end=window_end,
            today=today,
            categories=items,
            outlier_factor=outlier_factor,
            outlier_action=outlier_action,
        )
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise DataValidationError(
            f"unknown table(s) {unknown}; canonical tables are {list(TABLES)}"
        )
    return out
