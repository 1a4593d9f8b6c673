"""DemandPanel: the dense items x periods demand matrix every method works on.

Item ids and attributes travel beside the matrix; kernels only ever see ``panel.y``.
Missing periods are zero demand, which is what an ERP's consumption table means by "no row".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sparecast.errors import DataValidationError

__all__ = ["DemandPanel", "Freq", "infer_freq", "monday_of", "period_index", "period_starts"]

Freq = Literal["D", "W", "M"]
_FREQS = ("D", "W", "M")


def _to_day(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype("datetime64[D]")


def _day(value: Any) -> np.datetime64:
    """A date-like value (str, date, datetime64) as ``datetime64[D]``."""
    return np.datetime64(value, "D")


def period_index(dates: np.ndarray, start: np.datetime64, freq: Freq) -> np.ndarray:
    """Integer period number of each date, counted from the period that starts on ``start``.

    Weeks are the 7-day periods starting on ``start``'s weekday; months start on the first day.
    """
    days = _to_day(dates)
    start_d = _day(start)
    if freq == "D":
        return (days - start_d).astype(np.int64)
    if freq == "W":
        return (days - start_d).astype(np.int64) // 7
    if freq == "M":
        return (days.astype("datetime64[M]") - start_d.astype("datetime64[M]")).astype(np.int64)
    raise ValueError(f"freq must be one of {_FREQS}, got {freq!r}")


def monday_of(day: np.datetime64) -> np.datetime64:
    """The Monday of the week that contains ``day``."""
    day = _day(day)
    # 1970-01-01 was a Thursday: shift by 3 days so that weeks start on Monday.
    return day - ((day.astype(np.int64) + 3) % 7)


def period_starts(start: np.datetime64, n_periods: int, freq: Freq) -> np.ndarray:
    """First day of each of ``n_periods`` periods beginning with the one starting on ``start``
    (for months: the month that contains ``start``)."""
    start_d = _day(start)
    if freq == "D":
        return start_d + np.arange(n_periods)
    if freq == "W":
        return start_d + 7 * np.arange(n_periods)
    if freq == "M":
        month = start_d.astype("datetime64[M]")
        return (month + np.arange(n_periods)).astype("datetime64[D]")
    raise ValueError(f"freq must be one of {_FREQS}, got {freq!r}")


def infer_freq(dates: np.ndarray) -> Freq:
    """Guess the frequency of long-format dates: monthly if all are month starts (or all month
    ends) with gaps of 28+ days, weekly if all fall on one weekday with gaps of 7+ days, else
    daily. Needs a few distinct dates to tell: fewer than 3 are read as daily; pass ``freq`` to
    be sure."""
    uniq = np.unique(_to_day(dates))
    if uniq.size < 3:
        return "D"
    gaps = np.diff(uniq).astype(np.int64)
    month = uniq.astype("datetime64[M]")
    month_starts = month.astype("datetime64[D]") == uniq
    month_ends = (month + 1).astype("datetime64[D]") - 1 == uniq
    if (month_starts.all() or month_ends.all()) and gaps.min() >= 28:
        return "M"
    if (gaps % 7 == 0).all() and gaps.min() >= 7:
        return "W"
    return "D"


class _Ids:
    """The id column in a compact form: the id of row ``i`` is ``values[codes[i]]``; ``codes``
    is None for runs, where ``values[k]`` covers the next ``counts[k]`` rows. ``counts``: rows
    per entry of ``values``."""

    def __init__(self, values: pl.Series, counts: np.ndarray, codes: np.ndarray | None) -> None:
        self.values, self.counts, self.codes = values, counts, codes

    def expand(self, per_value: np.ndarray) -> np.ndarray:
        """``per_value[k]`` for the value of every row."""
        if self.codes is None:
            return np.repeat(per_value, self.counts)
        return per_value[self.codes]


def _ids(df: pd.DataFrame | pl.DataFrame, id_col: str) -> _Ids:
    """The id column as runs of equal consecutive values, or (when the rows are not grouped by
    item: more than one run per 8 rows) as a dictionary encoding.

    A long frame grouped by item has one run per item, so everything after this step works on
    a few thousand values instead of millions of rows. A pandas column of Python objects is
    compared in numpy, which avoids converting millions of Python strings.
    """
    series: pl.Series
    if isinstance(df, pd.DataFrame):
        col: pd.Series = df[id_col]
        if col.dtype == object and len(col):
            arr = col.to_numpy()
            try:
                changed = arr[1:] != arr[:-1]
            except TypeError:  # e.g. pd.NA, whose truth value is ambiguous
                changed = None
            if isinstance(changed, np.ndarray) and changed.dtype == bool:
                starts = np.concatenate([[0], np.flatnonzero(changed) + 1])
                if starts.size * 8 <= arr.size:
                    lengths = np.diff(np.append(starts, arr.size))
                    values = cast(pl.Series, pl.from_pandas(pd.Series(arr[starts], dtype=object)))
                    return _Ids(values, lengths, None)
        series = cast(pl.Series, pl.from_pandas(col))
    else:
        series = df[id_col]
    if series.len() == 0:
        return _Ids(series, np.zeros(0, dtype=np.int64), None)
    if isinstance(series.dtype, pl.Categorical | pl.Enum):
        series = series.cast(pl.Utf8)
    runs = series.rle()
    if runs.len() * 8 <= series.len():
        lengths = runs.struct.field("len").to_numpy().astype(np.int64)
        return _Ids(runs.struct.field("value"), lengths, None)
    encoded = pc.dictionary_encode(series.to_arrow(), null_encoding="encode")
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    values = cast(pl.Series, pl.from_arrow(encoded.dictionary))
    return _Ids(values, np.bincount(codes, minlength=len(values)), codes)


def _column(df: pd.DataFrame | pl.DataFrame, name: str) -> pl.Series:
    """One column as a polars Series (a pandas column converted on its own, without a copy of
    the frame)."""
    if isinstance(df, pd.DataFrame):
        col: pd.Series = df[name]
        series = cast(pl.Series, pl.from_pandas(col))
        return series
    return df[name]


def _distinct(day_numbers: np.ndarray) -> np.ndarray:
    """The sorted distinct values of integer day numbers: a counting pass when their range is
    small (any span of dates up to some millions of days), else a sort."""
    if day_numbers.size == 0:
        return day_numbers
    lo, hi = int(day_numbers.min()), int(day_numbers.max())
    if hi - lo > 10 * day_numbers.size + 1_000_000:
        return np.unique(day_numbers)
    return np.flatnonzero(np.bincount(day_numbers - lo)) + lo


def _scatter(flat: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """float32 ``[size]`` with ``weights`` summed at the positions ``flat``. Rows in order with
    one per cell (statsforecast's frames) are written in place, others summed by bincount."""
    if flat.size > 1 and np.diff(flat).min() > 0:
        if flat.size == size:  # every cell once, in order: flat is 0, 1, ..., size - 1
            out = weights.astype(np.float32)
        else:
            out = np.zeros(size, dtype=np.float32)
            out[flat] = weights
        out += np.float32(0.0)  # -0.0 as 0.0, as a sum gives
        return out
    return np.bincount(flat, weights=weights, minlength=size).astype(np.float32)


def _period_numbers(day_numbers: np.ndarray, start: np.datetime64, freq: Freq) -> np.ndarray:
    """``period_index`` of integer day numbers (days since 1970-01-01)."""
    if freq == "M":
        return period_index(day_numbers.astype("datetime64[D]"), start, freq)
    offset = day_numbers - int(start.astype(np.int64))
    return offset if freq == "D" else offset // 7


@dataclass(frozen=True)
class DemandPanel:
    """Demand of ``n_items`` items over ``n_periods`` consecutive periods.

    Attributes:
        y: float32 array ``[n_items, n_periods]``; zero where there was no demand.
        item_ids: 1-D array of item ids (str), in the row order of ``y``.
        start: first day of the first period.
        freq: "D" (daily), "W" (7-day weeks starting on ``start``'s weekday: Monday when bucketed
            from days, the input's weekday for weekly data) or "M" (calendar months).
        attributes: optional polars DataFrame, one row per item in the same order, first column
            ``unique_id``; e.g. category and unit_cost from the ERP's items table.
    """

    y: np.ndarray
    item_ids: np.ndarray
    start: np.datetime64
    freq: Freq = "D"
    attributes: pl.DataFrame | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.y.ndim != 2:
            raise DataValidationError(
                f"DemandPanel.y must be 2-D [items, periods], got {self.y.ndim}-D"
            )
        if self.y.shape[0] != len(self.item_ids):
            raise DataValidationError(
                f"DemandPanel has {self.y.shape[0]} rows but {len(self.item_ids)} item ids"
            )
        if self.freq not in _FREQS:
            raise DataValidationError(
                f"DemandPanel.freq must be one of {_FREQS}, got {self.freq!r}"
            )
        if self.attributes is not None and self.attributes.height != len(self.item_ids):
            raise DataValidationError(
                f"DemandPanel.attributes has {self.attributes.height} rows "
                f"for {len(self.item_ids)} items"
            )

    # ------------------------------------------------------------------ shape and dates
    @property
    def n_items(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.y.shape[1])

    @property
    def dates(self) -> np.ndarray:
        """First day of every period, ``datetime64[D]``."""
        return period_starts(self.start, self.n_periods, self.freq)

    @property
    def end(self) -> np.datetime64:
        """First day of the last period."""
        return self.dates[-1]

    def future_dates(self, h: int) -> np.ndarray:
        """First day of each of the ``h`` periods after the panel's last one."""
        return period_starts(self.start, self.n_periods + h, self.freq)[self.n_periods :]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_long(
        cls,
        df: pd.DataFrame | pl.DataFrame,
        *,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
        freq: Freq | None = None,
        start: str | date | np.datetime64 | None = None,
        end: str | date | np.datetime64 | None = None,
        item_ids: list[str] | np.ndarray | None = None,
        attributes: pl.DataFrame | pd.DataFrame | None = None,
    ) -> DemandPanel:
        """Build a panel from long-format rows ``unique_id, ds, y`` (statsforecast's layout).

        Rows of the same item and period are summed (several issues on one day). Periods with no
        row are zero. ``item_ids`` adds items that have no demand rows at all (e.g. every active
        item of the ERP); ``start``/``end`` widen or cut the window. ``attributes`` is joined on
        ``unique_id``. Net negative demand of a period (returns larger than issues) is kept as is.
        """
        columns = list(df.columns)
        missing = [c for c in (id_col, time_col, target_col) if c not in columns]
        if missing:
            raise DataValidationError(
                f"long-format input lacks column(s) {missing}; it has {columns}. "
                f"Expected columns {id_col!r}, {time_col!r}, {target_col!r}."
            )
        # One pass over the rows: the ids as runs (long frames come grouped by item, so an
        # item is one run and only the run values are cast, stripped and factorised), the
        # dates as integer day numbers, one bincount into the matrix.
        id_groups = _ids(df, id_col)
        ds_col = _column(df, time_col)
        ds_type = ds_col.dtype
        if isinstance(ds_type, pl.Datetime) and ds_type.time_zone is None:
            per_day = {"ns": 86_400_000_000_000, "us": 86_400_000_000, "ms": 86_400_000}
            ds_col = (ds_col.to_physical() // per_day[ds_type.time_unit]).cast(pl.Date)
        elif isinstance(ds_type, pl.Datetime):
            ds_col = ds_col.dt.date()  # the local calendar day of tz-aware times
        elif ds_type == pl.Utf8:
            ds_col = ds_col.str.strip_chars().str.to_date(strict=False)
        else:
            ds_col = ds_col.cast(pl.Date, strict=False)
        y_col = _column(df, target_col).cast(pl.Float64, strict=False)
        run_ids = id_groups.values.cast(pl.Utf8).str.strip_chars()
        id_nulls = int(id_groups.counts[run_ids.is_null().to_numpy()].sum())
        nulls = (id_nulls, ds_col.null_count(), y_col.null_count())
        if any(nulls):
            raise DataValidationError(
                f"long-format input has missing or unparseable values (unique_id, ds, y) = "
                f"{nulls} rows; validate it first (sparecast.data.schema.validate_long) to see "
                "and reject the bad rows."
            )
        day_numbers = ds_col.to_physical().to_numpy()  # int32 days since 1970-01-01
        distinct = _distinct(day_numbers).astype("datetime64[D]")
        if freq is None:
            freq = infer_freq(distinct) if distinct.size else "D"
        first = _day(start) if start is not None else (distinct[0] if distinct.size else None)
        last = _day(end) if end is not None else (distinct[-1] if distinct.size else None)
        if first is None or last is None:
            raise DataValidationError(
                "cannot build a DemandPanel from no rows without start and end"
            )
        if last < first:
            raise DataValidationError(f"panel end {last} is before its start {first}")
        first = period_starts(first, 1, freq)[0]  # months: the first of the month
        n_periods = int(period_index(np.array([last]), first, freq)[0]) + 1

        present = run_ids.unique()
        if item_ids is None:
            ids = np.array(sorted(present.to_list()), dtype=object)
        else:
            ids = np.asarray(list(dict.fromkeys(str(i) for i in item_ids)), dtype=object)
            unknown = set(present.to_list()) - set(ids.tolist())
            if unknown:
                example = sorted(unknown)[:3]
                raise DataValidationError(
                    f"{len(unknown)} item(s) in the demand rows are not in item_ids, e.g. {example}"
                )
        lookup = pl.DataFrame(
            {"unique_id": ids.tolist(), "_row": np.arange(ids.size, dtype=np.int64)},
            schema={"unique_id": pl.Utf8, "_row": pl.Int64},
        )
        run_rows = (
            run_ids.to_frame("unique_id")
            .join(lookup, on="unique_id", how="left", maintain_order="left")["_row"]
            .to_numpy()
        )
        rows = id_groups.expand(run_rows)
        cols = _period_numbers(day_numbers, first, freq)
        weights = y_col.to_numpy()
        if distinct.size and (distinct[0] < first or distinct[-1] > last):
            inside = (cols >= 0) & (cols < n_periods)
            rows, cols, weights = rows[inside], cols[inside], weights[inside]
        y = _scatter(rows * n_periods + cols, weights, ids.size * n_periods)
        y = y.reshape(ids.size, n_periods)
        attrs = None
        if attributes is not None:
            attrs = (
                pl.from_pandas(attributes) if isinstance(attributes, pd.DataFrame) else attributes
            )
            if "unique_id" not in attrs.columns:
                raise DataValidationError("attributes need a 'unique_id' column")
            attrs = (
                lookup.join(
                    attrs.with_columns(pl.col("unique_id").cast(pl.Utf8)),
                    on="unique_id",
                    how="left",
                )
                .sort("_row")
                .drop("_row")
            )
        return cls(y=y, item_ids=ids, start=first, freq=freq, attributes=attrs)

    # ------------------------------------------------------------------ conversion
    def to_long(self, *, drop_zeros: bool = False) -> pl.DataFrame:
        """Long format ``unique_id, ds, y``; ``drop_zeros`` keeps only periods with demand."""
        ids = np.repeat(self.item_ids.astype(str), self.n_periods)
        ds = np.tile(self.dates, self.n_items)
        y = self.y.ravel()
        if drop_zeros:
            keep = y != 0
            ids, ds, y = ids[keep], ds[keep], y[keep]
        return pl.DataFrame({"unique_id": ids, "ds": ds, "y": y.astype(np.float64)})

    # ------------------------------------------------------------------ views
    def slice_periods(self, stop: int, start: int = 0) -> DemandPanel:
        """The panel cut to periods ``[start, stop)`` (negative ``stop`` counts from the end)."""
        stop = stop if stop >= 0 else self.n_periods + stop
        new_start = self.dates[start] if self.n_periods else self.start
        return DemandPanel(
            self.y[:, start:stop], self.item_ids, new_start, self.freq, self.attributes
        )

    def select_items(self, index: np.ndarray) -> DemandPanel:
        """The panel restricted to the rows in ``index`` (integer positions or boolean mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        attrs = self.attributes[index.tolist()] if self.attributes is not None else None
        return DemandPanel(self.y[index], self.item_ids[index], self.start, self.freq, attrs)

    def bucket(self, freq: Freq, *, complete_only: bool = False) -> DemandPanel:
        """Sum daily demand into weekly ("W", Monday to Sunday) or monthly ("M") buckets.

        ``complete_only`` drops a first or last bucket the daily window covers only in part (a
        week of 3 days would read as a drop in demand); otherwise partial buckets are kept.
        """
        if freq == self.freq:
            return self
        if self.freq != "D":
            raise DataValidationError(f"can only bucket a daily panel, this one is {self.freq!r}")
        days = self.dates
        anchor = monday_of(self.start) if freq == "W" else self.start
        cols = period_index(days, anchor, freq)
        n_new = int(cols[-1]) + 1 if cols.size else 0
        out = np.zeros((self.n_items, n_new), dtype=np.float64)
        if cols.size:
            # Sum consecutive runs of days that fall in the same bucket.
            starts = np.concatenate([[0], np.flatnonzero(np.diff(cols)) + 1])
            out[:, cols[starts]] = np.add.reduceat(self.y, starts, axis=1)
        bucket_starts = period_starts(anchor, n_new + 1, freq)
        first, stop = 0, n_new
        if complete_only and n_new:
            if bucket_starts[0] != days[0]:
                first = 1
            if bucket_starts[n_new] - 1 != days[-1]:
                stop = n_new - 1
            if stop <= first:
                raise DataValidationError(
                    f"the daily window {days[0]} .. {days[-1]} holds no complete {freq!r} period"
                )
        return DemandPanel(
            out[:, first:stop].astype(np.float32),
            self.item_ids,
            bucket_starts[first],
            freq,
            self.attributes,
        )

    def __repr__(self) -> str:  # keep it short: never print the matrix
        return (
            f"DemandPanel(n_items={self.n_items}, n_periods={self.n_periods}, freq={self.freq!r}, "
            f"start={self.start}, nonzero={float((self.y != 0).mean()):.1%})"
        )
