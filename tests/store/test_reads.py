"""Reading the store on SQLite and on the real PostgreSQL: the latest and older runs, horizon and
quantile selection, actual demand, accuracy, whole runs, forecasts next to actuals, query
counts, chunked id lists and reads from many threads."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sqlalchemy import event
from utils.runs import START, SUMMARY, make_forecasts, make_meta

from sparecast.store import ForecastStore, StoreError


def test_horizon_and_quantile_selection(store: ForecastStore) -> None:
    fc = make_forecasts(3, 10, levels=(90, 97.5))
    store.write_run(make_meta(10, 3), fc)
    got = store.item_forecast("i1", horizon=4, quantiles=[97.5])
    assert got is not None
    want = fc.filter(pl.col("unique_id") == "i1").head(4)
    assert got.forecast == want["forecast"].to_list()
    assert got.dates == want["ds"].to_list()
    assert got.quantiles == {"q97.5": want["q97.5"].to_list()}
    none = store.item_forecast("i1", quantiles=[])
    assert none is not None and none.quantiles == {} and len(none.forecast) == 10
    with pytest.raises(StoreError, match=r"quantile level\(s\) 95 not in run .* it has: 90, 97.5"):
        store.item_forecast("i1", quantiles=[95])
    with pytest.raises(StoreError, match="horizon must be at least 1"):
        store.item_forecast("i1", horizon=0)
    longer = store.item_forecast("i1", horizon=99)  # more than stored: all there is
    assert longer is not None and len(longer.forecast) == 10


def test_a_horizon_may_be_a_duration_in_the_runs_periods(store: ForecastStore) -> None:
    """A daily run from 2026-11-01 (the last data day 2026-10-31) of 40 days: a week is 7
    periods, 1mo the 30 days of November; a weekly run of 8 weeks: 30d is 5 weeks."""
    store.write_run(make_meta(40, 2), make_forecasts(2, 40))
    week = store.item_forecast("i0", horizon="1w")
    assert week is not None and len(week.forecast) == 7
    assert len(store.item_forecast("i0", horizon="1mo").forecast) == 30  # type: ignore[union-attr]
    assert len(store.items_forecasts(["i1"], horizon="13")["i1"].forecast) == 13
    with pytest.raises(StoreError, match="a number of periods or a duration like 90d, 13w, 6mo"):
        store.item_forecast("i0", horizon="soon")
    weekly = make_forecasts(2, 8).with_columns(
        pl.Series("ds", [START + timedelta(weeks=k) for k in range(8)] * 2)
    )
    store.write_run(make_meta(8, 2, freq="W", data_end=START - timedelta(weeks=1)), weekly)
    five = store.item_forecast("i0", horizon="30d")  # ceil(30 / 7) = 5 weeks
    assert five is not None and five.dates == [START + timedelta(weeks=k) for k in range(5)]


def test_missing_quantile_values_are_none(store: ForecastStore) -> None:
    fc = make_forecasts(2, 3, levels=(90,)).with_columns(
        pl.when((pl.col("unique_id") == "i0") & (pl.col("ds") == START))
        .then(None)
        .otherwise(pl.col("q90"))
        .alias("q90")
    )
    store.write_run(make_meta(3, 2), fc)
    got = store.item_forecast("i0")
    assert got is not None and got.quantiles["q90"][0] is None
    assert got.quantiles["q90"][1:] == fc["q90"][1:3].to_list()


def test_unknown_items_and_empty_store(store: ForecastStore) -> None:
    assert store.latest_run() is None
    assert store.item_forecast("i0") is None
    assert store.known_items() == []
    assert store.run_accuracy().height == 0
    assert store.actuals("i0").height == 0
    store.write_run(make_meta(3, 4), make_forecasts(4, 3))
    assert store.item_forecast("nope") is None
    assert not store.has_item("nope") and store.has_item("i2")
    got = store.items_forecasts(["i2", "nope", "i0", "i2"])
    assert list(got) == ["i2", "i0"]  # asked order, duplicates once, unknown left out
    assert store.known_items() == ["i0", "i1", "i2", "i3"]


def test_latest_run_and_older_runs(store: ForecastStore) -> None:
    first = store.write_run(make_meta(3, 2), make_forecasts(2, 3, seed=1))
    second = store.write_run(
        make_meta(3, 3, data_end=START), make_forecasts(3, 3, seed=2, start=START + timedelta(1))
    )
    assert second > first
    latest = store.latest_run()
    assert latest is not None and latest.run_id == second
    older = store.get_run(first)
    assert older is not None and older.model_version != latest.model_version
    assert [r.run_id for r in store.runs()] == [second, first]
    assert store.known_items() == ["i0", "i1", "i2"]
    assert store.known_items(run_id=first) == ["i0", "i1"]
    new = store.item_forecast("i0")
    old = store.item_forecast("i0", run_id=first)
    assert new is not None and old is not None
    assert new.dates[0] == START + timedelta(1) and old.dates[0] == START
    assert old.forecast == make_forecasts(2, 3, seed=1).head(3)["forecast"].to_list()
    assert store.get_run(999_999) is None
    assert store.item_forecast("i0", run_id=999_999) is None


def test_actuals_are_upserted_by_item_freq_and_date(store: ForecastStore) -> None:
    def actuals(days: list[int], values: list[float]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "unique_id": ["a"] * len(days),
                "ds": [date(2026, 10, d) for d in days],
                "y": values,
            }
        )

    first = store.write_run(
        make_meta(3, 1), make_forecasts(1, 3), actuals=actuals([1, 2, 3], [1, 0, 2])
    )
    info = store.get_run(first)
    assert info is not None and (info.actuals_start, info.actuals_end) == (
        date(2026, 10, 1),
        date(2026, 10, 3),
    )
    # a later run corrects day 3 (a return) and adds day 4
    store.write_run(make_meta(3, 1), make_forecasts(1, 3), actuals=actuals([3, 4], [1.5, 0]))
    got = store.actuals("a")
    assert got["ds"].to_list() == [date(2026, 10, d) for d in (1, 2, 3, 4)]
    assert got["y"].to_list() == [1.0, 0.0, 1.5, 0.0]
    assert store.actuals("a", start=date(2026, 10, 2), end=date(2026, 10, 3))["y"].to_list() == [
        0.0,
        1.5,
    ]
    # weekly actuals of the same item and date are a different series
    store.write_run(make_meta(3, 1, freq="W"), make_forecasts(1, 3), actuals=actuals([1], [9.0]))
    assert store.actuals("a", freq="W")["y"].to_list() == [9.0]
    assert store.actuals("a", freq="D")["y"].to_list() == [1.0, 0.0, 1.5, 0.0]
    assert store.actuals("a")["y"].to_list() == [9.0]  # default: the latest run's freq
    with pytest.raises(StoreError, match="duplicated"):
        store.write_run(make_meta(3, 1), make_forecasts(1, 3), actuals=actuals([1, 1], [1, 2]))


def test_accuracy_round_trip(store: ForecastStore) -> None:
    run_id = store.write_run(make_meta(3, 1), make_forecasts(1, 3), accuracy=SUMMARY)
    got = store.run_accuracy(run_id)
    assert got.columns == ["grouping", "group", "method", "chosen", "n_items", "rmsse", "wape"]
    assert got["group"].to_list() == SUMMARY["group"].to_list()  # the summary's order
    assert got["method"].to_list() == SUMMARY["method"].to_list()
    assert got["chosen"].to_list() == [True, False, True, True]
    assert got["n_items"].to_list() == [10.0, 10.0, 4.0, 7.0]
    assert got["rmsse"].to_list() == [0.61, 0.7, None, 0.5]
    assert got["wape"].to_list() == [1.25, 1.5, 0.9, None]  # NaN stored as NULL
    assert store.run_accuracy().equals(got)  # latest run by default


def test_items_forecasts_of_1000_ids_in_constant_queries(store: ForecastStore) -> None:
    fc = make_forecasts(1500, 28, levels=(90, 97.5))
    store.write_run(make_meta(28, 1500), fc)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    ids = [f"i{k}" for k in range(0, 2000, 2)]  # 750 known, 250 unknown
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        got = store.items_forecasts(ids, horizon=14, quantiles=[90])
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    data_queries = [s for s in statements if "forecast" in s.lower() and "select" in s.lower()]
    assert len(data_queries) <= 3, data_queries  # the run, the forecasts, the quantiles
    assert len(got) == 750
    want = fc.filter(pl.col("unique_id") == "i1498").head(14)
    assert got["i1498"].forecast == want["forecast"].to_list()
    assert got["i1498"].quantiles == {"q90": want["q90"].to_list()}


def test_run_forecasts_gives_the_written_frame_back(store: ForecastStore) -> None:
    fc = make_forecasts(40, 9, levels=(50, 97.5), seed=3).with_columns(
        pl.when(pl.col("unique_id") == "i7").then(None).otherwise(pl.col("q50")).alias("q50")
    )
    run_id = store.write_run(make_meta(9, 40), fc.sample(fraction=1.0, shuffle=True, seed=1))
    back = store.run_forecasts(run_id)
    want = fc.select("unique_id", "ds", "forecast", "method", "q50", "q97.5").sort(
        "unique_id", "ds"
    )
    assert back.equals(want)
    info = store.get_run(run_id)
    assert info is not None and info.forecast_dates == [START + timedelta(d) for d in range(9)]
    assert store.run_forecasts(run_id + 1).height == 0


def test_many_ids_are_read_in_chunks(store: ForecastStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import sparecast.store.reads as reads

    monkeypatch.setattr(reads, "_ID_CHUNK", 7)  # 50 ids -> 8 statements, merged in order
    fc = make_forecasts(60, 4, levels=(90,))
    store.write_run(make_meta(4, 60), fc)
    ids = [f"i{k}" for k in range(59, 9, -1)]
    got = store.items_forecasts(ids, horizon=2)
    assert list(got) == ids
    for uid in ("i59", "i33", "i10"):
        want = fc.filter(pl.col("unique_id") == uid).head(2)
        assert got[uid].forecast == want["forecast"].to_list()
        assert got[uid].quantiles["q90"] == want["q90"].to_list()


def test_forecast_vs_actual_of_a_past_run(store: ForecastStore) -> None:
    """Run 1 forecasts Nov 1-3; run 2 (a day later) stores actuals for Oct 31-Nov 1, run 3
    for Nov 1-2 with a correction of Nov 1: the later run wins, Nov 3 is not known yet."""
    fc = make_forecasts(2, 3, seed=9)  # i0, i1 on Nov 1, 2, 3
    first = store.write_run(make_meta(3, 2), fc)
    assert store.forecast_vs_actual(first).height == 0  # nothing happened yet

    def actuals(days: list[date], y: list[float]) -> pl.DataFrame:
        return pl.DataFrame(
            {"unique_id": ["i0"] * len(days) + ["i1"] * len(days), "ds": days * 2, "y": y}
        )

    oct31, nov1, nov2 = date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)
    later = make_forecasts(2, 3, seed=10, start=date(2026, 11, 3))
    store.write_run(make_meta(3, 2), later, actuals=actuals([oct31, nov1], [9, 1, 8, 0]))
    store.write_run(make_meta(3, 2), later, actuals=actuals([nov1, nov2], [2, 3, 0, 4]))
    got = store.forecast_vs_actual(first)
    assert got.columns == ["unique_id", "ds", "step", "method", "forecast", "y"]
    assert got.select("unique_id", "ds", "step", "y").rows() == [
        ("i0", nov1, 1, 2.0),
        ("i0", nov2, 2, 3.0),
        ("i1", nov1, 1, 0.0),
        ("i1", nov2, 2, 4.0),
    ]
    want = fc.filter(pl.col("ds") <= nov2).sort("unique_id", "ds")
    assert got["forecast"].to_list() == want["forecast"].to_list()
    assert got["method"].to_list() == want["method"].to_list()
    # realised accuracy with the reference metrics
    from utilsforecast.losses import mae

    by_item = mae(got.to_pandas(), models=["forecast"], target_col="y")
    expected = (want["forecast"] - got["y"]).abs().to_numpy().reshape(2, 2).mean(axis=1)
    np.testing.assert_allclose(by_item["forecast"].to_numpy(), expected)


def test_concurrent_reads_from_threads(store: ForecastStore) -> None:
    """The service reads from a thread pool: one ForecastStore, many threads, right answers."""
    import threading

    fc = make_forecasts(200, 5, levels=(90,))
    store.write_run(make_meta(5, 200), fc)
    want = {
        uid: rows["forecast"].to_list()
        for (uid,), rows in fc.sort("unique_id", "ds").group_by("unique_id", maintain_order=True)
    }
    errors: list[BaseException] = []

    def read(seed: int) -> None:
        try:
            for k in range(60):
                uid = f"i{(seed * 37 + k) % 200}"
                got = store.item_forecast(uid)
                assert got is not None and got.forecast == want[uid]
                many = store.items_forecasts([uid, f"i{k}"])
                assert many[uid].forecast == want[uid]
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(s,)) for s in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
