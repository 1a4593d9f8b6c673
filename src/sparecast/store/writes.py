"""Writing the forecast store: a run (its forecasts with quantiles, recent actual demand and
backtest accuracy) in one transaction, and deleting old runs.

The frames are checked and reshaped to items x dates first, so that a bad frame writes nothing.
Bulk rows go through ``COPY`` on PostgreSQL (binary, with the float8[] arrays laid out by
numpy) and ``executemany`` on SQLite (arrays as float64 BLOBs); see ``store/schema.py``."""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from sparecast.errors import StoreError
from sparecast.store.engine import StoreEngine
from sparecast.store.models import RunMeta, as_utc, model_version_of, quantile_columns
from sparecast.store.schema import (
    actual_demand,
    alias_events,
    forecast_runs,
    forecasts,
    model_aliases,
    run_accuracy,
    run_items,
)

__all__ = ["StoreProgress", "delete_runs", "write_run"]

_ROW_CHUNK = 20_000  # rows (items) per executemany / COPY block

StoreProgress = Callable[[str, int, int], None]


def write_run(
    db: StoreEngine,
    meta: RunMeta,
    forecasts_frame: pl.DataFrame,
    *,
    actuals: pl.DataFrame | None = None,
    accuracy: pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    progress: StoreProgress | None = None,
) -> int:
    """Store one run in ``db`` in one transaction and return its id (the new run's id sets its
    model version, so the row is inserted first and then updated).

    ``forecasts_frame``: unique_id, ds, forecast, method and optional quantile columns
    ``q{percent:g}``, one row per item and date, the same dates for every item;
    ``actuals``: unique_id, ds, y (recent demand, the same dates for every item);
    ``accuracy``: the backtest summary (grouping, group, method, metrics, chosen);
    ``items``: per-item attributes for monitoring (``run_items`` columns but run_id).
    ``progress(label, done, total)`` is called as the tables fill.
    """
    report = progress or (lambda label, done, total: None)
    item_rows = _item_rows(items) if items is not None and items.height else None
    fc = _forecast_grid(forecasts_frame)
    act = _actuals_grid(actuals) if actuals is not None and actuals.height else None
    accuracy_rows = _accuracy_rows(accuracy) if accuracy is not None else None
    created = as_utc(meta.created_at or datetime.now(UTC))
    record = {
        "created_at": created if db.backend == "postgresql" else created.replace(tzinfo=None),
        "model_version": f"pending-{uuid.uuid4().hex}",  # set from the id below
        "sparecast_version": meta.sparecast_version,
        "config": json.dumps(meta.config, sort_keys=True, default=str),
        "source": meta.source,
        "data_start": meta.data_start,
        "data_end": meta.data_end,
        "freq": meta.freq,
        "n_items": meta.n_items,
        "n_periods": meta.n_periods,
        "horizon": meta.horizon,
        "forecast_start": fc.dates[0],
        "forecast_dates": _dates_json(fc.dates),
        "quantile_levels": json.dumps(sorted(fc.quantiles)),
        "actuals_start": act.dates[0] if act is not None else None,
        "actuals_dates": _dates_json(act.dates if act is not None else []),
        "notes": json.dumps(list(meta.notes)),
    }
    with db.write("writing a run") as conn:
        run_id = int(
            conn.execute(
                forecast_runs.insert().values(**record).returning(forecast_runs.c.id)
            ).scalar_one()
        )
        version = model_version_of(meta.sparecast_version, meta.config, meta.data_end, run_id)
        conn.execute(
            forecast_runs.update().where(forecast_runs.c.id == run_id).values(model_version=version)
        )
        n = len(fc.item_ids)
        levels = sorted(fc.quantiles)
        qmatrix = (
            np.concatenate([fc.quantiles[level] for level in levels], axis=1)
            if levels
            else np.zeros((n, 0))
        )
        _bulk_insert(
            conn,
            db.backend,
            "forecasts",
            {"run_id": [run_id] * n, "unique_id": fc.item_ids, "method": fc.methods},
            {"forecast": fc.values, "quantiles": qmatrix},
            report,
            "store forecasts",
        )
        if act is not None:
            m = len(act.item_ids)
            _bulk_insert(
                conn,
                db.backend,
                "actual_demand",
                {"run_id": [run_id] * m, "unique_id": act.item_ids},
                {"y": act.values},
                report,
                "store actuals",
            )
        if accuracy_rows is not None and accuracy_rows.height:
            columns = {c: accuracy_rows[c].to_list() for c in accuracy_rows.columns}
            _bulk_insert(
                conn,
                db.backend,
                "run_accuracy",
                {"run_id": [run_id] * accuracy_rows.height, **columns},
                {},
                report,
                "store accuracy",
            )
        if item_rows is not None:
            _bulk_insert(
                conn,
                db.backend,
                "run_items",
                {"run_id": [run_id] * item_rows.height}
                | {c: item_rows[c].to_list() for c in item_rows.columns},
                {},
                report,
                "store item attributes",
            )
        report("store commit", 1, 1)
    if db.backend == "postgresql":
        _analyze(db)
    return run_id


def _analyze(db: StoreEngine) -> None:
    """Refresh the planner's statistics after a bulk load (without them PostgreSQL scans
    a whole run for an ``unique_id = ANY(...)`` lookup). Best effort: the run is stored."""
    try:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE forecast_runs, forecasts, actual_demand")
            conn.commit()
    except exc.DBAPIError:
        pass


def _bulk_insert(
    conn: Connection,
    backend: str,
    table: str,
    scalars: dict[str, list[Any]],
    arrays: dict[str, np.ndarray],
    report: StoreProgress,
    label: str,
) -> None:
    """Insert rows given column-wise: ``scalars`` (lists) and ``arrays`` (2-D float64,
    one array per row). PostgreSQL: COPY (binary when there are arrays, else CSV);
    SQLite: executemany (arrays as float64 BLOBs)."""
    columns = [*scalars, *arrays]
    total = len(next(iter(scalars.values())))
    report(label, 0, total)
    for start in range(0, total, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, total)
        if backend == "postgresql":
            raw = conn.connection.driver_connection
            if arrays:  # binary COPY: the server parses no float text
                sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"
                payload = _pg_binary_copy(
                    {c: v[start:stop] for c, v in scalars.items()},
                    [a[start:stop] for a in arrays.values()],
                )
            else:
                sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
                buffer = io.BytesIO()
                pl.DataFrame({c: v[start:stop] for c, v in scalars.items()}).write_csv(
                    buffer, include_header=False, null_value=""
                )
                payload = buffer.getvalue()
            with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
                copy.write(payload)
        else:
            cols = [v[start:stop] for v in scalars.values()]
            cols += [
                [row.tobytes() for row in a[start:stop].astype("<f8", copy=False)]
                for a in arrays.values()
            ]
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            conn.exec_driver_sql(sql, list(zip(*cols, strict=True)))  # type: ignore[arg-type]
        report(label, stop, total)


def delete_runs(db: StoreEngine, *, keep_last: int) -> list[int]:
    """Delete every run but the newest ``keep_last`` (with their forecasts, actuals and
    accuracy) in one transaction; returns the deleted run ids, oldest first."""
    if keep_last < 1:
        raise StoreError(f"keep_last must be at least 1 (store.keep_runs), got {keep_last}")
    with db.write("deleting old runs") as conn:
        keep = (
            sa.select(forecast_runs.c.id)
            .order_by(forecast_runs.c.id.desc())
            .limit(keep_last)
            .subquery()
        )
        # runs an alias names, or that served as champion (a rollback restores them), stay
        named = sa.union(
            sa.select(model_aliases.c.model_version),
            sa.select(alias_events.c.model_version).where(alias_events.c.alias == "champion"),
        ).subquery()
        old = sorted(
            conn.execute(
                sa.select(forecast_runs.c.id).where(
                    forecast_runs.c.id.not_in(sa.select(keep)),
                    forecast_runs.c.model_version.not_in(sa.select(named.c.model_version)),
                )
            ).scalars()
        )
        if old:
            for table in (forecasts, actual_demand, run_accuracy, run_items):
                conn.execute(table.delete().where(table.c.run_id.in_(old)))
            conn.execute(forecast_runs.delete().where(forecast_runs.c.id.in_(old)))
    return old


_PG_FLOAT8_OID = 701


def _pg_binary_copy(scalars: dict[str, list[Any]], arrays: list[np.ndarray]) -> bytes:
    """Rows in PostgreSQL's binary COPY format: int and str scalars, then float8[] arrays
    (2-D float64, one array per row). The arrays are laid out with numpy in one go."""
    n = len(next(iter(scalars.values())))
    blocks = []
    for matrix in arrays:
        h = matrix.shape[1]
        if h == 0:  # an empty array: ndim 0, no dimensions
            empty = struct.pack(">iiii", 12, 0, 0, _PG_FLOAT8_OID)
            blocks.append((empty, len(empty), np.frombuffer(empty * n, np.uint8)))
            continue
        layout = np.dtype(
            [
                ("size", ">i4"),
                ("ndim", ">i4"),
                ("flags", ">i4"),
                ("oid", ">i4"),
                ("dim", ">i4"),
                ("lbound", ">i4"),
                ("items", [("len", ">i4"), ("value", ">f8")], (h,)),
            ]
        )
        packed = np.zeros(n, dtype=layout)
        packed["size"] = layout.itemsize - 4
        packed["ndim"] = 1
        packed["oid"] = _PG_FLOAT8_OID
        packed["dim"] = h
        packed["lbound"] = 1
        packed["items"]["len"] = 8
        packed["items"]["value"] = matrix
        blocks.append((b"", layout.itemsize, packed.view(np.uint8)))
    field_count = struct.pack(">h", len(scalars) + len(arrays))
    encoded = []
    for values in scalars.values():
        column = []
        for value in values:
            if isinstance(value, str):
                data = value.encode()
                column.append(struct.pack(">i", len(data)) + data)
            elif isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                raise StoreError(f"binary COPY takes int and str scalars, got {value!r}")
            else:
                column.append(b"\x00\x00\x00\x04" + struct.pack(">i", int(value)))
        encoded.append(column)
    raw_blocks = [block.tobytes() for _, _, block in blocks]
    sizes = [size for _, size, _ in blocks]
    out = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
    for i in range(n):
        parts = [field_count, *(column[i] for column in encoded)]
        parts += [
            raw[i * size : (i + 1) * size] for raw, size in zip(raw_blocks, sizes, strict=True)
        ]
        out.append(b"".join(parts))
    out.append(struct.pack(">h", -1))
    return b"".join(out)


def _dates_json(dates: Sequence[date]) -> str:
    """Dates as a JSON list of ISO strings (how ``forecast_runs`` keeps a run's dates)."""
    return json.dumps([d.isoformat() for d in dates])


@dataclass(frozen=True)
class _Grid:
    """Long rows reshaped to items x dates: item ids, dates, 2-D values, per-item methods and
    quantile matrices by level (NaN where the frame had null)."""

    item_ids: list[str]
    dates: list[date]
    values: np.ndarray
    methods: list[str]
    quantiles: dict[float, np.ndarray]


def _grid(frame: pl.DataFrame, what: str, value: str, extra: Sequence[str]) -> pl.DataFrame:
    """Rows sorted by item and date after checking ids/dates/values and the full grid."""
    for column in ("unique_id", "ds", *extra):
        n_null = frame[column].null_count()
        if n_null:
            raise StoreError(f"{what} column {column} has {n_null} null(s)")
    bad = frame.filter(~pl.col(value).is_finite() | pl.col(value).is_null())
    if bad.height:
        raise StoreError(
            f"{what} column {value} has {bad.height} null/NaN/infinite value(s), e.g. item "
            f"{bad['unique_id'][0]} on {bad['ds'][0]}; fix it before storing it"
        )
    rows = frame.sort("unique_id", "ds")
    dates = rows["ds"].unique().sort()
    item = rows.select(
        (pl.col("unique_id") != pl.col("unique_id").shift()).fill_null(True).cum_sum()
    )
    n_items, n_dates = int(item.to_series()[-1]), dates.len()
    if rows.height == n_items * n_dates:  # fast check: row k is item k // n_dates, date k % n_dates
        ds = rows["ds"].to_physical().to_numpy().reshape(n_items, n_dates)
        idx = item.to_series().to_numpy().reshape(n_items, n_dates)
        if (ds == dates.to_physical().to_numpy()).all() and (idx == idx[:, :1]).all():
            return rows
    _raise_grid_error(rows, what, n_dates)
    raise AssertionError("unreachable")


def _raise_grid_error(rows: pl.DataFrame, what: str, n_dates: int) -> None:
    """Name the first duplicated (item, date) or the first item lacking dates."""
    dup = rows.filter(pl.struct("unique_id", "ds").is_duplicated())
    if dup.height:
        raise StoreError(
            f"{what} frame has {dup.height} duplicated (unique_id, ds) rows, e.g. item "
            f"{dup['unique_id'][0]} on {dup['ds'][0]}"
        )
    counts = rows.group_by("unique_id", maintain_order=True).len()
    short = counts.filter(pl.col("len") != n_dates)
    raise StoreError(
        f"{what} frame: {short.height} item(s) lack some of the {n_dates} dates, e.g. item "
        f"{short['unique_id'][0]} has {short['len'][0]}; give every item the same dates"
    )


def _forecast_grid(frame: pl.DataFrame) -> _Grid:
    """The forecasts frame checked and reshaped to items x dates."""
    missing = [c for c in ("unique_id", "ds", "forecast", "method") if c not in frame.columns]
    if missing:
        raise StoreError(
            f"forecasts frame lacks column(s) {missing}; it needs unique_id, ds, forecast, "
            "method (and optional quantile columns q50, q90, ...)"
        )
    if frame.height == 0:
        raise StoreError("forecasts frame is empty: a run needs at least one forecast row")
    qcols = quantile_columns(frame.columns)
    for name, level in qcols.items():
        if not 0 < level < 100:
            raise StoreError(f"quantile column {name}: level {level:g}% is not between 0 and 100")
    rows = frame.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Date),
        pl.col("forecast").cast(pl.Float64),
        pl.col("method").cast(pl.Utf8),
        *[pl.col(c).cast(pl.Float64) for c in qcols],
    )
    for name in qcols:
        nonfinite = rows.filter(pl.col(name).is_not_null() & ~pl.col(name).is_finite())
        if nonfinite.height:
            raise StoreError(
                f"quantile column {name} has {nonfinite.height} NaN/infinite value(s), e.g. item "
                f"{nonfinite['unique_id'][0]}; use null for a missing quantile"
            )
    rows = _grid(rows, "forecasts", "forecast", ["method"])
    methods = rows.group_by("unique_id", maintain_order=True).agg(
        pl.col("method").first(), pl.col("method").n_unique().alias("n")
    )
    mixed = methods.filter(pl.col("n") > 1)
    if mixed.height:
        raise StoreError(
            f"forecasts frame: item {mixed['unique_id'][0]} has several methods; a run stores "
            "one method per item"
        )
    n_items = methods.height
    return _Grid(
        item_ids=methods["unique_id"].to_list(),
        dates=rows["ds"].unique().sort().to_list(),
        values=rows["forecast"].to_numpy().reshape(n_items, -1),
        methods=methods["method"].to_list(),
        quantiles={
            level: rows[name].fill_null(float("nan")).to_numpy().reshape(n_items, -1)
            for name, level in qcols.items()
        },
    )


def _actuals_grid(frame: pl.DataFrame) -> _Grid:
    """The actuals frame checked and reshaped to items x dates."""
    missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing:
        raise StoreError(f"actuals frame lacks column(s) {missing}; it needs unique_id, ds, y")
    rows = _grid(
        frame.select(
            pl.col("unique_id").cast(pl.Utf8),
            pl.col("ds").cast(pl.Date),
            pl.col("y").cast(pl.Float64),
        ),
        "actuals",
        "y",
        [],
    )
    ids = rows["unique_id"].unique(maintain_order=True).to_list()
    return _Grid(
        item_ids=ids,
        dates=rows["ds"].unique().sort().to_list(),
        values=rows["y"].to_numpy().reshape(len(ids), -1),
        methods=[],
        quantiles={},
    )


_ACCURACY_KEYS = ("grouping", "group", "method")


def _accuracy_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The backtest summary as long rows: grouping, group_name, method, metric, value, chosen."""
    missing = [c for c in _ACCURACY_KEYS if c not in frame.columns]
    if missing:
        raise StoreError(
            f"accuracy frame lacks column(s) {missing}; pass the backtest summary "
            "(backtest_summary.parquet: grouping, group, method, metrics..., chosen)"
        )
    metrics = [
        c
        for c, t in frame.schema.items()
        if c not in (*_ACCURACY_KEYS, "chosen") and t.is_numeric()
    ]
    chosen = pl.col("chosen").fill_null(False) if "chosen" in frame.columns else pl.lit(False)
    wide = frame.select(
        pl.col("grouping").cast(pl.Utf8),
        pl.col("group").cast(pl.Utf8).alias("group_name"),
        pl.col("method").cast(pl.Utf8),
        chosen.cast(pl.Boolean).alias("chosen"),
        pl.int_range(0, pl.len(), dtype=pl.Int32).alias("row_order"),
        *[pl.col(m).cast(pl.Float64) for m in metrics],
    )
    long = wide.unpivot(
        index=["grouping", "group_name", "method", "chosen", "row_order"],
        on=metrics,
        variable_name="metric",
        value_name="value",
    )
    return long.with_columns(
        pl.when(pl.col("value").is_finite()).then(pl.col("value")).otherwise(None).alias("value")
    ).select("grouping", "group_name", "method", "metric", "value", "chosen", "row_order")


def _item_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The item attributes of a run for ``run_items``: unique_id, the group labels and the
    float columns (NaN/infinite stored as null); missing columns are null."""
    names = [c.name for c in run_items.columns if c.name != "run_id"]
    if "unique_id" not in frame.columns:
        raise StoreError(f"items frame lacks unique_id; its columns are {names}")
    unknown = [c for c in frame.columns if c not in names]
    if unknown:
        raise StoreError(f"items frame has unknown column(s) {unknown}; known: {names}")
    dup = frame.filter(pl.col("unique_id").is_duplicated())
    if dup.height:
        raise StoreError(f"items frame has item {dup['unique_id'][0]} more than once")
    columns = []
    for name in names:
        text = name in ("unique_id", "sb_class", "tier", "category")
        kind = pl.Utf8 if text else pl.Float64
        col = pl.col(name).cast(kind) if name in frame.columns else pl.lit(None, dtype=kind)
        if not text:
            col = pl.when(col.is_finite()).then(col).otherwise(None)
        columns.append(col.alias(name))
    return frame.select(columns)
