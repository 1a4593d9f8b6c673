"""Reading the forecast store: run listings, item forecasts (the service's hot path), whole
runs back in their long format, actual demand, forecasts next to actuals, and run accuracy.

Values come back reshaped from the per-item arrays (see ``store/schema.py``) to the frames and
data classes of ``store/models.py``. Parsed runs are kept in a small cache: a committed run never
changes."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sparecast.core import HorizonSpec, check_horizon, horizon_periods
from sparecast.errors import ConfigError, StoreError
from sparecast.store.engine import StoreEngine
from sparecast.store.models import ItemForecast, RunInfo, as_utc, quantile_label
from sparecast.store.schema import (
    actual_demand,
    forecast_runs,
    forecasts,
    model_aliases,
    observed_demand,
    run_accuracy,
)

__all__ = ["HistoryReader"]

_ID_CHUNK = 5000  # ids per IN (...) list; SQLite allows 32,766 variables since 3.32


class HistoryReader:
    """The queries of a ``ForecastStore`` (its base class) on one database, with the cache of
    parsed runs.

    Thread-safe: connections come from the engine's pool, the cache has a lock."""

    def __init__(self, db: StoreEngine) -> None:
        self._db = db
        self._runs: dict[int, RunInfo] = {}
        self._runs_lock = threading.Lock()

    def forget(self, run_ids: Sequence[int]) -> None:
        """Drop deleted runs from the cache of parsed runs."""
        with self._runs_lock:
            for run_id in run_ids:
                self._runs.pop(run_id, None)

    def latest_run(self) -> RunInfo | None:
        """The newest run (highest id), or None when the store has none."""
        with self._db.read("reading the latest run") as conn:
            row = conn.execute(
                sa.select(forecast_runs).order_by(forecast_runs.c.id.desc()).limit(1)
            ).first()
        return _run_info(row) if row is not None else None

    def served_run(self) -> RunInfo | None:
        """The run the API serves: the one the ``champion`` alias names (the production loop's
        served-model pointer, ``store/aliases.py``), else the newest run."""
        with self._db.read("reading the served run") as conn:
            row = conn.execute(
                sa.select(forecast_runs)
                .join(model_aliases, model_aliases.c.model_version == forecast_runs.c.model_version)
                .where(model_aliases.c.alias == "champion")
            ).first()
        if row is not None:
            return _run_info(row)
        return self.latest_run()

    def run_by_version(self, model_version: str) -> RunInfo | None:
        """The run with this model version, or None."""
        with self._db.read(f"reading run {model_version}") as conn:
            row = conn.execute(
                sa.select(forecast_runs).where(forecast_runs.c.model_version == model_version)
            ).first()
        return _run_info(row) if row is not None else None

    def get_run(self, run_id: int) -> RunInfo | None:
        """The run with this id, or None."""
        with self._db.read(f"reading run {run_id}") as conn:
            row = conn.execute(sa.select(forecast_runs).where(forecast_runs.c.id == run_id)).first()
        return _run_info(row) if row is not None else None

    def runs(self, limit: int = 20) -> list[RunInfo]:
        """The newest ``limit`` runs, newest first."""
        with self._db.read("listing runs") as conn:
            rows = conn.execute(
                sa.select(forecast_runs).order_by(forecast_runs.c.id.desc()).limit(limit)
            ).all()
        return [_run_info(r) for r in rows]

    def _resolve_run(self, conn: Connection, run_id: int | None) -> RunInfo | None:
        """The run (latest when None). A committed run never changes, so its parsed RunInfo is
        kept after the first read and reused while the id still has the same model version
        (a store file replaced under a running service is noticed)."""
        key = sa.select(forecast_runs.c.id, forecast_runs.c.model_version)
        if run_id is None:
            key = key.order_by(forecast_runs.c.id.desc()).limit(1)
        else:
            key = key.where(forecast_runs.c.id == run_id)
        found = conn.execute(key).first()
        if found is None:
            return None
        info = self._runs.get(int(found[0]))
        if info is None or info.model_version != found[1]:
            row = conn.execute(
                sa.select(forecast_runs).where(forecast_runs.c.id == found[0])
            ).first()
            if row is None:
                return None
            info = _run_info(row)
            with self._runs_lock:
                if len(self._runs) >= 256:
                    self._runs.clear()
                self._runs[info.run_id] = info
        return info

    def item_forecast(
        self,
        item_id: str,
        *,
        run_id: int | None = None,
        horizon: HorizonSpec = None,
        quantiles: Sequence[float] | None = None,
    ) -> ItemForecast | None:
        """One item's forecast (latest run by default); None for an unknown item or no run."""
        return self.items_forecasts(
            [item_id], run_id=run_id, horizon=horizon, quantiles=quantiles
        ).get(item_id)

    def items_forecasts(
        self,
        item_ids: Sequence[str],
        *,
        run_id: int | None = None,
        horizon: HorizonSpec = None,
        quantiles: Sequence[float] | None = None,
    ) -> dict[str, ItemForecast]:
        """Forecasts of many items from one run, in three queries per 5,000 ids (the run, the
        forecasts, the quantiles); unknown items are left out. ``horizon``: first k periods,
        or a duration (``"90d"``, ``"13w"``, ``"6mo"``) in the run's periods, rounded up
        (``sparecast.core.horizon_periods`` with the run's frequency and last date);
        ``quantiles``: levels in percent (None: all the run has, []: none).

        The ids are fetched ``_ID_CHUNK`` at a time, then cut to the horizon and the quantile
        levels asked for, in the order asked."""
        try:
            spec = check_horizon(horizon)
        except ConfigError as exc:
            raise StoreError(str(exc)) from None
        ids = list(dict.fromkeys(str(i) for i in item_ids))
        with self._db.read("reading forecasts") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None or not ids:
                return {}
            levels = _pick_levels(run, quantiles)
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(ids), _ID_CHUNK):
                rows += self._fetch_items(conn, run.run_id, ids[start : start + _ID_CHUNK], levels)
        full = len(run.forecast_dates)
        h = full if spec is None else min(horizon_periods(spec, run.freq, run.data_end), full)
        dates = run.forecast_dates[:h]
        offsets = [(quantile_label(q), run.quantile_levels.index(q) * full) for q in levels]
        found: dict[str, ItemForecast] = {}
        for row in rows:
            qdict: dict[str, list[float | None]] = {}
            for label, offset in offsets:
                part = row[3][offset : offset + h]
                qdict[label] = [None if v != v else v for v in part]  # NaN: no value
            found[row[0]] = ItemForecast(
                row[0], run.run_id, run.model_version, row[1], dates, row[2][:h], qdict
            )
        return {uid: found[uid] for uid in ids if uid in found}

    def _fetch_items(
        self, conn: Connection, run_id: int, ids: list[str], levels: list[float]
    ) -> list[tuple[Any, ...]]:
        """(unique_id, method, forecast list, quantiles list or None) of the ids found.

        The hot path of the service: straight to the driver, one statement. PostgreSQL: ids as
        one array parameter (``= ANY``) and binary results (float8[] arrives as floats);
        SQLite: the BLOBs decoded with numpy."""
        columns = "unique_id, method, forecast" + (", quantiles" if levels else "")
        if self._db.backend == "postgresql":
            raw = conn.connection.driver_connection
            with raw.cursor(binary=True) as cursor:  # type: ignore[union-attr]
                cursor.execute(
                    f"SELECT {columns} FROM forecasts WHERE run_id = %s AND unique_id = ANY(%s)",
                    (run_id, ids),
                )
                return cursor.fetchall()  # type: ignore[no-any-return]
        marks = ", ".join("?" * len(ids))
        result = conn.exec_driver_sql(
            f"SELECT {columns} FROM forecasts WHERE run_id = ? AND unique_id IN ({marks})",
            (run_id, *ids),
        )
        f8 = np.dtype("<f8")
        return [
            (
                r[0],
                r[1],
                np.frombuffer(r[2], f8).tolist(),
                np.frombuffer(r[3], f8).tolist() if levels else None,
            )
            for r in result
        ]

    def run_forecasts(self, run_id: int | None = None) -> pl.DataFrame:
        """A whole run in the long format it was written in: unique_id, ds, forecast, method
        and the quantile columns (sorted by unique_id, ds). Empty when there is no run. The
        per-item arrays are unrolled to long rows."""
        with self._db.read("reading a run's forecasts") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return pl.DataFrame()
            found = conn.execute(
                sa.select(
                    forecasts.c.unique_id,
                    forecasts.c.method,
                    forecasts.c.forecast,
                    forecasts.c.quantiles,
                ).where(forecasts.c.run_id == run.run_id)
            ).all()
        rows = sorted(found, key=lambda r: r[0])  # code-point order, whatever the collation
        h = len(run.forecast_dates)
        ids = [r[0] for r in rows]
        frame = pl.DataFrame(
            {
                "unique_id": np.repeat(np.array(ids, dtype=object), h).tolist(),
                "ds": run.forecast_dates * len(ids),
                "forecast": np.array([r[2] for r in rows], dtype=float).reshape(-1),
                "method": np.repeat(np.array([r[1] for r in rows], dtype=object), h).tolist(),
            },
            schema={"unique_id": pl.Utf8, "ds": pl.Date, "forecast": pl.Float64, "method": pl.Utf8},
        )
        if run.quantile_levels and rows:
            quantiles = np.array([r[3] for r in rows], dtype=float)  # items x (levels * h)
            for k, level in enumerate(run.quantile_levels):
                values = quantiles[:, k * h : (k + 1) * h].reshape(-1)
                frame = frame.with_columns(pl.Series(quantile_label(level), values).fill_nan(None))
        return frame

    def known_items(self, run_id: int | None = None) -> list[str]:
        """Item ids of a run (latest by default) in code-point order; [] without a run."""
        with self._db.read("listing items") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return []
            rows = conn.execute(
                sa.select(forecasts.c.unique_id).where(forecasts.c.run_id == run.run_id)
            ).scalars()
            return sorted(rows)  # code-point order, whatever the database's collation

    def has_item(self, item_id: str, run_id: int | None = None) -> bool:
        """True when the run (latest by default) forecast this item."""
        with self._db.read("looking up an item") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return False
            hit = conn.execute(
                sa.select(forecasts.c.unique_id).where(
                    forecasts.c.run_id == run.run_id, forecasts.c.unique_id == str(item_id)
                )
            ).first()
            return hit is not None

    def actuals(
        self,
        item_id: str,
        *,
        start: date | None = None,
        end: date | None = None,
        freq: str | None = None,
    ) -> pl.DataFrame:
        """Actual demand of one item (``ds``, ``y``, sorted by date) from every run of the
        frequency that stored it and from the observed demand loaded since (``observed_demand``);
        where they overlap the later one wins (corrections, late returns). ``freq`` defaults to
        the latest run's. Empty when nothing is stored.

        The item's arrays of every run of ``freq`` and its observed rows are merged in the order
        they were written (run creation, load time), so that a later one overwrites the dates
        it stored again."""
        empty = pl.DataFrame(schema={"ds": pl.Date, "y": pl.Float64})
        with self._db.read("reading actuals") as conn:
            if freq is None:
                latest = self._resolve_run(conn, None)
                if latest is None:
                    return empty
                freq = latest.freq
            rows = conn.execute(
                sa.select(
                    forecast_runs.c.actuals_dates, actual_demand.c.y, forecast_runs.c.created_at
                )
                .join(forecast_runs, forecast_runs.c.id == actual_demand.c.run_id)
                .where(actual_demand.c.unique_id == str(item_id), forecast_runs.c.freq == freq)
                .order_by(actual_demand.c.run_id)
            ).all()
            observed = conn.execute(
                sa.select(
                    observed_demand.c.ds, observed_demand.c.y, observed_demand.c.loaded_at
                ).where(observed_demand.c.unique_id == str(item_id), observed_demand.c.freq == freq)
            ).all()
        written: list[tuple[datetime, int, list[tuple[date, float]]]] = [
            (_utc(at), 0, list(zip(_dates_of(dates_json), values, strict=True)))
            for dates_json, values, at in rows
        ]
        written += [(_utc(at), 1, [(_as_date(ds), float(y))]) for ds, y, at in observed]  # type: ignore[list-item]
        merged: dict[date, float] = {}
        for _, _, pairs in sorted(written, key=lambda w: (w[0], w[1])):
            merged.update(pairs)
        days = sorted(
            d for d in merged if (start is None or d >= start) and (end is None or d <= end)
        )
        if not days:
            return empty
        return pl.DataFrame({"ds": days, "y": [merged[d] for d in days]}, schema=empty.schema)

    def forecast_vs_actual(self, run_id: int | None = None) -> pl.DataFrame:
        """A run's forecasts (latest by default) next to the demand that actually happened,
        as stored by the runs of the same frequency and the observed demand loaded since
        (``observed_demand``; the later write wins): unique_id, ds, step
        (1 = first forecast period), method, forecast, y; only dates with a known actual.

        The realised accuracy of a run once its horizon has passed: feed the frame to
        ``utilsforecast.losses`` (``models=["forecast"]``, ``target_col="y"``). The actuals of
        every run whose dates overlap the forecast dates are joined to the run's forecasts."""
        schema = {
            "unique_id": pl.Utf8,
            "ds": pl.Date,
            "step": pl.Int32,
            "method": pl.Utf8,
            "forecast": pl.Float64,
            "y": pl.Float64,
        }
        run = self.get_run(run_id) if run_id is not None else self.latest_run()
        if run is None:
            return pl.DataFrame(schema=schema)
        actual = self.run_actuals(run.run_id)
        if actual.height == 0:
            return pl.DataFrame(schema=schema)
        steps = pl.DataFrame(
            {"ds": run.forecast_dates, "step": list(range(1, len(run.forecast_dates) + 1))},
            schema={"ds": pl.Date, "step": pl.Int32},
        )
        return (
            self.run_forecasts(run.run_id)
            .select("unique_id", "ds", "method", "forecast")
            .join(actual, on=["unique_id", "ds"], how="inner")
            .join(steps, on="ds", how="left")
            .select(list(schema))
            .sort("unique_id", "ds")
        )

    def run_actuals(self, run_id: int | None = None) -> pl.DataFrame:
        """The demand known for a run's forecast dates (latest run by default): unique_id, ds,
        y of every item stored, from the actuals of the runs of the same frequency and the
        observed demand (``observed_demand``), the value written last winning; empty when none
        is known yet."""
        empty = pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Date, "y": pl.Float64})
        with self._db.read("reading actuals") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return empty
            first, last = run.forecast_dates[0], run.forecast_dates[-1]
            parts = []
            sources = conn.execute(
                sa.select(
                    forecast_runs.c.id, forecast_runs.c.actuals_dates, forecast_runs.c.created_at
                )
                .where(
                    forecast_runs.c.freq == run.freq,
                    forecast_runs.c.actuals_start.is_not(None),
                    forecast_runs.c.actuals_start <= last,
                )
                .order_by(forecast_runs.c.id)
            ).all()
            for source_id, dates_json, created_at in sources:
                dates = _dates_of(dates_json)
                keep = [k for k, d in enumerate(dates) if first <= d <= last]
                if not keep:
                    continue
                rows = conn.execute(
                    sa.select(actual_demand.c.unique_id, actual_demand.c.y).where(
                        actual_demand.c.run_id == source_id
                    )
                ).all()
                if not rows:
                    continue
                values = np.array([r[1] for r in rows], dtype=float)[:, keep]
                parts.append(
                    pl.DataFrame(
                        {
                            "unique_id": np.repeat(
                                np.array([r[0] for r in rows], dtype=object), len(keep)
                            ).tolist(),
                            "ds": [dates[k] for k in keep] * len(rows),
                            "y": values.reshape(-1),
                            "_at": [_utc(created_at)] * (len(rows) * len(keep)),
                        },
                        schema=_ACTUAL_SCHEMA,
                    )
                )
            observed = observed_frame(
                conn,
                sa.select(
                    observed_demand.c.unique_id,
                    observed_demand.c.ds,
                    observed_demand.c.y,
                    observed_demand.c.loaded_at,
                ).where(
                    observed_demand.c.freq == run.freq,
                    observed_demand.c.ds >= first,
                    observed_demand.c.ds <= last,
                ),
            )
        if observed.height:
            parts.append(observed.rename({"loaded_at": "_at"}))
        if not parts:
            return empty
        return (
            pl.concat(parts)
            .sort("_at", maintain_order=True)  # stable: runs in id order, then observed
            .unique(["unique_id", "ds"], keep="last", maintain_order=True)
            .drop("_at")
            .sort("unique_id", "ds")
        )

    def run_accuracy(self, run_id: int | None = None) -> pl.DataFrame:
        """The backtest summary stored with a run (latest by default), wide as written:
        grouping, group, method, chosen, then one Float64 column per metric. Empty when the run
        has none. The long metric rows are pivoted back to the summary's columns and row
        order."""
        with self._db.read("reading run accuracy") as conn:
            run = self._resolve_run(conn, run_id)
            if run is None:
                return pl.DataFrame()
            rows = conn.execute(
                sa.select(
                    run_accuracy.c.row_order,
                    run_accuracy.c.grouping,
                    run_accuracy.c.group_name,
                    run_accuracy.c.method,
                    run_accuracy.c.chosen,
                    run_accuracy.c.metric,
                    run_accuracy.c.value,
                )
                .where(run_accuracy.c.run_id == run.run_id)
                .order_by(run_accuracy.c.row_order)
            ).all()
        if not rows:
            return pl.DataFrame()
        long = pl.DataFrame(
            [tuple(r) for r in rows],
            schema={
                "row_order": pl.Int64,
                "grouping": pl.Utf8,
                "group": pl.Utf8,
                "method": pl.Utf8,
                "chosen": pl.Boolean,
                "metric": pl.Utf8,
                "value": pl.Float64,
            },
            orient="row",
        )
        metric_order = list(dict.fromkeys(long["metric"].to_list()))
        wide = long.pivot(
            on="metric",
            index=["row_order", "grouping", "group", "method", "chosen"],
            values="value",
        )
        return wide.sort("row_order").select("grouping", "group", "method", "chosen", *metric_order)


# ------------------------------------------------------------------------------ helpers


_ACTUAL_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "unique_id": pl.Utf8,
    "ds": pl.Date,
    "y": pl.Float64,
    "_at": pl.Datetime("us", "UTC"),
}


def observed_frame(conn: Connection, query: sa.Select[Any]) -> pl.DataFrame:
    """Rows of ``observed_demand`` (unique_id, ds, y and optionally loaded_at, in that order)
    as a typed frame, fetched straight from the driver: dates and timestamps are converted by
    polars in one go (SQLite returns them as text) instead of row by row."""
    names = [c.name for c in query.selected_columns]
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    schema: dict[str, Any] = {
        "unique_id": pl.Utf8,
        "ds": pl.Date,
        "y": pl.Float64,
        "loaded_at": pl.Datetime("us", "UTC"),
    }
    if not rows:
        return pl.DataFrame(schema={n: schema[n] for n in names})
    frame = pl.DataFrame(rows, schema=names, orient="row")
    if frame["ds"].dtype == pl.Utf8:
        frame = frame.with_columns(pl.col("ds").str.to_date("%Y-%m-%d"))
    if "loaded_at" in names:
        at = pl.col("loaded_at")
        if frame["loaded_at"].dtype == pl.Utf8:  # SQLite: naive UTC text
            at = at.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us").dt.replace_time_zone(
                "UTC"
            )
        else:
            at = at.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        frame = frame.with_columns(at)
    return frame.select(pl.col(n).cast(schema[n]) for n in names)


def _utc(value: Any) -> datetime:
    """A stored timestamp (SQLite: naive UTC or ISO text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _dates_of(text: str) -> list[date]:
    """The dates of a JSON list of ISO strings (``forecast_runs``' date columns)."""
    return [date.fromisoformat(d) for d in json.loads(text)]


def _pick_levels(run: RunInfo, quantiles: Sequence[float] | None) -> list[float]:
    """The quantile levels asked for (all the run has when None); unknown ones are an error."""
    if quantiles is None:
        return list(run.quantile_levels)
    wanted = sorted({float(q) for q in quantiles})
    unknown = [q for q in wanted if q not in run.quantile_levels]
    if unknown:
        have = ", ".join(f"{q:g}" for q in run.quantile_levels) or "none"
        raise StoreError(
            f"quantile level(s) {', '.join(f'{q:g}' for q in unknown)} not in run {run.run_id} "
            f"(model {run.model_version}); it has: {have}"
        )
    return wanted


def _as_date(value: Any) -> date | None:
    """A date column's value as a date (SQLite gives ISO text, PostgreSQL dates)."""
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value))


def _run_info(row: Any) -> RunInfo:
    """A ``forecast_runs`` row as RunInfo (JSON columns parsed, created_at in UTC)."""
    m = row._mapping
    created = m["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return RunInfo(
        run_id=int(m["id"]),
        created_at=as_utc(created),
        model_version=m["model_version"],
        sparecast_version=m["sparecast_version"],
        config=json.loads(m["config"]),
        source=m["source"],
        data_start=_as_date(m["data_start"]),  # type: ignore[arg-type]
        data_end=_as_date(m["data_end"]),  # type: ignore[arg-type]
        freq=m["freq"],
        n_items=int(m["n_items"]),
        n_periods=int(m["n_periods"]),
        horizon=int(m["horizon"]),
        forecast_dates=_dates_of(m["forecast_dates"]),
        quantile_levels=[float(q) for q in json.loads(m["quantile_levels"])],
        actuals_dates=_dates_of(m["actuals_dates"]),
        notes=list(json.loads(m["notes"])),
    )
