"""Hypothesis: whatever valid forecasts frame goes in comes back out, value for value."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparecast.store import ForecastStore, RunMeta

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def runs(draw: st.DrawFn) -> pl.DataFrame:
    ids = draw(
        st.lists(
            st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    h = draw(st.integers(1, 8))
    levels = draw(st.lists(st.sampled_from([5, 50, 80, 90, 95, 97.5, 99]), max_size=3, unique=True))
    start = draw(st.dates(date(2000, 1, 1), date(2090, 1, 1)))
    n = len(ids) * h
    frame = pl.DataFrame(
        {
            "unique_id": [i for i in ids for _ in range(h)],
            "ds": [start + timedelta(days=k) for _ in ids for k in range(h)],
            "forecast": draw(st.lists(finite, min_size=n, max_size=n)),
            "method": [draw(st.sampled_from(["ma", "sba", "tsb"])) for i in ids for _ in range(h)],
        },
        schema={"unique_id": pl.Utf8, "ds": pl.Date, "forecast": pl.Float64, "method": pl.Utf8},
    )
    # one method per item
    frame = frame.with_columns(pl.col("method").first().over("unique_id"))
    for level in levels:
        values = draw(st.lists(st.none() | finite, min_size=n, max_size=n))
        frame = frame.with_columns(pl.Series(f"q{level:g}", values, dtype=pl.Float64))
    return frame


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=runs())
def test_write_then_read_is_identity(frame: pl.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = ForecastStore(f"sqlite:///{Path(tmp) / 'h.sqlite'}")
        store.migrate()
        h = frame["ds"].n_unique()
        meta = RunMeta("0", {}, date(2000, 1, 1), date(2000, 1, 2), "D", 1, 2, h)
        run_id = store.write_run(meta, frame.sample(fraction=1.0, shuffle=True, seed=0))
        back = store.run_forecasts(run_id)
        assert set(back.columns) == set(frame.columns)  # quantiles come back by ascending level
        assert back.equals(frame.sort("unique_id", "ds").select(back.columns))
        ids = frame["unique_id"].unique().to_list()
        got = store.items_forecasts(ids)
        assert set(got) == set(ids)
        for uid, item in got.items():
            rows = frame.filter(pl.col("unique_id") == uid).sort("ds")
            assert item.forecast == rows["forecast"].to_list()
            for name, values in item.quantiles.items():
                assert values == rows[name].to_list()
        store.dispose()
