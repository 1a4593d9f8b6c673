"""Writing runs: bad frames refused before anything is written, one transaction per run, deleting
old runs, and the PostgreSQL binary COPY encoder (checked byte by byte and by round trips of
unusual ids and values)."""

from __future__ import annotations

import struct
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from utils.runs import START, SUMMARY, make_forecasts, make_meta, row_counts

from sparecast.store import ForecastStore, StoreError
from sparecast.store.writes import _accuracy_rows, _pg_binary_copy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("method"), r"lacks column\(s\) \['method'\]"),
        (lambda f: f.head(0), "empty"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("unique_id") == "i1")
                .then(float("nan"))
                .otherwise("forecast")
                .alias("forecast")
            ),
            "null/NaN/infinite value.*e.g. item i1",
        ),
        (lambda f: pl.concat([f, f.head(1)]), r"duplicated \(unique_id, ds\) rows, e.g. item i0"),
        (lambda f: f.with_columns(pl.col("forecast").alias("q100")), "level 100% is not between"),
        (lambda f: f.with_columns(pl.lit(None, pl.Utf8).alias("method")), "method has 6 null"),
        (lambda f: f.slice(1), r"1 item\(s\) lack some of the 3 dates, e.g. item i0 has 2"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("ds") == START)
                .then(pl.lit("ses"))
                .otherwise("method")
                .alias("method")
            ),
            "item i0 has several methods",
        ),
    ],
)
def test_bad_frames_are_refused_and_nothing_is_written(
    store: ForecastStore, change: object, message: str
) -> None:
    frame = change(make_forecasts(2, 3))  # type: ignore[operator]
    with pytest.raises(StoreError, match=message):
        store.write_run(make_meta(3, 2), frame)
    assert store.latest_run() is None


@pytest.mark.parametrize(
    "fail_at",
    ["store forecasts", "store actuals", "store accuracy", "store commit"],
)
def test_failure_mid_write_leaves_nothing(store: ForecastStore, fail_at: str) -> None:
    """An error between the tables of a run (raised from the progress callback, inside the
    transaction) rolls the whole run back; the store then takes the next run normally."""
    store.write_run(make_meta(3, 2), make_forecasts(2, 3, levels=(90,)), accuracy=SUMMARY)
    before = row_counts(store)

    class Boom(RuntimeError):
        pass

    def progress(label: str, done: int, total: int) -> None:
        if label == fail_at and done > 0:
            raise Boom(label)

    actuals = pl.DataFrame({"unique_id": ["i0"], "ds": [date(2026, 10, 31)], "y": [2.0]})
    with pytest.raises(Boom):
        store.write_run(
            make_meta(3, 50),
            make_forecasts(50, 3, levels=(90,), seed=5),
            actuals=actuals,
            accuracy=SUMMARY,
            progress=progress,
        )
    assert row_counts(store) == before
    latest = store.latest_run()
    assert latest is not None and latest.n_items == 2
    new_id = store.write_run(make_meta(3, 50), make_forecasts(50, 3, seed=5), actuals=actuals)
    assert store.latest_run().run_id == new_id  # type: ignore[union-attr]
    assert row_counts(store)["forecasts"] == before["forecasts"] + 50


def test_unusual_item_ids_and_values_round_trip(store: ForecastStore) -> None:
    """Non-ASCII ids (byte length != char length in the binary COPY), ids with quotes and
    commas (CSV), extreme doubles, and NaN quantiles stored as 'no value'."""
    ids = ["Ölfilter-ü", 'say "hi", ok', "x" * 200, "日本-1"]
    tiny, huge = 5e-324, 1.7976931348623157e308
    frame = pl.DataFrame(
        {
            "unique_id": [i for i in ids for _ in range(2)],
            "ds": [START, START + timedelta(1)] * len(ids),
            "forecast": [0.0, tiny, huge, 1 / 3, 0.1, 2.5e-17, 1e22, 7.0],
            "method": [m for m in ("ma", "sba", "tsb", "ses") for _ in range(2)],
            "q99.9": [1.0, None, 2.0, 3.0, None, None, 4.0, 5.0],
        }
    )
    store.write_run(make_meta(2, len(ids)), frame)
    got = store.items_forecasts(ids)
    assert list(got) == ids
    assert [v for i in ids for v in got[i].forecast] == frame["forecast"].to_list()
    assert [v for i in ids for v in got[i].quantiles["q99.9"]] == frame["q99.9"].to_list()
    assert [got[i].method for i in ids] == ["ma", "sba", "tsb", "ses"]
    assert store.known_items() == sorted(ids)


def test_delete_runs_keeps_the_newest(store: ForecastStore) -> None:
    ids = [
        store.write_run(
            make_meta(2, 2),
            make_forecasts(2, 2, seed=k),
            actuals=pl.DataFrame({"unique_id": ["i0"], "ds": [date(2026, 10, 1 + k)], "y": [k]}),
            accuracy=SUMMARY,
        )
        for k in range(4)
    ]
    assert store.get_run(ids[0]) is not None  # cached RunInfo must not survive the delete
    assert store.delete_runs(keep_last=2) == ids[:2]
    assert [r.run_id for r in store.runs()] == ids[:1:-1]
    counts = row_counts(store)
    assert counts == {
        "forecast_runs": 2,
        "forecasts": 4,
        "actual_demand": 2,
        "run_accuracy": 2 * 4 * 3,  # 4 summary rows x 3 numeric metrics per run
        "item_overrides": 0,
        "override_history": 0,
    }
    assert store.get_run(ids[0]) is None and store.item_forecast("i0", run_id=ids[1]) is None
    assert store.actuals("i0")["y"].to_list() == [2.0, 3.0]
    assert store.delete_runs(keep_last=2) == []
    with pytest.raises(StoreError, match="keep_last must be at least 1"):
        store.delete_runs(keep_last=0)


def test_pg_binary_copy_layout() -> None:
    """Header, then per row: field count, int4 and text scalars, float8[] arrays (1-D, lower
    bound 1), then the trailer; an empty array has no dimensions."""
    payload = _pg_binary_copy(
        {"run_id": [7, 7], "unique_id": ["a", "ü"]},
        [np.array([[1.5, -2.0], [0.0, 3.25]]), np.zeros((2, 0))],
    )
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    assert payload.startswith(header) and payload.endswith(struct.pack(">h", -1))
    empty = struct.pack(">iiii", 12, 0, 0, 701)  # size, ndim 0, flags, element oid
    rows = []
    for uid, values in (("a", [1.5, -2.0]), ("ü", [0.0, 3.25])):
        text = uid.encode()
        array = struct.pack(">iiiii", 1, 0, 701, 2, 1) + b"".join(
            struct.pack(">id", 8, v) for v in values
        )
        rows.append(
            struct.pack(">h", 4)
            + struct.pack(">ii", 4, 7)
            + struct.pack(">i", len(text))
            + text
            + struct.pack(">i", len(array))
            + array
            + empty
        )
    assert payload == header + b"".join(rows) + struct.pack(">h", -1)


def test_pg_binary_copy_takes_only_int_and_str_scalars() -> None:
    with pytest.raises(StoreError, match="binary COPY takes int and str scalars, got 1.5"):
        _pg_binary_copy({"x": [1.5]}, [np.zeros((1, 1))])
    with pytest.raises(StoreError, match="got True"):
        _pg_binary_copy({"x": [True]}, [np.zeros((1, 1))])


def test_accuracy_rows_are_long_with_nan_as_null() -> None:
    rows = _accuracy_rows(SUMMARY)
    assert rows.columns == [
        "grouping",
        "group_name",
        "method",
        "metric",
        "value",
        "chosen",
        "row_order",
    ]
    assert rows.height == SUMMARY.height * 3  # n_items, rmsse, wape: the numeric columns
    wape = rows.filter(pl.col("metric") == "wape")
    assert wape["value"].to_list() == [1.25, 1.5, 0.9, None]
    assert wape["row_order"].to_list() == [0, 1, 2, 3]
    with pytest.raises(StoreError, match=r"accuracy frame lacks column\(s\) \['group'\]"):
        _accuracy_rows(SUMMARY.drop("group"))


def test_actuals_without_rows_are_not_stored(store: ForecastStore) -> None:
    empty = pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Date, "y": pl.Float64})
    run_id = store.write_run(make_meta(3, 2), make_forecasts(2, 3), actuals=empty)
    info = store.get_run(run_id)
    assert info is not None and info.actuals_dates == [] and info.actuals_start is None
    assert row_counts(store)["actual_demand"] == 0
    assert info.forecast_dates == [START + timedelta(d) for d in range(3)]
    assert store.actuals("i0").height == 0
