"""Chunk sources: where a Dask chunk task gets its items' demand.

A chunk task (``sparecast.pipeline.distributed``) takes a *chunk source* and turns it into the
chunk's :class:`DemandPanel` with :func:`as_panel` on the worker:

- a :class:`DemandPanel` itself (a slice of the whole panel the client loaded and holds);
- a :class:`FileRange`: the rows of a long-format Parquet file (``unique_id, ds, y``) whose item
  ids lie in ``[lo, hi]``, read on the worker (a filter on the id column: in a file sorted by id
  the row groups' statistics skip the rest), validated with the rules of the one-process load
  (``sparecast.pipeline.load``) and built into the chunk's panel on the run's calendar.

A :class:`ChunkedPanel` stands for the whole panel on the client without its demand matrix:
the item ids, the calendar and the chunk sources. The DaskEngine maps its steps over its
sources; the client never holds ``y``.

The validation of a chunk equals that of the whole file for the rows of its items: every demand
rule is per row or per item, except the extreme-quantity rule's typical sizes of a category and
of all items, which the client computes from the items' medians gathered from the chunks
(:class:`sparecast.data.outliers.OutlierPool`) and gives to every chunk. Chunks that could
differ are not made: a file with null, blank or padded ids, non-string ids or a ``line_id``
column (duplicates by line id cross items) is loaded in one piece (:func:`why_not_chunked`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast.data.outliers import OutlierPool, item_medians
from sparecast.data.panel import DemandPanel
from sparecast.data.schema import (
    MAX_EXAMPLES,
    ValidationReport,
    ValidationResult,
    validate_demand,
)

ROW = "input_row"
"""The rejected rows' and examples' row number (``sparecast.data.schema``)."""

__all__ = [
    "ChunkCheck",
    "ChunkedPanel",
    "FileRange",
    "ReadSpec",
    "as_panel",
    "check_range",
    "distinct_ids",
    "medians_of_range",
    "merge_reports",
    "why_not_chunked",
]

LONG = {"unique_id": "item_id", "ds": "date", "y": "quantity"}
BACK = {v: k for k, v in LONG.items()}
FILE_ROW = "_file_row"


@dataclass(frozen=True)
class ReadSpec:
    """How a chunk reads and validates its rows: the file and the one-process load's rules."""

    path: str
    today: date | None = None
    window_start: date | None = None
    window_end: date | None = None
    outlier_factor: float = 100.0
    outlier_action: str = "reject"
    pool: OutlierPool | None = None
    """The typical sizes of all items (None: of the chunk's items, as when validating alone)."""
    freq: str | None = None
    """The calendar of the run (set once the client knows it): frequency, first and last day."""
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class FileRange:
    """The rows of the items ``lo`` to ``hi`` (inclusive, sorted as strings) of ``spec.path``;
    ``item_ids``: the chunk's items with valid rows (its panel's rows), once known."""

    spec: ReadSpec
    lo: str
    hi: str
    item_ids: tuple[str, ...] | None = None
    only: bool = False
    """Read the rows of the items ``item_ids`` only (not every id of the range): a sample of
    items, read and validated as in the whole (every rule is per row or per item)."""
    stop: int | None = None
    """The panel cut to its first ``stop`` periods after reading (a backtest's fit before its
    earliest origin: :meth:`ChunkedPanel.slice_periods`); None: every period."""
    attributes: pl.DataFrame | None = field(default=None, compare=False)
    """The items' attributes (one row per item of ``item_ids``): the panel's, for a method
    whose features use them (the global LightGBM's unit cost)."""

    def read(self, *, file_rows: bool = False) -> pl.DataFrame:
        """The range's rows as the file has them (``unique_id, ds, y`` and any other column),
        in file order, renamed to the canonical ``item_id, date, quantity``; ``file_rows``: with
        each row's 0-based row number in the file (``_file_row``, from the row groups' offsets:
        the read still skips the other row groups)."""
        ids = pl.col("unique_id")
        keep = ids.is_between(pl.lit(self.lo), pl.lit(self.hi), closed="both")
        if self.only and self.item_ids is not None:
            keep = keep & ids.is_in(list(self.item_ids))
        return (
            pl.scan_parquet(self.spec.path, row_index_name=FILE_ROW if file_rows else None)
            .filter(keep)
            .collect()
            .rename(LONG)
        )

    def validate(self, rows: pl.DataFrame | None = None, **override: Any) -> ValidationResult:
        """``validate_demand`` of the range's rows (or ``rows`` read of it) with the spec's
        rules (``override``: others)."""
        s = self.spec
        rules: dict[str, Any] = {
            "window_start": s.window_start,
            "window_end": s.window_end,
            "today": s.today,
            "outlier_factor": s.outlier_factor,
            "outlier_action": s.outlier_action,
            "outlier_pool": s.pool,
            **override,
        }
        return validate_demand(self.read() if rows is None else rows, **rules)


def as_panel(chunk: DemandPanel | FileRange) -> DemandPanel:
    """The chunk's panel: ``chunk`` itself, or its file range read, validated and built on the
    run's calendar with the rows ``chunk.item_ids`` (run on the worker), cut to its first
    ``chunk.stop`` periods if set, with its attributes."""
    if isinstance(chunk, DemandPanel):
        return chunk
    s = chunk.spec
    if chunk.item_ids is None or s.freq is None or s.start is None or s.end is None:
        raise ValueError("a FileRange needs its item ids and the run's calendar to be a panel")
    valid = chunk.validate().valid.rename(BACK)
    panel = DemandPanel.from_long(
        valid,
        freq=s.freq,  # type: ignore[arg-type]
        start=s.start,
        end=s.end,
        item_ids=list(chunk.item_ids),
    )
    if chunk.attributes is not None:
        panel = dataclasses.replace(panel, attributes=chunk.attributes)
    return panel if chunk.stop is None else panel.slice_periods(chunk.stop)


@dataclass
class ChunkCheck:
    """What the client gathers of one chunk's validation: the report, the rejected rows (with
    the file's column names), the items with valid rows (sorted) and the distinct valid days."""

    report: ValidationReport
    rejected: pl.DataFrame
    item_ids: list[str]
    days: np.ndarray


def medians_of_range(chunk: FileRange, **override: Any) -> pl.DataFrame:
    """:func:`sparecast.data.outliers.item_medians` of the range's rows that pass every rule
    before the extreme-quantity rule (run on the worker)."""
    return item_medians(chunk.validate(outlier_action="report", **override).valid)


def check_range(chunk: FileRange, **override: Any) -> ChunkCheck:
    """The range validated as the one-process load validates it (run on the worker); the
    rejected rows and the report's examples numbered by their rows in the file
    (``input_row``), as one process numbers them."""
    rows = chunk.read(file_rows=True)
    file_row = rows[FILE_ROW].cast(pl.Int64)
    res = chunk.validate(rows.drop(FILE_ROW), **override)
    ids = res.valid["item_id"].unique().sort().to_list()
    days = np.unique(res.valid["date"].to_physical().to_numpy())
    rejected = res.rejected.rename(BACK, strict=False)
    if rejected.height:
        rejected = rejected.with_columns(
            file_row.gather(rejected[ROW].cast(pl.Int64)).cast(rejected[ROW].dtype).alias(ROW)
        )
    for examples in res.report.examples.values():
        for ex in examples:
            if ex.get(ROW) is not None:
                ex[ROW] = type(ex[ROW])(file_row[int(ex[ROW])])
    return ChunkCheck(res.report, rejected, ids, days)


def merge_reports(reports: list[ValidationReport]) -> ValidationReport:
    """The chunks' reports as one: counts summed (reasons in order of first appearance), the
    examples of each reason the first ``MAX_EXAMPLES`` of the chunks in order,
    the date range over all."""
    first = reports[0]
    counts: dict[str, int] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        for reason, n in r.counts.items():
            counts[reason] = counts.get(reason, 0) + n
        for reason, ex in r.examples.items():
            examples.setdefault(reason, []).extend(ex)
    mins = [r.date_min for r in reports if r.date_min is not None]
    maxs = [r.date_max for r in reports if r.date_max is not None]
    return dataclasses.replace(
        first,
        rows_in=sum(r.rows_in for r in reports),
        rows_kept=sum(r.rows_kept for r in reports),
        rows_rejected=sum(r.rows_rejected for r in reports),
        rows_flagged=sum(r.rows_flagged for r in reports),
        returns=sum(r.returns for r in reports),
        counts=counts,
        examples={k: v[:MAX_EXAMPLES] for k, v in examples.items()},
        date_min=min(mins) if mins else None,
        date_max=max(maxs) if maxs else None,
    )


def why_not_chunked(path: str | Path) -> str | None:
    """Why the file cannot be read in chunks of id ranges with the one-process result (None if
    it can): not Parquet, ids not strings, a ``line_id`` column. Reads the schema only."""
    p = Path(path)
    if p.suffix.lower() not in (".parquet", ".pq"):
        return f"{p.name} is not a Parquet file"
    schema = pl.scan_parquet(p).collect_schema()
    missing = [c for c in LONG if c not in schema]
    if missing:
        return f"{p.name} lacks column(s) {missing}"
    if schema["unique_id"] != pl.String:
        return f"its unique_id column is {schema['unique_id']}, not strings"
    if "line_id" in schema:
        return "it has a line_id column (duplicates by line id cross items)"
    return None


def distinct_ids(path: str | Path) -> tuple[list[str], str | None]:
    """The distinct item ids of the file, sorted (one column read), and why they cannot define
    the chunks (null, blank or padded ids: validation strips them, so that one item could fall
    into two ranges), or None."""
    ids = pl.scan_parquet(path).select(pl.col("unique_id").unique()).collect()["unique_id"]
    if ids.null_count():
        return [], "some rows have no unique_id"
    if (ids.str.strip_chars() != ids).any() or (ids.str.len_chars() == 0).any():
        return [], "some item ids are blank or padded with spaces"
    return ids.sort().to_list(), None


@dataclass(frozen=True)
class ChunkedPanel(DemandPanel):
    """The whole panel as the client sees it on a cluster: item ids and calendar without the
    demand matrix (``y`` has no columns; ``n_periods`` is the run's), and each chunk's source
    with its rows ``[a, b)``. Only the DaskEngine's steps can compute on it."""

    periods: int = 0
    sources: tuple[tuple[int, int, FileRange], ...] = field(default=(), compare=False)
    tail: np.ndarray | None = field(default=None, compare=False)
    """The last periods of every item's history (float32 ``[items, k]``): the store's actuals
    (``DaskEngine.with_history``)."""
    scales: dict[str, np.ndarray] | None = field(default=None, compare=False)
    """Every item's MASE and RMSSE scales of its whole history (``mase``, ``rmsse``): what
    monitoring stores per item (``DaskEngine.with_history``)."""
    means: np.ndarray | None = field(default=None, compare=False)
    """Every item's mean demand per period over its history (float64, negative periods as 0):
    the plan's rate of an item without a forecast (``DaskEngine.with_history``)."""

    @property
    def n_periods(self) -> int:
        return self.periods

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """``[a, b)`` rows of each chunk, in order."""
        return [(a, b) for a, b, _ in self.sources]

    def history_tail(self, n: int) -> np.ndarray:
        """The last ``n`` periods of every item (from :attr:`tail`)."""
        if self.tail is None or self.tail.shape[1] < n:
            have = 0 if self.tail is None else self.tail.shape[1]
            raise ValueError(f"the chunked panel holds the last {have} periods, not {n}")
        return self.tail[:, self.tail.shape[1] - n :]

    def slice_periods(self, stop: int, start: int = 0) -> ChunkedPanel:
        """The panel cut to its first ``stop`` periods (negative: counted from the end), still
        without its matrix: each chunk's source cuts its panel after reading; the history
        gathered of the whole (``tail``, ``scales``, ``means``) is dropped."""
        if start != 0:
            raise ValueError("a chunked panel is cut at its end only (start = 0)")
        stop = stop if stop >= 0 else self.periods + stop
        stop = max(0, min(stop, self.periods))
        sources = tuple(
            (a, b, dataclasses.replace(src, stop=stop if src.stop is None else min(stop, src.stop)))
            for a, b, src in self.sources
        )
        return dataclasses.replace(
            self, periods=stop, sources=sources, tail=None, scales=None, means=None
        )

    def source(self, a: int, b: int) -> FileRange:
        """The source of the chunk of rows ``[a, b)``."""
        for a2, b2, src in self.sources:
            if (a2, b2) == (a, b):
                return src
        raise KeyError(f"no chunk of rows [{a}, {b})")

    def range_of(self, a: int, b: int, rows: np.ndarray | None = None) -> FileRange:
        """The file range of the panel's rows ``[a, b)`` (any rows: a range reads the ids from
        its first to its last item, validated as in the whole); ``rows`` (indices in
        ``[a, b)``): only those items' rows."""
        if not self.sources:
            raise ValueError("the chunked panel has no chunks")
        spec, stop = self.sources[0][2].spec, self.sources[0][2].stop
        attrs = self.attributes
        ids = [str(i) for i in self.item_ids[a:b]]
        if rows is None:
            part = attrs.slice(a, b - a) if attrs is not None else None
            return FileRange(spec, ids[0], ids[-1], tuple(ids), stop=stop, attributes=part)
        some = [str(self.item_ids[i]) for i in rows]
        part = attrs[[int(i) for i in rows]] if attrs is not None else None
        return FileRange(
            spec, some[0], some[-1], tuple(some), only=True, stop=stop, attributes=part
        )

    def with_items(
        self,
        item_ids: list[str],
        bounds: list[tuple[int, int]],
        attributes: pl.DataFrame | None = None,
    ) -> ChunkedPanel:
        """The panel of the items ``item_ids`` (sorted, a superset of this panel's: an item
        without demand rows has zero demand), cut into the chunks of rows ``bounds``, each a
        range of the file; ``attributes``: one row per item."""
        ids = np.array(item_ids, dtype=object)
        spec = self.sources[0][2].spec
        sources = tuple(
            (
                a,
                b,
                FileRange(
                    spec,
                    item_ids[a],
                    item_ids[b - 1],
                    tuple(item_ids[a:b]),
                    attributes=attributes.slice(a, b - a) if attributes is not None else None,
                ),
            )
            for a, b in bounds
            if b > a
        )
        return dataclasses.replace(
            self,
            y=np.empty((ids.size, 0), dtype=np.float32),
            item_ids=ids,
            attributes=attributes,
            sources=sources,
        )
