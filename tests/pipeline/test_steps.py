"""The orchestration (sparecast.pipeline.steps.run_pipeline) on a small long CSV file: stale
results go, every output is written, the console lines summarise the backtest."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from utils.panels import write_long_csv

from sparecast.config import load_settings
from sparecast.pipeline.steps import run_pipeline


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
    assert (
        lines[0] == f"per demand class (* best by backtest {metric}; zero = forecasting nothing):"
    )
    assert f"per frequency tier (* best by backtest {metric}; zero = forecasting nothing):" in lines
    assert lines[1].split()[:3] == ["group", "items", "method"]
    assert any(line.split()[:1] == ["zero"] for line in lines)  # the reference row
    assert any(line.startswith("router auto: ") for line in lines)
    assert lines[-1].startswith("all items, method chosen per ")
