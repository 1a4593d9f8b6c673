import numpy as np
import pandas as pd
import polars as pl
import pytest

from sparecast import DemandPanel
from sparecast.errors import DataValidationError


def _long() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": ["a", "a", "a", "b"],
            "ds": ["2024-01-01", "2024-01-03", "2024-01-03", "2024-01-09"],
            "y": [1.0, 2.0, 0.5, 3.0],
        }
    ).with_columns(pl.col("ds").str.to_date())


def test_from_long_dense_with_zero_fill_and_sum() -> None:
    p = DemandPanel.from_long(_long(), freq="D")
    assert p.y.dtype == np.float32
    assert p.item_ids.tolist() == ["a", "b"]
    assert p.n_periods == 9
    np.testing.assert_array_equal(p.y[0, :3], [1.0, 0.0, 2.5])  # same-day rows summed
    assert p.y[1, 8] == 3.0 and p.y[1, :8].sum() == 0
    assert str(p.dates[0]) == "2024-01-01" and str(p.end) == "2024-01-09"


def test_from_pandas_and_extra_items_and_window() -> None:
    df = _long().to_pandas()
    p = DemandPanel.from_long(
        df, freq="D", item_ids=["a", "b", "c"], start="2024-01-02", end="2024-01-10"
    )
    assert p.item_ids.tolist() == ["a", "b", "c"]
    assert p.n_periods == 9
    assert p.y[0].sum() == 2.5  # the row of 2024-01-01 is outside the window
    assert p.y[2].sum() == 0  # an item without demand is a row of zeros


def test_unknown_item_and_missing_column_raise() -> None:
    with pytest.raises(DataValidationError, match="not in item_ids"):
        DemandPanel.from_long(_long(), item_ids=["a"])
    with pytest.raises(DataValidationError, match="lacks column"):
        DemandPanel.from_long(_long().drop("y"))


def test_round_trip_long() -> None:
    p = DemandPanel.from_long(_long(), freq="D")
    back = DemandPanel.from_long(p.to_long(drop_zeros=True), freq="D", start=p.start, end=p.end)
    np.testing.assert_array_equal(back.y, p.y)
    assert p.to_long().height == p.n_items * p.n_periods


def test_bucket_weekly_and_monthly() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((3, 70)) < 0.2) * rng.integers(1, 5, (3, 70))
    p = DemandPanel(
        y.astype(np.float32), np.array(["x", "y", "z"], dtype=object), np.datetime64("2024-01-03")
    )
    w = p.bucket("W")
    assert w.y.sum() == pytest.approx(y.sum())
    assert str(w.start) == "2024-01-01"  # the Monday of the first week
    # first week holds Wed 3 .. Sun 7 (5 days)
    np.testing.assert_allclose(w.y[:, 0], y[:, :5].sum(axis=1))
    m = p.bucket("M")
    assert str(m.dates[1]) == "2024-02-01"
    np.testing.assert_allclose(m.y[:, 0], y[:, :29].sum(axis=1))  # Jan 3..31


def test_infer_monthly_frequency() -> None:
    df = pd.DataFrame(
        {
            "unique_id": ["a"] * 3,
            "ds": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-04-01"]),
            "y": [1, 0, 2],
        }
    )
    p = DemandPanel.from_long(df)
    assert p.freq == "M" and p.n_periods == 4
    np.testing.assert_array_equal(p.y[0], [1, 0, 0, 2])
    assert str(p.future_dates(2)[0]) == "2020-05-01"


def test_bucket_complete_only_drops_partial_edges() -> None:
    y = np.ones((1, 70), dtype=np.float32)  # Wed 2024-01-03 .. Tue 2024-03-12
    p = DemandPanel(y, np.array(["x"], dtype=object), np.datetime64("2024-01-03"))
    w = p.bucket("W", complete_only=True)
    assert str(w.start) == "2024-01-08"  # first complete week starts on Monday 8th
    assert (w.y == 7).all()  # only full weeks: Mon 8 Jan .. Sun 10 Mar
    assert str(w.end) == "2024-03-04" and w.n_periods == 9
    m = p.bucket("M", complete_only=True)
    assert m.n_periods == 1 and str(m.start) == "2024-02-01" and m.y[0, 0] == 29
    with pytest.raises(DataValidationError, match="no complete"):
        p.slice_periods(10).bucket("M", complete_only=True)


def test_weekly_input_keeps_its_weekday() -> None:
    sundays = pd.date_range("2025-01-05", periods=6, freq="7D")  # Sundays
    df = pd.DataFrame({"unique_id": "a", "ds": sundays, "y": [1, 0, 2, 0, 0, 3]})
    p = DemandPanel.from_long(df)
    assert p.freq == "W" and str(p.start) == "2025-01-05"
    np.testing.assert_array_equal(p.y[0], [1, 0, 2, 0, 0, 3])
    assert str(p.future_dates(1)[0]) == "2025-02-16"  # the next Sunday


def test_month_end_dates_are_monthly() -> None:
    ends = pd.to_datetime(["2024-01-31", "2024-02-29", "2024-03-31", "2024-05-31"])
    p = DemandPanel.from_long(pd.DataFrame({"unique_id": "a", "ds": ends, "y": [1, 2, 3, 4]}))
    assert p.freq == "M" and p.n_periods == 5
    np.testing.assert_array_equal(p.y[0], [1, 2, 3, 0, 4])


def test_timezone_aware_and_string_dates_keep_the_local_day() -> None:
    local = pd.date_range("2024-01-01", periods=3, freq="D", tz="Europe/Berlin")
    p = DemandPanel.from_long(pd.DataFrame({"unique_id": "a", "ds": local, "y": [1, 0, 2]}))
    assert str(p.start) == "2024-01-01"
    text = pd.DataFrame(
        {"unique_id": [" a", "a"], "ds": ["2024-01-01", "2024-01-02"], "y": ["1", "2"]}
    )
    q = DemandPanel.from_long(text)
    assert q.item_ids.tolist() == ["a"] and q.y.tolist() == [[1.0, 2.0]]
    bad = pd.DataFrame({"unique_id": ["a"], "ds": ["not a date"], "y": [1]})
    with pytest.raises(DataValidationError, match="unparseable"):
        DemandPanel.from_long(bad)


def test_row_order_and_layout_do_not_change_the_panel() -> None:
    """The full grid in order (written in place), the same rows shuffled or split into
    duplicates (summed), as pandas objects or polars strings: one panel."""
    rng = np.random.default_rng(3)
    y = (rng.random((5, 40)) < 0.3) * rng.integers(1, 9, (5, 40)).astype(float)
    ids = np.array([f"i{k}" for k in (3, 10, 1, 22, 2)], dtype=object)
    grid = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, 40),
            "ds": np.tile(pd.date_range("1969-12-20 08:30", periods=40, freq="D").values, 5),
            "y": y.ravel(),
        }
    )
    order = np.argsort(ids, kind="stable")
    expected = y[order].astype(np.float32)
    halves = pd.concat([grid.assign(y=grid["y"] / 2), grid.assign(y=grid["y"] / 2)])
    frames = {
        "grid": grid,
        "shuffled": grid.sample(frac=1.0, random_state=1),
        "duplicates": halves.sample(frac=1.0, random_state=2),
        "polars": pl.from_pandas(grid),
        "tz-aware": grid.assign(ds=grid["ds"].dt.tz_localize("America/New_York")),
    }
    for name, frame in frames.items():
        p = DemandPanel.from_long(frame)
        assert p.item_ids.tolist() == sorted(ids.tolist()), name
        assert str(p.start) == "1969-12-20" and p.n_periods == 40, name
        np.testing.assert_array_equal(p.y, expected, err_msg=name)
