"""The library entry point ``forecast``: shape, columns, frequency defaults, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from sparecast import ConfigError, DemandPanel, MethodError, forecast
from sparecast.core import MAX_HORIZON
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
