"""The progress callback: no_progress shows nothing and is every step's default; a callback given
to the pipeline hears each long step advance up to its total."""

from __future__ import annotations

import inspect
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.config import load_settings
from sparecast.pipeline.core import run_core
from sparecast.pipeline.progress import Progress, no_progress
from sparecast.pipeline.steps import run_pipeline


def test_no_progress_returns_nothing_for_any_call() -> None:
    assert no_progress("backtest", 0, 10) is None
    assert no_progress("", 5, 0) is None
    callback: Progress = no_progress  # it is a Progress
    assert callback("x", 1, 1) is None


def test_no_progress_is_the_default_of_the_steps() -> None:
    for step in (run_pipeline, run_core):
        assert inspect.signature(step).parameters["progress"].default is no_progress


def test_the_pipeline_reports_each_step_up_to_its_total(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(60)]
    long = pl.DataFrame(
        {
            "unique_id": ["A"] * 60 + ["B"] * 60,
            "ds": days * 2,
            "y": np.concatenate([rng.poisson(4.0, 60), rng.poisson(0.3, 60)]).astype(float),
        }
    )
    path = tmp_path / "demand.csv"
    long.write_csv(path)
    calls: list[tuple[str, int, int]] = []

    def record(label: str, done: int, total: int) -> None:
        calls.append((label, done, total))

    settings = load_settings(
        horizon=7, methods=["ma", "sba"], store={"write_runs": False}, data={"today": "2026-03-31"}
    )
    run_pipeline(str(path), tmp_path / "out", settings, progress=record)
    # the backtest advances once per method and window (2 methods x 3 windows), the forecast
    # once per method; the label names what was just done
    assert calls == [
        ("backtest ma window 1/3", 1, 6),
        ("backtest sba window 1/3", 2, 6),
        ("backtest ma window 2/3", 3, 6),
        ("backtest sba window 2/3", 4, 6),
        ("backtest ma window 3/3", 5, 6),
        ("backtest sba window 3/3", 6, 6),
        ("forecast ma", 1, 2),
        ("forecast sba", 2, 2),
    ]
