"""Writing outputs (sparecast.pipeline.outputs): every file
lands where run.json says, secrets stay out of run.json, quantile columns are named by level."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.config import load_settings
from sparecast.data.panel import DemandPanel
from sparecast.pipeline.core import CoreResult
from sparecast.pipeline.load import load_panel
from sparecast.pipeline.outputs import (
    OUTPUT_FILES,
    PLAN_FILES,
    POLICY_FILE,
    quantile_column,
    with_forecast_quantiles,
    write_outputs,
)


def test_quantile_column_names() -> None:
    assert [quantile_column(q) for q in (0.5, 0.9, 0.975, 0.995)] == [
        "q50",
        "q90",
        "q97.5",
        "q99.5",
    ]


def test_the_plan_files_are_output_files() -> None:
    assert POLICY_FILE in PLAN_FILES
    assert set(PLAN_FILES) <= set(OUTPUT_FILES)
    assert len(set(OUTPUT_FILES)) == len(OUTPUT_FILES)


def test_forecast_quantiles_are_zero_below_the_no_demand_share() -> None:
    """Item A has demand in half of its periods: every level up to 0.5 is 0; an item without
    demand and a zero forecast has zero quantiles at every level."""
    long = pl.DataFrame(
        {
            "unique_id": ["A"] * 4 + ["B"] * 4,
            "ds": [date(2026, 1, d) for d in range(1, 5)] * 2,
            "y": [0.0, 3.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    panel = DemandPanel.from_long(long, freq="D")
    forecasts = pl.DataFrame(
        {
            "unique_id": ["A", "A", "B", "B"],
            "ds": [date(2026, 1, 5), date(2026, 1, 6)] * 2,
            "forecast": [1.5, 1.5, 0.0, 0.0],
        }
    )
    out = with_forecast_quantiles(panel, forecasts, [0.3, 0.5, 0.9])
    assert out.columns == ["unique_id", "ds", "forecast", "q30", "q50", "q90"]
    assert out["q30"].to_list() == [0.0, 0.0, 0.0, 0.0]
    assert out["q50"].to_list() == [0.0, 0.0, 0.0, 0.0]
    assert (out["q90"].head(2) > 0).all() and out["q90"].tail(2).to_list() == [0.0, 0.0]


def test_write_outputs(tmp_path: Path) -> None:
    """The files of a hand-made core result, and run.json describing them with the source's
    password hidden."""
    path = tmp_path / "demand.csv"
    path.write_text("unique_id,ds,y\nA,2026-01-01,2\nA,2026-01-02,1\nB,2026-01-02,4\nB,x,1\n")
    settings = load_settings(data={"today": "2026-01-31"})
    loaded = load_panel(str(path), settings)
    result = CoreResult(
        classification=pl.DataFrame({"unique_id": ["A", "B"], "tier": ["regular", "regular"]}),
        backtest=None,
        selection=pl.DataFrame(
            {"unique_id": ["A", "B"], "method": ["ma", "sba"], "reason": ["r", "r"]}
        ),
        forecasts=pl.DataFrame(
            {"unique_id": ["A", "B"], "ds": [date(2026, 1, 3)] * 2, "forecast": [1.5, 2.0]}
        ),
        summary=None,
        notes=["a note"],
    )
    out = tmp_path / "out"
    out.mkdir()
    paths = write_outputs(
        out,
        loaded,
        result,
        settings,
        source="postgresql://erp:hunter2@db/erp",
        timings={"load_s": 0.12345},
    )
    assert sorted(paths) == ["classification", "forecasts", "rejected_demand", "run", "selection"]
    assert sorted(p.name for p in out.iterdir()) == [
        "classification.parquet",
        "forecasts.parquet",
        "rejected_rows.parquet",
        "run.json",
        "selection.parquet",
    ]
    assert pl.read_parquet(out / "forecasts.parquet")["forecast"].to_list() == [1.5, 2.0]
    assert pl.read_parquet(out / "rejected_rows.parquet")["ds"].to_list() == ["x"]
    run = json.loads((out / "run.json").read_text())
    assert run["source"] == "postgresql://erp:***@db/erp"
    assert run["source_kind"] == "long_file"
    assert run["data_window"] == {
        "start": "2026-01-01",
        "end": "2026-01-02",
        "freq": "D",
        "n_items": 2,
        "n_periods": 2,
    }
    assert run["validation"]["demand"]["rows_rejected"] == 1
    assert run["notes"] == ["a note"]
    assert run["timings_s"] == {"load_s": 0.123}
    assert run["outputs"]["forecasts"] == str(out / "forecasts.parquet")
    np.testing.assert_array_equal(loaded.panel.y, [[2.0, 1.0], [0.0, 4.0]])
