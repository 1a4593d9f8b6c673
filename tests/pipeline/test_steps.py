"""The orchestration (sparecast.pipeline.steps.run_pipeline) on a small long CSV file: stale
results go, every output is written, the console lines summarise the backtest."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from utils.panels import write_long_csv, write_monthly_csv

from sparecast.config import load_settings
from sparecast.pipeline.steps import run_pipeline
from sparecast.store import ForecastStore


def test_run_pipeline_on_a_long_csv(tmp_path: Path) -> None:
    path = write_long_csv(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "policy.parquet").write_text("stale")  # a plan of an earlier run
    settings = load_settings(
        horizon=7,
        methods=["ma", "sba"],
        quantiles=[0.5, 0.9],
        store={"write_runs": False},
        data={"today": "2026-03-31"},
    )
    outcome = run_pipeline(str(path), out, settings)

    assert not (out / "policy.parquet").exists()
    assert sorted(outcome.paths) == [
        "backtest",
        "backtest_summary",
        "classification",
        "forecasts",
        "run",
        "selection",
    ]
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert fc.height == 2 * 7
    assert {"unique_id", "ds", "forecast", "method", "ma", "sba", "q50", "q90"} <= set(fc.columns)
    assert str(fc["ds"].min()) == "2026-03-02"  # the day after the last of the history
    assert (fc["q90"] >= fc["q50"]).all()
    run = json.loads((out / "run.json").read_text())
    assert run["source"] == str(path) and run["source_kind"] == "long_file"
    assert run["data_window"]["n_items"] == 2 and run["data_window"]["n_periods"] == 60
    assert {"load_s", "classify_s", "backtest_s", "forecast_s", "quantiles_s", "write_s"} <= set(
        outcome.timings
    )
    lines = outcome.summary_lines
    metric = settings.router.metric
    assert lines[0] == "horizon 7 periods (days); backtest on 3 windows, origins 7 periods apart"
    assert run["horizon"] == {"periods": 7, "unit": "days", "asked": 7}
    assert (
        lines[1] == f"per demand class (* best by backtest {metric}; zero = forecasting nothing):"
    )
    assert f"per frequency tier (* best by backtest {metric}; zero = forecasting nothing):" in lines
    assert lines[2].split()[:3] == ["group", "items", "method"]
    assert any(line.split()[:1] == ["zero"] for line in lines)  # the reference row
    assert any(line.startswith("router auto: ") for line in lines)
    assert lines[-1].startswith("all items, method chosen per ")


def test_a_monthly_run_forecasts_6_months_and_stores_them(tmp_path: Path) -> None:
    """No horizon set: 6 months on a monthly file, backtested on the 3 configured windows (no
    note), stored with horizon 6 and 6 months of actuals; run.json and the summary say it."""
    out = tmp_path / "out"
    settings = load_settings(methods=["ma", "sba"], data={"today": "2026-03-31"})
    outcome = run_pipeline(str(write_monthly_csv(tmp_path)), out, settings)
    assert outcome.result.notes == []
    assert outcome.summary_lines[0] == (
        "horizon 6 periods (months); backtest on 3 windows, origins 6 periods apart"
    )
    run = json.loads((out / "run.json").read_text())
    assert run["horizon"] == {"periods": 6, "unit": "months", "asked": None}
    assert run["config"]["horizon"] is None and run["notes"] == []
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert fc.height == 12 * 6 and str(fc["ds"].min()) == "2024-09-01"
    store = ForecastStore(outcome.paths["store"])
    try:
        info = store.latest_run()
        assert info is not None and (info.freq, info.horizon) == ("M", 6)
        assert len(info.actuals_dates) == 6
        assert len(store.item_forecast("M03", horizon="13w").forecast) == 3  # type: ignore[union-attr]
        assert len(store.item_forecast("M03", horizon="1y").forecast) == 6  # all there is
    finally:
        store.dispose()
