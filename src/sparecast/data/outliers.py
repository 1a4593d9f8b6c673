"""Extreme demand quantities: the robust per-item rule validation applies to demand rows.

A demand row is *extreme* when its quantity is above ``factor`` times the larger of

- the item's typical size: the median of its positive quantities, known only when the item has
  at least ``MIN_ITEM_ROWS`` positive rows (a median of one or two rows would be the row itself);
- its category's typical size: the ``CATEGORY_QUANTILE`` quantile of the item medians of its
  category (of all items when the item has no category or its category has no known median);
  in a category where no item has ``MIN_ITEM_ROWS`` positive rows (very sparse items), the
  medians of the items' one or two positive rows, so that such a category still has a typical
  size.

So a row must be far above both what the item usually draws and what a large item of its kind
draws; lumpy spare-parts demand (a few times the usual size) stays untouched, a typing error of
1e12 units or a bogus row 1000 times the usual size does not. An item with one or two demands
is judged by its category alone. A return (negative quantity) is judged by its size the same
way: a return of 1e12 units is as wrong as an issue of 1e12. Zero quantities are never extreme.

What validation does with an extreme row is ``DataSettings.outlier_action``: ``report`` (kept,
listed), ``cap`` (kept with the quantity cut to the threshold, listed with the original value)
or ``reject`` (rejected with reason ``extreme_quantity``, the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import polars as pl

__all__ = [
    "OutlierAction",
    "OUTLIER_ACTIONS",
    "DEFAULT_OUTLIER_FACTOR",
    "DEFAULT_OUTLIER_ACTION",
    "MIN_ITEM_ROWS",
    "CATEGORY_QUANTILE",
    "extreme_thresholds",
    "category_frame",
    "item_medians",
    "OutlierPool",
    "outlier_pool",
]

OutlierAction = Literal["report", "cap", "reject"]

OUTLIER_ACTIONS: tuple[OutlierAction, ...] = ("report", "cap", "reject")
"""What validation does with an extreme row (see the module docstring)."""

DEFAULT_OUTLIER_FACTOR: float = 100.0
"""Default ``factor``: measured on carparts, oil and the demo (docs/guides/data.md)."""

DEFAULT_OUTLIER_ACTION: OutlierAction = "reject"
"""Default action: a row this far above both typical sizes is almost always a data error (a
typing error, a unit mix-up, a bulk transfer booked as consumption); capping would still put
``factor`` times the typical size into the history, rejecting lists it to be fixed like the
other rejected rows."""

MIN_ITEM_ROWS: int = 3
"""Positive rows an item needs for its own typical size (its median)."""

CATEGORY_QUANTILE: float = 0.9
"""Quantile of the item medians of a category taken as the category's typical size."""


def category_frame(
    categories: pl.DataFrame | Mapping[str, str | None] | None,
) -> pl.DataFrame | None:
    """``item_id, category`` (strings) from an items frame (``item_id`` or ``unique_id`` and
    ``category`` columns) or a mapping item -> category; None when there is nothing to use."""
    if categories is None:
        return None
    if isinstance(categories, pl.DataFrame):
        key = "item_id" if "item_id" in categories.columns else "unique_id"
        if key not in categories.columns or "category" not in categories.columns:
            return None
        frame = categories.select(
            pl.col(key).cast(pl.String).alias("item_id"),
            pl.col("category").cast(pl.String),
        )
    else:
        frame = pl.DataFrame(
            {"item_id": list(categories), "category": list(categories.values())},
            schema={"item_id": pl.String, "category": pl.String},
        )
    return frame.unique("item_id", keep="first", maintain_order=True)


@dataclass(frozen=True)
class OutlierPool:
    """What the rule takes from all items together: the typical size of each category and of
    all items (``overall``). Computed from the :func:`item_medians` of every item, so that rows
    validated in chunks of items (each chunk on its own, ``sparecast.pipeline.chunks``) are
    judged as in one pass over all of them."""

    overall: float | None
    per_category: pl.DataFrame
    """``category, _cat``: the category's typical size."""


def item_medians(rows: pl.DataFrame) -> pl.DataFrame:
    """``item_id, _any_med, _med`` of the items of ``rows`` (``item_id``, ``quantity``) with a
    positive quantity: the median of their positive quantities, and the same where the item has
    ``MIN_ITEM_ROWS`` positive rows (else null). Per item: the frames of disjoint sets of items
    concatenate to the frame of their union."""
    q = pl.col("quantity")
    return (
        rows.filter(q > 0)
        .group_by("item_id", maintain_order=True)
        .agg(pl.len().alias("_n"), q.median().alias("_any_med"))
        .select(
            "item_id",
            "_any_med",  # any item with demand: the pool of its category's typical size
            pl.when(pl.col("_n") >= MIN_ITEM_ROWS).then(pl.col("_any_med")).alias("_med"),
        )
    )


def _with_categories(medians: pl.DataFrame, cats: pl.DataFrame | None) -> pl.DataFrame:
    if cats is not None:
        return medians.join(cats, on="item_id", how="left")
    return medians.with_columns(pl.lit(None, pl.String).alias("category"))


def outlier_pool(
    medians: pl.DataFrame,
    categories: pl.DataFrame | Mapping[str, str | None] | None = None,
) -> OutlierPool:
    """The :class:`OutlierPool` of the items whose :func:`item_medians` are ``medians``."""
    medians = _with_categories(medians, category_frame(categories))
    known = medians.filter(pl.col("_med").is_not_null())
    pool = known if known.height else medians  # the sparse fallback of the module docstring
    overall = pool["_any_med"].quantile(CATEGORY_QUANTILE) if pool.height else None
    per_cat = (
        medians.filter(pl.col("category").is_not_null())
        .group_by("category")
        .agg(
            pl.col("_med").quantile(CATEGORY_QUANTILE).alias("_known"),
            pl.col("_any_med").quantile(CATEGORY_QUANTILE).alias("_sparse"),
        )
        .select("category", pl.coalesce("_known", "_sparse").alias("_cat"))
    )
    return OutlierPool(overall, per_cat)


def extreme_thresholds(
    rows: pl.DataFrame,
    *,
    factor: float = DEFAULT_OUTLIER_FACTOR,
    categories: pl.DataFrame | Mapping[str, str | None] | None = None,
    pool: OutlierPool | None = None,
) -> pl.Series:
    """The threshold above which each row of ``rows`` (``item_id``, ``quantity``) is extreme:
    ``factor * max(item median, category quantile)`` as in the module docstring, null where
    neither is known (too little data to judge). Same length and order as ``rows``; pure.
    ``pool``: the category and overall typical sizes of a larger set of items ``rows`` is a
    part of (default: of the items of ``rows``)."""
    if factor <= 0:
        raise ValueError(f"outlier factor must be positive, got {factor}")
    medians = item_medians(rows)
    cats = category_frame(categories)
    if pool is None:
        pool = outlier_pool(medians, cats)
    frame = rows.select("item_id").with_row_index("_pos")
    frame = frame.join(medians.select("item_id", "_med"), on="item_id", how="left")
    frame = _with_categories(frame, cats)
    frame = frame.join(pool.per_category, on="category", how="left").sort("_pos")
    typical = pl.max_horizontal(
        pl.col("_med"), pl.col("_cat").fill_null(pl.lit(pool.overall, pl.Float64))
    )
    return frame.select((typical * factor).cast(pl.Float64).alias("threshold"))["threshold"]
