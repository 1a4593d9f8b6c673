"""Lead times, open purchase orders and supplier performance from the ERP's purchase orders
and receipts.

Definitions (all in days, dates as calendar days):

* The lead time of a receipt is ``receipt_date - order_date`` of its PO line. A PO line received
  in several parts has one lead time per receipt; its lead time is the mean of those weighted by
  the received quantity (a PO of 10 received 6 after 10 days and 4 after 20 days: 14 days).
* Lead-time statistics use *completed* PO lines only (received quantity >= ordered quantity):
  one observation per completed line, the ``max_samples`` lines completed last (by the date of
  the receipt that filled them; by order date the most recent lines would be the fast ones, as
  recent orders with long lead times are still open) of
  the level used. Mean and sample standard deviation (ddof=1, 0 for a single observation) are
  computed over exactly these observations.
* Every item gets its main supplier (the supplier with most PO lines, ties: the latest order).
  Its lead time comes from its own completed PO lines with that supplier when there are at least
  ``min_orders`` (``lead_time_source = "item_supplier"``), else from all completed lines of that
  supplier (``"supplier"``, also at least ``min_orders``), else from all completed lines of every
  supplier (``"global"``); only when the data holds no completed PO line at all does the
  supplier's ``quoted_lead_time_days`` serve (``"quoted"``). An item's own quoted lead time
  (items-table columns ``lead_time_days`` and optional ``lead_time_std_days``, from an items
  file or the item master) comes right after its own PO lines: before the supplier's and the
  global lead times, which pool other items (``"quoted"``). Items with none of these take
  ``default_days`` (``"default"``) when it is given, else the call fails.
* A quoted lead time of mean m and standard deviation s (0 when not given) is represented by
  25 samples at the normal quantiles (k + 0.5) / 25, scaled so that their mean is m and their
  sample standard deviation s exactly (cut at 0 days); with s = 0 it is the single sample m.
* Open quantity of a PO line = ordered - received (lines received in full or more are closed);
  expected on the promised date, else on ``order_date + round(mean lead time)`` of the item.
* Supplier performance over PO lines due by ``today`` (promised date on or before it):
  ``on_time_rate`` is the share received in full by the promised date, ``fill_rate`` the
  quantity received by the promised date over the quantity ordered (capped per line at the
  ordered quantity); ``mean_delay_days`` is the mean lateness ``max(0, completion - promised)``
  over the completed lines with a promised date (completion = the receipt that filled the line).

Bad rows are reported in ``LeadTimeResult.rejected`` with a reason and never used; they never
raise. Two identical receipts (same PO line, date and quantity) are both kept: without a receipt
id they cannot be told from two partial deliveries on one day. A line received beyond its
ordered quantity is complete; the surplus counts for its lead time, not for the fill rate.
Reasons, checked in this order (the first that applies is reported):

======================== ====================================================================
purchase_orders
======================== ====================================================================
missing_<col>/bad_<col>  po_id, item_id, order_date or quantity null/blank or unparseable
missing_supplier_id      no supplier
unknown_item             item not in the items table (when given)
unknown_supplier         supplier not in the suppliers table (when given)
non_positive_quantity    ordered quantity <= 0
future_order_date        order_date after ``today``
promised_before_order    promised_date before order_date
duplicate_po_line        a later row with the same (po_id, item_id)
======================== ====================================================================
receipts
======================== ====================================================================
missing_<col>/bad_<col>  po_id, item_id, receipt_date or quantity null/blank or unparseable
non_positive_quantity    received quantity <= 0
future_receipt           receipt_date after ``today``
unknown_po               po_id not in purchase_orders
item_not_on_po           the PO exists, but has no line for this item
rejected_po              the PO line itself was rejected
receipt_before_order     receipt_date before the PO's order_date
======================== ====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from sparecast.data.schema import parse_float_expr, validate_table
from sparecast.errors import DataValidationError

__all__ = [
    "LEAD_TIME_SOURCES",
    "PO_REJECT_REASONS",
    "RECEIPT_REJECT_REASONS",
    "LeadTimeResult",
    "lead_time_stats",
    "quote_samples",
]

LEAD_TIME_SOURCES: tuple[str, ...] = ("item_supplier", "supplier", "global", "quoted", "default")
PO_REJECT_REASONS: tuple[str, ...] = (
    "missing_supplier_id",
    "unknown_item",
    "unknown_supplier",
    "non_positive_quantity",
    "future_order_date",
    "promised_before_order",
    "duplicate_po_line",
)
RECEIPT_REJECT_REASONS: tuple[str, ...] = (
    "non_positive_quantity",
    "future_receipt",
    "unknown_po",
    "item_not_on_po",
    "rejected_po",
    "receipt_before_order",
)

_EPS = 1e-9
_REJECTED_SCHEMA = {
    "table": pl.String,
    "input_row": pl.Int64,
    "po_id": pl.String,
    "item_id": pl.String,
    "reason": pl.String,
    "detail": pl.String,
}
_SAMPLES = pl.List(pl.Float64)
_QUOTE_POINTS = 25
_Z = np.array([NormalDist().inv_cdf((k + 0.5) / _QUOTE_POINTS) for k in range(_QUOTE_POINTS)])
_Z = _Z / _Z.std(ddof=1)  # symmetric: mean 0; sample std 1


def quote_samples(mean: float, std: float | None = None) -> list[float]:
    """Lead-time samples (days) of a quoted lead time: ``mean`` alone when ``std`` is 0 or
    missing, else 25 samples at the normal quantiles with exactly that mean and sample standard
    deviation (cut at 0)."""
    if std is None or not np.isfinite(std) or std <= 0:
        return [float(mean)]
    return np.maximum(mean + std * _Z, 0.0).tolist()


def _item_quotes(item_table: pl.DataFrame | None) -> pl.DataFrame:
    """item_id -> samples of its quoted lead time (items with a ``lead_time_days`` value)."""
    schema: dict[str, pl.DataType] = {"item_id": pl.String(), "_iquote": _SAMPLES}
    if item_table is None or "lead_time_days" not in item_table.columns:
        return pl.DataFrame(schema=schema)
    cols = [parse_float_expr(pl.col("lead_time_days"), item_table.schema["lead_time_days"])]
    if "lead_time_std_days" in item_table.columns:
        std = item_table.schema["lead_time_std_days"]
        cols.append(parse_float_expr(pl.col("lead_time_std_days"), std))
    else:
        cols.append(pl.lit(None, pl.Float64))
    q = item_table.select("item_id", *cols).filter(pl.nth(1).is_not_null() & (pl.nth(1) >= 0))
    rows = q.rows()
    return pl.DataFrame(
        {"item_id": [r[0] for r in rows], "_iquote": [quote_samples(r[1], r[2]) for r in rows]},
        schema=schema,
    )


@dataclass
class LeadTimeResult:
    """What ``lead_time_stats`` found; every attribute is a polars DataFrame except
    ``global_samples`` (the global lead-time observations, days, last completed last).

    See the module docstring for the definitions, and docs/interfaces/inventory.md or
    docs/guides/inventory.md for the columns.
    """

    per_item: pl.DataFrame
    per_item_supplier: pl.DataFrame
    open_orders: pl.DataFrame
    open_quantity: pl.DataFrame
    suppliers: pl.DataFrame
    rejected: pl.DataFrame
    global_samples: np.ndarray

    def samples_for(self, item_ids: Sequence[str] | np.ndarray) -> list[np.ndarray]:
        """Lead-time samples (days, float64) for ``item_ids`` in that order; an item that is not
        in ``per_item`` gets the global samples."""
        ids = pl.DataFrame({"item_id": [str(i) for i in item_ids]}, schema={"item_id": pl.String})
        lists = ids.join(
            self.per_item.select("item_id", "lead_time_samples_days"),
            on="item_id",
            how="left",
            maintain_order="left",
        )["lead_time_samples_days"]
        lengths = lists.list.len().fill_null(0).to_numpy()
        flat = lists.explode().drop_nulls().to_numpy().astype(np.float64)
        parts = np.split(flat, np.cumsum(lengths)[:-1]) if lengths.size else []
        glob = self.global_samples.astype(np.float64)
        return [p if p.size else glob for p in parts]

    def open_quantity_for(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Open PO quantity per item of ``item_ids`` (0 where none), float64."""
        lookup = dict(
            zip(
                self.open_quantity["item_id"].to_list(),
                self.open_quantity["open_quantity"].to_list(),
                strict=True,
            )
        )
        return np.array([lookup.get(str(i), 0.0) for i in item_ids], dtype=np.float64)


def _from_validation(table: str, rejected: pl.DataFrame) -> pl.DataFrame:
    """validate_table's rejected rows (all strings) in the rejected-rows layout."""
    if rejected.height == 0:
        return pl.DataFrame(schema=_REJECTED_SCHEMA)
    return rejected.select(
        pl.lit(table).alias("table"),
        pl.col("input_row").cast(pl.Int64),
        pl.col("po_id").cast(pl.String),
        pl.col("item_id").cast(pl.String),
        pl.col("reason"),
        pl.lit("").alias("detail"),
    )


def _reject_rows(table: str, frame: pl.DataFrame, detail: pl.Expr) -> pl.DataFrame:
    # rechunk: polars 2.1 panics in concat_str (pl.format) on some multi-chunk string columns
    return frame.rechunk().select(
        pl.lit(table).alias("table"),
        pl.col("input_row").cast(pl.Int64),
        pl.col("po_id"),
        pl.col("item_id"),
        pl.col("reason"),
        detail.cast(pl.String).alias("detail"),
    )


def _check_purchase_orders(
    purchase_orders: pl.DataFrame,
    items: pl.DataFrame | None,
    suppliers: pl.DataFrame | None,
    today: date,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(valid PO lines, rejected rows, every (po_id, item_id) seen on a rejected line)."""
    checked = validate_table("purchase_orders", purchase_orders)
    raw_rejected = _from_validation("purchase_orders", checked.rejected)
    # validate_table keeps the input order: the input row of each valid row is the row number
    # that is not among the rejected ones
    dropped = checked.rejected["input_row"].cast(pl.Int64).to_numpy()
    kept = np.setdiff1d(np.arange(purchase_orders.height), dropped)
    po = checked.valid.with_columns(pl.Series("input_row", kept, dtype=pl.Int64))
    q, od, pd_ = pl.col("quantity"), pl.col("order_date"), pl.col("promised_date")
    chain: Any = pl.when(pl.col("supplier_id").is_null()).then(pl.lit("missing_supplier_id"))
    if items is not None:
        known_items = items["item_id"].cast(pl.String).str.strip_chars().implode()
        chain = chain.when(~pl.col("item_id").is_in(known_items)).then(pl.lit("unknown_item"))
    if suppliers is not None:
        known_sup = suppliers["supplier_id"].cast(pl.String).str.strip_chars().implode()
        chain = chain.when(~pl.col("supplier_id").is_in(known_sup)).then(pl.lit("unknown_supplier"))
    chain = (
        chain.when(q <= 0)
        .then(pl.lit("non_positive_quantity"))
        .when(od > today)
        .then(pl.lit("future_order_date"))
        .when(pd_.is_not_null() & (pd_ < od))
        .then(pl.lit("promised_before_order"))
    )
    po = po.with_columns(chain.otherwise(None).cast(pl.String).alias("reason"))
    dup = (
        po.filter(pl.col("reason").is_null())
        .select("input_row", (~pl.struct("po_id", "item_id").is_first_distinct()).alias("_dup"))
        .filter("_dup")
    )
    po = po.with_columns(
        pl.when(pl.col("input_row").is_in(dup["input_row"].implode()))
        .then(pl.lit("duplicate_po_line"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    bad = po.filter(pl.col("reason").is_not_null())
    detail = pl.format(
        "supplier={} quantity={} order_date={} promised_date={}",
        pl.col("supplier_id").fill_null("-"),
        q,
        od,
        pd_.cast(pl.String).fill_null("-"),
    )
    rejected = pl.concat([raw_rejected, _reject_rows("purchase_orders", bad, detail)])
    rejected_lines = pl.concat(
        [
            raw_rejected.select("po_id", "item_id"),
            bad.select("po_id", "item_id"),
        ]
    ).unique()
    valid = po.filter(pl.col("reason").is_null()).drop("reason", "input_row")
    return valid, rejected, rejected_lines


def _check_receipts(
    receipts: pl.DataFrame, po: pl.DataFrame, rejected_lines: pl.DataFrame, today: date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid receipts joined to their PO line's order_date, rejected rows)."""
    checked = validate_table("receipts", receipts)
    raw_rejected = _from_validation("receipts", checked.rejected)
    rc = checked.valid.select("po_id", "item_id", "receipt_date", "quantity")
    rows = np.arange(receipts.height)
    if checked.rejected.height:
        rows = np.setdiff1d(rows, checked.rejected["input_row"].cast(pl.Int64).to_numpy())
    rc = rc.with_columns(pl.Series("input_row", rows, dtype=pl.Int64))
    lines = po.select("po_id", "item_id", "order_date", pl.lit(True).alias("_line"))
    rc = rc.join(lines, on=["po_id", "item_id"], how="left", maintain_order="left")
    valid_po_ids = po["po_id"].unique().implode()
    bad_lines = rejected_lines.select(
        "po_id", "item_id", pl.lit(True).alias("_rejected_line")
    ).unique()
    rc = rc.join(bad_lines, on=["po_id", "item_id"], how="left", maintain_order="left")
    any_po_ids = pl.concat([po["po_id"], rejected_lines["po_id"]]).drop_nulls().unique().implode()
    q, rd = pl.col("quantity"), pl.col("receipt_date")
    no_line = pl.col("_line").is_null()
    reason = (
        pl.when(q <= 0)
        .then(pl.lit("non_positive_quantity"))
        .when(rd > today)
        .then(pl.lit("future_receipt"))
        .when(no_line & pl.col("_rejected_line").fill_null(False))
        .then(pl.lit("rejected_po"))
        .when(no_line & pl.col("po_id").is_in(valid_po_ids))
        .then(pl.lit("item_not_on_po"))
        .when(no_line & pl.col("po_id").is_in(any_po_ids))
        .then(pl.lit("rejected_po"))
        .when(no_line)
        .then(pl.lit("unknown_po"))
        .when(rd < pl.col("order_date"))
        .then(pl.lit("receipt_before_order"))
        .otherwise(None)
        .cast(pl.String)
    )
    rc = rc.with_columns(reason.alias("reason"))
    bad = rc.filter(pl.col("reason").is_not_null())
    detail = pl.format(
        "quantity={} receipt_date={} order_date={}",
        q,
        rd,
        pl.col("order_date").cast(pl.String).fill_null("-"),
    )
    rejected = pl.concat([raw_rejected, _reject_rows("receipts", bad, detail)])
    valid = rc.filter(pl.col("reason").is_null()).select(
        "po_id", "item_id", "order_date", "receipt_date", "quantity"
    )
    return valid, rejected


def _po_lines(po: pl.DataFrame, rc: pl.DataFrame) -> pl.DataFrame:
    """One row per valid PO line with its receipts summarised: received_quantity,
    lead_time_days (quantity-weighted), completion_date, received_by_promised, completed."""
    lt = (pl.col("receipt_date") - pl.col("order_date")).dt.total_days().cast(pl.Float64)
    q = pl.col("quantity")
    lines = po.with_row_index("_line")
    received = (
        rc.join(
            lines.select(
                "_line", "po_id", "item_id", pl.col("quantity").alias("_ordered"), "promised_date"
            ),
            on=["po_id", "item_id"],
        )
        .sort("_line", "receipt_date")
        .with_columns(lt.alias("_lt"))
        .group_by("_line")  # rows keep their (date) order within a group
        .agg(
            q.sum().alias("received_quantity"),
            ((pl.col("_lt") * q).sum() / q.sum()).alias("lead_time_days"),
            pl.col("receipt_date")
            .filter(q.cum_sum() >= pl.col("_ordered") - _EPS)
            .first()
            .alias("completion_date"),
            q.filter(
                pl.col("promised_date").is_not_null()
                & (pl.col("receipt_date") <= pl.col("promised_date"))
            )
            .sum()
            .alias("received_by_promised"),
        )
    )
    return (
        lines.join(received, on="_line", how="left", maintain_order="left")
        .drop("_line")
        .with_columns(
            pl.col("received_quantity").fill_null(0.0),
            pl.col("received_by_promised").fill_null(0.0),
            (pl.col("received_quantity").fill_null(0.0) >= pl.col("quantity") - _EPS).alias(
                "completed"
            ),
        )
    )


def lead_time_stats(
    purchase_orders: pl.DataFrame,
    receipts: pl.DataFrame,
    *,
    suppliers: pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    min_orders: int = 3,
    today: date,
    max_samples: int = 200,
    default_days: float | None = None,
) -> LeadTimeResult:
    """Lead-time statistics per item (with fallbacks), open PO quantities, supplier performance
    and the rejected PO/receipt rows, from the canonical purchase_orders and receipts tables.

    Tables may be raw (strings) or validated; see the module docstring for every definition and
    rejection reason. ``today`` bounds the data (later orders/receipts are rejected) and decides
    which promised dates are due. ``default_days``: the lead time of items with no learned or
    quoted one (``"default"``). Raises DataValidationError only when no lead time can be known
    for some item: no completed PO line at all, no quoted lead time of the item or its supplier
    and no ``default_days``.
    """
    if min_orders < 1:
        raise DataValidationError(f"min_orders must be >= 1, got {min_orders}")
    if max_samples < 1:
        raise DataValidationError(f"max_samples must be >= 1, got {max_samples}")
    sup_table = validate_table("suppliers", suppliers).valid if suppliers is not None else None
    item_table = validate_table("items", items).valid if items is not None else None
    po, po_rejected, rejected_lines = _check_purchase_orders(
        purchase_orders, item_table, sup_table, today
    )
    rc, rc_rejected = _check_receipts(receipts, po, rejected_lines, today)
    rejected = pl.concat([po_rejected, rc_rejected]).sort(
        "table", "input_row", descending=[True, False]
    )
    lines = _po_lines(po, rc)

    done = lines.filter("completed").sort("completion_date", "order_date", "po_id")
    recent = pl.col("lead_time_days").tail(max_samples).alias("samples")
    by_item_sup = done.group_by("item_id", "supplier_id").agg(recent, pl.len().alias("n_orders"))
    by_sup = done.group_by("supplier_id").agg(recent, pl.len().alias("_n_sup"))
    global_samples = done["lead_time_days"].tail(max_samples).to_numpy().astype(np.float64)

    # main supplier: most PO lines, ties broken by the latest order, then the smallest id
    main = (
        po.group_by("item_id", "supplier_id")
        .agg(pl.len().alias("_n"), pl.col("order_date").max().alias("_last"))
        .sort(["_n", "_last", "supplier_id"], descending=[True, True, False])
        .group_by("item_id", maintain_order=True)
        .first()
        .select("item_id", "supplier_id")
    )
    if item_table is not None:
        ids = item_table.select("item_id")
    else:
        ids = po.select("item_id").unique()
    per = ids.join(main, on="item_id", how="left").sort("item_id")
    per = per.join(
        by_item_sup.select("item_id", "supplier_id", "n_orders", pl.col("samples").alias("_own")),
        on=["item_id", "supplier_id"],
        how="left",
    ).join(
        by_sup.select("supplier_id", "_n_sup", pl.col("samples").alias("_sup")),
        on="supplier_id",
        how="left",
    )
    if sup_table is not None:
        per = per.join(
            sup_table.select("supplier_id", pl.col("quoted_lead_time_days").alias("_quoted")),
            on="supplier_id",
            how="left",
        )
    else:
        per = per.with_columns(pl.lit(None, pl.Float64).alias("_quoted"))
    per = per.join(_item_quotes(item_table), on="item_id", how="left")
    glob = pl.lit(pl.Series([global_samples.tolist()], dtype=_SAMPLES))
    own_ok = pl.col("n_orders").fill_null(0) >= min_orders
    item_quoted = pl.col("_iquote").is_not_null()
    sup_ok = pl.col("_n_sup").fill_null(0) >= min_orders
    glob_ok = global_samples.size > 0
    quoted = pl.concat_list(pl.col("_quoted")).cast(_SAMPLES)
    has_default = default_days is not None
    default = pl.lit(pl.Series([[float(default_days or 0.0)]], dtype=_SAMPLES))
    per = per.with_columns(
        pl.col("n_orders").fill_null(0).cast(pl.Int64),
        pl.when(own_ok)
        .then(pl.col("_own"))
        .when(item_quoted)
        .then(pl.col("_iquote"))
        .when(sup_ok)
        .then(pl.col("_sup"))
        .when(pl.lit(glob_ok))
        .then(glob)
        .when(pl.col("_quoted").is_not_null())
        .then(quoted)
        .when(pl.lit(has_default))
        .then(default)
        .otherwise(None)
        .alias("lead_time_samples_days"),
        pl.when(own_ok)
        .then(pl.lit("item_supplier"))
        .when(item_quoted)
        .then(pl.lit("quoted"))
        .when(sup_ok)
        .then(pl.lit("supplier"))
        .when(pl.lit(glob_ok))
        .then(pl.lit("global"))
        .when(pl.col("_quoted").is_not_null())
        .then(pl.lit("quoted"))
        .when(pl.lit(has_default))
        .then(pl.lit("default"))
        .otherwise(None)
        .alias("lead_time_source"),
    )
    unknown = per.filter(pl.col("lead_time_source").is_null())
    if unknown.height:
        raise DataValidationError(
            f"no lead time can be estimated for {unknown.height} item(s), e.g. "
            f"{unknown['item_id'].head(3).to_list()}: purchase_orders/receipts hold no completed "
            "PO line and the suppliers table gives no quoted_lead_time_days for their supplier. "
            "Provide receipts of past purchase orders or the suppliers' quoted lead times."
        )
    s = pl.col("lead_time_samples_days")
    per = per.with_columns(
        s.list.mean().alias("lead_time_mean_days"),
        s.list.std(ddof=1).fill_null(0.0).alias("lead_time_std_days"),
        s.list.len().cast(pl.Int64).alias("lead_time_n_samples"),
    ).select(
        "item_id",
        "supplier_id",
        "n_orders",
        "lead_time_mean_days",
        "lead_time_std_days",
        "lead_time_n_samples",
        "lead_time_samples_days",
        "lead_time_source",
    )

    per_item_supplier = (
        by_item_sup.select(
            "item_id",
            "supplier_id",
            pl.col("n_orders").cast(pl.Int64),
            pl.col("samples").list.mean().alias("lead_time_mean_days"),
            pl.col("samples").list.std(ddof=1).fill_null(0.0).alias("lead_time_std_days"),
        )
        .join(
            main.with_columns(pl.lit(True).alias("main_supplier")),
            on=["item_id", "supplier_id"],
            how="left",
        )
        .with_columns(pl.col("main_supplier").fill_null(False))
        .sort("item_id", "supplier_id")
    )

    open_orders = (
        lines.with_columns(
            (pl.col("quantity") - pl.col("received_quantity")).alias("open_quantity")
        )
        .filter(pl.col("open_quantity") > _EPS)
        .join(per.select("item_id", "lead_time_mean_days"), on="item_id", how="left")
        .with_columns(
            pl.coalesce(
                pl.col("promised_date"),
                pl.col("order_date")
                + pl.duration(days=pl.col("lead_time_mean_days").round(0).cast(pl.Int64)),
            ).alias("expected_date")
        )
        .select(
            "item_id",
            "po_id",
            "supplier_id",
            "order_date",
            pl.col("quantity").alias("ordered_quantity"),
            "received_quantity",
            "open_quantity",
            "expected_date",
            (pl.col("expected_date") < today).alias("overdue"),
        )
        .sort("item_id", "expected_date", "po_id")
    )
    open_quantity = (
        open_orders.group_by("item_id")
        .agg(
            pl.col("open_quantity").sum(),
            pl.len().cast(pl.Int64).alias("n_open_orders"),
            pl.col("expected_date").min().alias("next_expected_date"),
        )
        .sort("item_id")
    )

    supplier_perf = _supplier_performance(lines, sup_table, today)
    return LeadTimeResult(
        per_item=per,
        per_item_supplier=per_item_supplier,
        open_orders=open_orders,
        open_quantity=open_quantity,
        suppliers=supplier_perf,
        rejected=rejected,
        global_samples=global_samples,
    )


def _supplier_performance(
    lines: pl.DataFrame, sup_table: pl.DataFrame | None, today: date
) -> pl.DataFrame:
    due = pl.col("promised_date").is_not_null() & (pl.col("promised_date") <= today)
    on_time = pl.col("completed") & (pl.col("completion_date") <= pl.col("promised_date"))
    late_days = (
        (pl.col("completion_date") - pl.col("promised_date")).dt.total_days().clip(lower_bound=0)
    )
    filled = pl.min_horizontal(pl.col("received_by_promised"), pl.col("quantity"))
    perf = lines.group_by("supplier_id").agg(
        pl.len().cast(pl.Int64).alias("n_orders"),
        pl.col("completed").sum().cast(pl.Int64).alias("n_completed"),
        due.sum().cast(pl.Int64).alias("n_due"),
        (on_time.filter(due).sum() / due.sum()).alias("on_time_rate"),
        late_days.filter(pl.col("completed") & pl.col("promised_date").is_not_null())
        .cast(pl.Float64)
        .mean()
        .alias("mean_delay_days"),
        (filled.filter(due).sum() / pl.col("quantity").filter(due).sum()).alias("fill_rate"),
        pl.col("lead_time_days").filter("completed").mean().alias("lead_time_mean_days"),
    )
    # a supplier with nothing due has no rate (0/0): null, not NaN
    perf = perf.with_columns(
        pl.when(pl.col("n_due") > 0).then(pl.col(c)).otherwise(None).alias(c)
        for c in ("on_time_rate", "fill_rate")
    )
    if sup_table is not None:
        perf = sup_table.select("supplier_id", "name", "quoted_lead_time_days").join(
            perf, on="supplier_id", how="full", coalesce=True
        )
        perf = perf.with_columns(
            pl.col("n_orders", "n_completed", "n_due").fill_null(0),
        )
    else:
        perf = perf.with_columns(
            pl.col("supplier_id").alias("name"),
            pl.lit(None, pl.Float64).alias("quoted_lead_time_days"),
        )
    return perf.select(
        "supplier_id",
        pl.col("name").fill_null(pl.col("supplier_id")),
        "n_orders",
        "n_completed",
        "n_due",
        "on_time_rate",
        "mean_delay_days",
        "fill_rate",
        "lead_time_mean_days",
        "quoted_lead_time_days",
    ).sort("supplier_id")
