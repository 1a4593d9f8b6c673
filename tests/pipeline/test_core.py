"""The core run (sparecast.pipeline.core): how many backtest windows fit, the router the
settings describe, and a run on a history too short to backtest."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from utils.panels import weekday_panel, write_monthly_csv

from sparecast import methods as registry
from sparecast.config import load_settings
from sparecast.core import DEFAULT_HORIZONS
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError
from sparecast.evaluate.backtest import windows_that_fit
from sparecast.pipeline.core import make_router, run_core


@pytest.mark.parametrize(
    ("n_periods", "expected"),
    [(12, 0), (13, 1), (17, 1), (18, 2), (100, 3)],
)
def test_windows_that_fit_the_settings(n_periods: int, expected: int) -> None:
    """h = 5, seasonality 7: a window needs h + 7 + 1 = 13 periods, each further one 5 more
    (step = h); never more than the 3 configured."""
    settings = load_settings(backtest={"n_windows": 3, "seasonality": 7})
    b = settings.backtest
    assert windows_that_fit(n_periods, 5, b.n_windows, b.step, b.seasonality) == expected


def test_make_router_takes_the_settings() -> None:
    settings = load_settings(
        methods=["ma", "sba"],
        router={"mode": "auto", "metric": "mase", "top_k": 1, "fallback": "sba"},
        backtest={"n_windows": 2, "seasonality": 7},
    )
    router = make_router(settings)
    assert router.mode == "auto"
    assert router.metric == "mase" and router.top_k == 1 and router.fallback == "sba"
    assert router.n_windows == 2 and router.seasonality == 7
    assert router.backtest_methods() == ["ma", "sba"]


def test_run_core_on_a_short_history_serves_the_fallback() -> None:
    """Three periods cannot hold a backtest of h = 2: no backtest, every item gets the
    fallback, and the forecast column is the fallback's."""
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(3)]
    long = pl.DataFrame(
        {"unique_id": ["A"] * 3 + ["B"] * 3, "ds": days * 2, "y": [1.0, 2.0, 3.0, 0.0, 4.0, 0.0]}
    )
    panel = DemandPanel.from_long(long, freq="D")
    settings = load_settings(horizon=2, methods=["ma", "sba"], router={"fallback": "ma"})
    result = run_core(panel, settings)
    assert result.backtest is None and result.summary is None
    assert any(n.startswith("backtest skipped: fallback ma") for n in result.notes)
    assert result.selection["method"].to_list() == ["ma", "ma"]
    assert result.classification["unique_id"].to_list() == ["A", "B"]
    fc = result.forecasts
    assert fc is not None and fc.height == 2 * 2
    np.testing.assert_array_equal(fc["forecast"].to_numpy(), fc["ma"].to_numpy())
    assert fc["method"].to_list() == ["ma"] * 4
    assert {"classify_s", "backtest_s", "forecast_s"} <= set(result.timings)


@pytest.mark.parametrize("metric", ["mae", "rmsse", "mase+asym"])
def test_the_summary_chooses_by_the_router_metric_and_shows_zero(metric: str) -> None:
    """The summary's ``chosen`` is the lowest mean of the router's metric per group among the
    methods (the zero reference scored beside them, never chosen), and the forecasts have no
    zero column."""
    rng = np.random.default_rng(5)
    y = (rng.random((12, 80)) < 0.3) * rng.integers(1, 6, (12, 80))
    panel = DemandPanel(
        y.astype(np.float32), np.array([f"I{i}" for i in range(12)]), np.datetime64("2026-01-01")
    )
    settings = load_settings(
        horizon=7,
        methods=["naive", "ma", "sba"],
        router={"metric": metric, "top_k": 1, "fallback": "ma"},
    )
    result = run_core(panel, settings)
    summary = result.summary
    assert summary is not None and result.forecasts is not None
    assert "zero" not in result.forecasts.columns
    assert set(summary["method"]) == {"naive", "ma", "sba", "zero"}
    for (_, _), rows in summary.group_by("grouping", "group"):
        candidates = rows.filter(pl.col("method") != "zero")
        if metric == "mase+asym":  # each relative to the group's best candidate, added
            candidates = candidates.with_columns(
                (
                    pl.col("mase") / pl.col("mase").min() + pl.col("asym") / pl.col("asym").min()
                ).alias(metric)
            )
        candidates = candidates.filter(pl.col(metric).is_not_null())
        if candidates.height:
            best = candidates.sort(metric, maintain_order=True)["method"][0]
            assert rows.filter(pl.col("chosen"))["method"].to_list() == [best]


# --------------------------------------------------------------------------- issue 11: horizons
@pytest.mark.parametrize(("n_periods", "h", "expected"), [(56, 6, 3), (51, 6, 3), (56, 28, 1)])
def test_six_months_fit_three_windows_on_oil_and_carparts_lengths(
    n_periods: int, h: int, expected: int
) -> None:
    """oil has 56 months and carparts 51: the monthly default of 6 months (step 6) fits the 3
    configured windows; 28 periods (the old default, whatever the frequency) fitted one."""
    b = load_settings().backtest
    assert windows_that_fit(n_periods, h, b.n_windows, b.step, b.seasonality) == expected
    assert DEFAULT_HORIZONS["M"] == 6


def _monthly_panel(tmp_path: Path, n_months: int = 56) -> DemandPanel:
    frame = pl.read_csv(write_monthly_csv(tmp_path, n_months), try_parse_dates=True)
    return DemandPanel.from_long(frame)


def test_a_monthly_panel_forecasts_6_months_on_3_windows(tmp_path: Path) -> None:
    panel = _monthly_panel(tmp_path)
    assert panel.freq == "M" and panel.n_periods == 56
    result = run_core(panel, load_settings(methods=["ma", "sba"]))
    assert result.horizon == 6
    bt = result.backtest
    assert bt is not None and bt.h == 6
    assert bt.origins == [38, 44, 50]  # 3 windows, 6 months apart, the last ending at 56
    assert not any("window(s) instead of" in n for n in result.notes)
    fc = result.forecasts
    assert fc is not None and fc.height == 12 * 6
    assert sorted(set(fc["ds"].to_list())) == [date(2024, 9 + k, 1) for k in range(4)] + [
        date(2025, 1, 1),
        date(2025, 2, 1),
    ]


def test_a_duration_is_converted_with_the_panels_frequency(tmp_path: Path) -> None:
    monthly = _monthly_panel(tmp_path)
    result = run_core(monthly, load_settings(horizon="13w", methods=["ma"]), with_forecast=False)
    assert result.horizon == 3  # 91 days / 30.44 -> 3 months
    weekly = DemandPanel(
        np.ones((2, 60), np.float32), np.array(["a", "b"]), np.datetime64("2026-01-05"), "W"
    )
    assert run_core(weekly, load_settings(horizon="90d", methods=["ma"])).horizon == 13
    assert run_core(weekly, load_settings(methods=["ma"])).horizon == 13  # weekly default
    with pytest.raises(ConfigError, match=r"h='5y' = 261 exceeds max_horizon=200"):
        run_core(weekly, load_settings(horizon="5y", max_horizon=200, methods=["ma"]))


def test_short_history_notes_give_the_horizon_with_its_unit(tmp_path: Path) -> None:
    short = run_core(_monthly_panel(tmp_path, 7), load_settings(methods=["ma", "sba"]))
    assert any(
        n.startswith("backtest skipped") and "horizon of 6 periods (months)" in n
        for n in short.notes
    ), short.notes
    fewer = run_core(_monthly_panel(tmp_path, 16), load_settings(methods=["ma", "sba"]))
    assert (
        "backtest on 2 window(s) instead of 3: the history has 16 periods for a horizon of "
        "6 periods (months)"
    ) in fewer.notes


def test_run_core_fits_lightgbm_twice_and_keeps_its_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One LightGBM fit for the three backtest windows and one for the final forecast; the
    per-window path (the method without its backtest kernel) fits four times and gives the
    same tables, column for column."""
    import lightgbm  # here: sparecast sets OMP_WAIT_POLICY before the first import

    fits: list[int] = []
    train = lightgbm.train

    def counting(*args: object, **kwargs: object) -> object:
        fits.append(1)
        return train(*args, **kwargs)

    monkeypatch.setattr(lightgbm, "train", counting)
    panel = weekday_panel(n_items=30, n_periods=120, seed=3)
    settings = load_settings(
        horizon=7,
        methods=["ma", "sba", "lightgbm"],
        backtest={"n_windows": 3},
        method_params={"lightgbm": {"n_estimators": 20, "min_data_in_leaf": 20}},
    )
    shared = run_core(panel, settings)
    assert len(fits) == 2
    lgb = registry.METHODS["lightgbm"]
    monkeypatch.setitem(
        registry.METHODS, "lightgbm", dataclasses.replace(lgb, backtest_kernel=None)
    )
    per_window = run_core(panel, settings)
    assert len(fits) == 2 + 4
    assert shared.backtest is not None and per_window.backtest is not None
    assert shared.forecasts is not None and per_window.forecasts is not None
    for a, b in [
        (shared.forecasts, per_window.forecasts),
        (shared.backtest.scores, per_window.backtest.scores),
        (shared.summary, per_window.summary),
        (shared.selection, per_window.selection),
    ]:
        assert a is not None and b is not None
        assert a.schema == b.schema and a.height == b.height
    # the final forecast is fitted on the whole history either way
    assert shared.forecasts["lightgbm"].equals(per_window.forecasts["lightgbm"])
