"""Server-side tables: one query (filters, text search, sort, page) over a polars frame, and
its CSV/Excel export. The page shows ``page_size`` rows; the export the whole filtered table."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import polars as pl

__all__ = [
    "Column",
    "TableSpec",
    "TableQuery",
    "TablePage",
    "query_table",
    "filtered",
    "sort_frame",
    "fmt",
]


@dataclass(frozen=True)
class Column:
    """One column of a shown table: frame column, heading, format (int, num, num2, pct, money,
    text, date, link)."""

    key: str
    label: str
    kind: str = "text"


@dataclass(frozen=True)
class TableSpec:
    """What a page's table shows and may be sorted/filtered by."""

    name: str
    columns: tuple[Column, ...]
    default_sort: str
    default_desc: bool = False
    filters: tuple[str, ...] = ()  # columns filtered by equality (?supplier_id=S010)
    search: tuple[str, ...] = ()  # columns the ?q= text search looks into
    tiebreak: str = "unique_id"


@dataclass
class TableQuery:
    """The table part of a request's query string."""

    sort: str | None = None
    desc: bool | None = None
    page: int = 1
    q: str = ""
    filters: dict[str, str] = field(default_factory=dict)
    min_risk: float | None = None

    @classmethod
    def from_params(cls, params: dict[str, str], spec: TableSpec) -> TableQuery:
        """Parse ``sort``, ``desc``, ``page``, ``q``, ``min_risk`` and the spec's filters."""
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        try:
            min_risk = float(params["min_risk"]) if params.get("min_risk") else None
        except ValueError:
            min_risk = None
        desc = params.get("desc")
        return cls(
            sort=params.get("sort") or None,
            desc=None if desc is None else desc in ("1", "true", "yes"),
            page=page,
            q=params.get("q", "").strip(),
            filters={k: params[k] for k in spec.filters if params.get(k)},
            min_risk=min_risk,
        )

    def params(self, **changes: Any) -> str:
        """This query as a query string, with ``changes`` applied (None drops a key)."""
        values: dict[str, Any] = {
            "sort": self.sort,
            "desc": None if self.desc is None else int(self.desc),
            "page": self.page if self.page > 1 else None,
            "q": self.q or None,
            "min_risk": self.min_risk,
            **self.filters,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v is not None and v != ""})


@dataclass
class TablePage:
    """One page of a filtered, sorted table."""

    spec: TableSpec
    query: TableQuery
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    page_size: int
    sort: str
    desc: bool


Sorter = Callable[[pl.DataFrame, str, bool], pl.DataFrame]


def sort_frame(frame: pl.DataFrame, spec: TableSpec, sort: str, desc: bool) -> pl.DataFrame:
    """``frame`` sorted by ``sort`` (then the spec's tie-break column), nulls last."""
    tie = spec.tiebreak
    by = [sort] + ([tie] if tie in frame.columns and tie != sort else [])
    return frame.sort(by, descending=[desc] + [False] * (len(by) - 1), nulls_last=True)


def filtered(
    frame: pl.DataFrame, spec: TableSpec, query: TableQuery, sorter: Sorter | None = None
) -> pl.DataFrame:
    """``frame`` sorted, then with the query's filters, search and risk floor applied (a filter
    keeps the order, so ``sorter`` may hand back a sorted frame it remembered)."""
    sort, desc = _sort_of(spec, query, frame)
    out = sorter(frame, sort, desc) if sorter is not None else sort_frame(frame, spec, sort, desc)
    for key, value in query.filters.items():
        if key in out.columns:
            out = out.filter(pl.col(key).cast(pl.String) == value)
    if query.q and spec.search:
        needle = query.q.lower()
        cond = pl.lit(False)
        for key in spec.search:
            if key in out.columns:
                cond = cond | pl.col(key).cast(pl.String).str.to_lowercase().str.contains(
                    needle, literal=True
                ).fill_null(False)
        out = out.filter(cond)
    if query.min_risk is not None and "stockout_risk" in out.columns:
        out = out.filter(pl.col("stockout_risk") >= query.min_risk)
    return out


def _sort_of(spec: TableSpec, query: TableQuery, frame: pl.DataFrame) -> tuple[str, bool]:
    keys = {c.key for c in spec.columns}
    sort = query.sort if query.sort in keys and query.sort in frame.columns else spec.default_sort
    desc = spec.default_desc if query.desc is None or sort != query.sort else query.desc
    return sort, desc


def query_table(
    frame: pl.DataFrame,
    spec: TableSpec,
    query: TableQuery,
    page_size: int,
    sorter: Sorter | None = None,
) -> TablePage:
    """The page ``query.page`` of ``frame`` filtered and sorted by ``query``."""
    out = filtered(frame, spec, query, sorter)
    total = out.height
    pages = max(1, math.ceil(total / page_size))
    page = min(query.page, pages)
    rows = out.slice((page - 1) * page_size, page_size).to_dicts()
    sort, desc = _sort_of(spec, query, frame)
    return TablePage(spec, query, rows, total, page, pages, page_size, sort, desc)


def fmt(value: Any, kind: str) -> str:
    """A cell shown as text: thousands separators, percentages, em dash for missing."""
    if value is None:
        return "\u2014"
    if isinstance(value, float) and math.isnan(value):
        return "\u2014"
    if kind in ("int", "num", "num2", "money", "pct", "num3"):
        try:
            x = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isinf(x):
            return "\u221e"
        if kind == "pct":
            return f"{100 * x:.1f}%"
        digits = {"int": 0, "num": 1, "num2": 2, "num3": 3, "money": 2}[kind]
        return f"{x:,.{digits}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
