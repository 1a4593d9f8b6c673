"""ForecastStore, the facade over engine, writes and reads: a run written and read back whole,
on SQLite and on the real PostgreSQL; the default store of a run directory."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
from utils.runs import START, make_forecasts, make_meta

from sparecast.store import ForecastStore, default_store_url, model_version_of


def test_round_trip_values_dates_and_quantiles(store: ForecastStore) -> None:
    fc = make_forecasts(5, 7, levels=(50, 90, 97.5))
    meta = make_meta(7, 5)
    run_id = store.write_run(meta, fc)
    info = store.latest_run()
    assert info is not None and info.run_id == run_id
    assert info.model_version == model_version_of("0.1.0", meta.config, meta.data_end, run_id)
    assert re.fullmatch(r"0\.1\.0\+[0-9a-f]{8}\.20261031\.r\d+", info.model_version)
    assert info.quantile_levels == [50.0, 90.0, 97.5]
    assert (info.data_start, info.data_end, info.freq) == (
        date(2025, 11, 1),
        START - timedelta(1),
        "D",
    )
    assert (info.n_items, info.n_periods, info.horizon) == (5, 365, 7)
    assert info.config == meta.config and info.notes == ["a note"] and info.source == "erp.sqlite"
    assert info.created_at.tzinfo is not None
    assert abs(info.created_at - datetime.now(UTC)) < timedelta(minutes=5)

    got = store.item_forecast("i3")
    assert got is not None
    want = fc.filter(pl.col("unique_id") == "i3")
    assert got.dates == want["ds"].to_list()
    assert got.forecast == want["forecast"].to_list()  # doubles round-trip exactly
    assert got.method == want["method"][0]
    assert got.quantiles == {
        "q50": want["q50"].to_list(),
        "q90": want["q90"].to_list(),
        "q97.5": want["q97.5"].to_list(),
    }
    assert got.model_version == info.model_version and got.run_id == run_id
    assert got.to_dict()["dates"][0] == "2026-11-01"


def test_default_store_url_is_history_sqlite_in_the_output_dir(tmp_path: Path) -> None:
    url = default_store_url(tmp_path / "run" / ".." / "out")
    assert url == f"sqlite:///{tmp_path.resolve() / 'out' / 'history.sqlite'}"
    store = ForecastStore(url)
    assert store.backend == "sqlite" and store.url == url
    assert (tmp_path / "out").is_dir()  # made for the file
    store.dispose()


def test_repr_hides_the_password() -> None:
    store = ForecastStore("postgresql+psycopg://app:s3cret@127.0.0.1:5432/fc")
    assert "s3cret" not in repr(store) and repr(store).startswith("ForecastStore(")
    assert store.backend == "postgresql"
    store.dispose()
