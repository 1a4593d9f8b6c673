"""The library entry point ``forecast``: shape, columns, frequency defaults, errors."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest

import sparecast
from sparecast import ConfigError, DemandPanel, MethodError, forecast
from sparecast.core import (
    DEFAULT_HORIZONS,
    MAX_HORIZON,
    check_horizon,
    forecasts_to_frame,
    horizon_periods,
    horizon_text,
)
from sparecast.methods import FREQ_DEFAULTS, forecast_matrix, params_for


def _panel(freq: str = "D") -> DemandPanel:
    rng = np.random.default_rng(0)
    y = ((rng.random((4, 40)) < 0.3) * rng.integers(1, 6, (4, 40))).astype(np.float32)
    return DemandPanel(
        y, np.array(["a", "b", "c", "d"], dtype=object), np.datetime64("2024-01-01"), freq
    )


def test_forecast_like_statsforecast() -> None:
    panel = _panel()
    fc = forecast(panel, h=5, methods=["naive", "ma", "sba"])
    assert isinstance(fc, pd.DataFrame)
    assert list(fc.columns) == ["unique_id", "ds", "naive", "ma", "sba"]
    assert len(fc) == 4 * 5
    assert fc["ds"].min() == pd.Timestamp("2024-02-10")  # the day after the last of 40 days
    np.testing.assert_allclose(
        fc[fc.unique_id == "b"]["ma"].to_numpy(), np.full(5, panel.y[1, -28:].mean()), rtol=1e-6
    )
    assert isinstance(forecast(panel, 3, ["naive"], output="polars"), pl.DataFrame)


def test_frequency_defaults_and_overrides() -> None:
    monthly = _panel("M")
    fc = forecast(monthly, h=2, methods=["ma"], output="polars")
    expected = monthly.y[:, -12:].mean(axis=1)  # MA(12) for monthly data
    np.testing.assert_allclose(fc["ma"].to_numpy()[::2], expected, rtol=1e-6)
    fc7 = forecast(monthly, h=2, methods=["ma"], params={"ma": {"window": 7}}, output="polars")
    np.testing.assert_allclose(fc7["ma"].to_numpy()[::2], monthly.y[:, -7:].mean(axis=1), rtol=1e-6)
    assert params_for("W", ["ma", "sba"]) == {"ma": FREQ_DEFAULTS["W"]["ma"]}
    assert params_for("D", ["seasonal_naive"], {"seasonal_naive": {"season_length": 3}}) == {
        "seasonal_naive": {"season_length": 3}
    }


def test_errors_name_the_problem() -> None:
    with pytest.raises(MethodError, match="prophet"):
        forecast(_panel(), 3, ["prophet"])
    with pytest.raises(MethodError, match="horizon"):
        forecast_matrix(_panel().y, 0, "naive")
    with pytest.raises(MethodError, match="bad parameters"):
        forecast(_panel(), 3, ["ma"], params={"ma": {"windw": 3}})


def test_forecasts_never_negative_with_returns() -> None:
    y = np.array([[0, 5, -9, 0, 0, 1, -4, 0]], dtype=np.float32)
    panel = DemandPanel(y, np.array(["r"], dtype=object), np.datetime64("2024-01-01"))
    fc = forecast(panel, 3, ["naive", "ma", "ses", "croston", "tsb"], output="polars")
    assert (fc.select(pl.exclude("unique_id", "ds")).to_numpy() >= 0).all()


def test_an_absurd_horizon_is_refused_before_allocating() -> None:
    panel = _panel()
    with pytest.raises(ConfigError, match="h=100000000 exceeds max_horizon=3660"):
        forecast(panel, 100_000_000)
    assert MAX_HORIZON == 3660
    out = forecast(panel, 4000, methods=["naive"], max_horizon=4000, output="polars")
    assert out.height == panel.n_items * 4000


# --------------------------------------------------------------------------- issue 11: horizons
@pytest.mark.parametrize(
    ("spec", "freq", "last_date", "expected"),
    [
        (None, "D", None, 28),  # the frequency's default
        (None, "W", None, 13),
        (None, "M", None, 6),
        (6, "M", None, 6),  # plain periods, whatever the frequency
        ("40", "D", None, 40),
        ("90d", "D", None, 90),
        ("90d", "W", None, 13),  # 90 / 7 = 12.86 -> 13
        ("91d", "W", None, 13),  # exactly 13 weeks
        ("92d", "W", None, 14),
        ("13w", "D", None, 91),
        ("13w", "W", None, 13),
        ("13w", "M", None, 3),  # 91 / 30.436875 = 2.99 -> 3
        ("90d", "M", "2027-01-01", 3),  # mean months even before a short February
        ("92d", "M", None, 4),  # 92 / 30.436875 = 3.02 -> 4
        ("6mo", "M", None, 6),
        ("1y", "M", None, 12),
        ("2 years", "M", None, 24),
        ("6mo", "D", None, 183),  # 6 x 30.436875 = 182.6 -> 183
        ("6mo", "D", "2026-10-31", 181),  # Nov 30 + Dec 31 + Jan 31 + Feb 28 + Mar 31 + Apr 30
        ("6mo", "D", "2027-03-31", 183),  # Apr..Sep: 30 + 31 + 30 + 31 + 31 + 30
        ("1mo", "D", "2024-01-31", 29),  # February of a leap year
        ("1y", "D", "2027-03-01", 366),  # 2027-03-02 .. 2028-03-01 holds 2028-02-29
        ("1y", "D", "2026-10-31", 365),
        ("1y", "W", None, 53),  # 365.2425 / 7 = 52.2 -> 53
        ("6mo", "W", "2026-10-26", 26),  # 2026-11-02 .. 2027-05-01: 181 days = 25.9 weeks
        ("6mo", "W", None, 27),  # 182.6 / 7 = 26.1 -> 27
        ("3 Months", "D", date(2026, 10, 31), 92),  # Nov 30 + Dec 31 + Jan 31 (a date object)
    ],
)
def test_horizon_periods_hand_computed(
    spec: object, freq: str, last_date: object, expected: int
) -> None:
    assert horizon_periods(spec, freq, last_date) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["", "soon", "6m", "1.5y", "-3", "6 fortnights", "28 p", [6]])
def test_horizon_periods_refuses_garbage_with_the_format(spec: object) -> None:
    with pytest.raises(ConfigError, match="a number of periods or a duration like 90d, 13w, 6mo"):
        horizon_periods(spec, "D")  # type: ignore[arg-type]


def test_horizon_checks_and_texts() -> None:
    with pytest.raises(ConfigError, match="at least 1 period, got '0w'"):
        horizon_periods("0w", "W")
    with pytest.raises(ConfigError, match="freq must be one of D, W, M"):
        horizon_periods("6mo", "Q")
    with pytest.raises(ConfigError, match="months are mo"):
        check_horizon("6m")
    assert check_horizon(" 6 Months ") == "6mo" and check_horizon("28") == 28
    assert check_horizon(None) is None and check_horizon("13 weeks") == "13w"
    assert DEFAULT_HORIZONS == {"D": 28, "W": 13, "M": 6}
    assert horizon_text(6, "M") == "6 periods (months)"
    assert horizon_text(1, "D") == "1 period (day)"
    assert horizon_text(13, "W") == "13 periods (weeks)"


def test_forecast_default_horizon_follows_the_frequency_and_takes_durations() -> None:
    for freq, h in DEFAULT_HORIZONS.items():
        fc = forecast(_panel(freq), methods=["ma"], output="polars")
        assert fc.height == 4 * h, freq
    daily = _panel("D")  # 40 days from 2024-01-01: the last is 2024-02-09
    two_weeks = forecast(daily, "2w", methods=["naive"], output="polars")
    assert two_weeks.height == 4 * 14
    # a month of daily data: the days from 2024-02-10 to 2024-03-09, 29 (a leap February)
    assert forecast(daily, "1mo", methods=["naive"], output="polars").height == 4 * 29
    with pytest.raises(ConfigError, match=r"h='20y' = 730\d exceeds max_horizon=3660 periods"):
        forecast(daily, "20y", methods=["naive"])
    assert sparecast.horizon_periods is horizon_periods


def test_forecasts_to_frame_consumes_the_arrays_when_asked() -> None:
    """``consume=True`` (the pipeline: a large panel's forecasts not held twice) empties the
    dict and gives the same frame: each id h times, the dates, one float64 column per method."""
    panel = DemandPanel(
        np.ones((3, 10), np.float32), np.array(["a", "b", "c"]), np.datetime64("2026-01-01"), "D"
    )
    values = {"m1": np.arange(6, dtype=np.float32).reshape(3, 2), "m2": np.zeros((3, 2))}
    kept = forecasts_to_frame(panel, values, 2)
    eaten = forecasts_to_frame(panel, dict(values), 2, consume=True)
    assert kept.equals(eaten) and kept["unique_id"].to_list() == ["a", "a", "b", "b", "c", "c"]
    assert kept["m1"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and kept["m1"].dtype == pl.Float64
    assert kept["ds"].to_list()[:2] == [date(2026, 1, 11), date(2026, 1, 12)]
    left = dict(values)
    forecasts_to_frame(panel, left, 2, consume=True)
    assert left == {} and set(values) == {"m1", "m2"}
    assert forecasts_to_frame(panel, {}, 0).height == 0
