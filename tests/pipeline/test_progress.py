"""The progress callback: no_progress shows nothing and is every step's default; a callback given
to the pipeline hears each long step advance up to its total."""

from __future__ import annotations

import inspect
from pathlib import Path

from utils.panels import write_long_csv

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
    path = write_long_csv(tmp_path)
    calls: list[tuple[str, int, int]] = []

    def record(label: str, done: int, total: int) -> None:
        calls.append((label, done, total))

    settings = load_settings(
        horizon=7,
        methods=["ma", "sba"],
        router={"fallback": "ma"},
        store={"write_runs": False},
        data={"today": "2026-03-31"},
    )
    run_pipeline(str(path), tmp_path / "out", settings, progress=record)
    # the backtest advances once per method and window (2 methods and the zero reference x 3
    # windows), the forecast once per method; the label names what was just done
    assert calls == [
        ("backtest ma window 1/3", 1, 9),
        ("backtest sba window 1/3", 2, 9),
        ("backtest zero window 1/3", 3, 9),
        ("backtest ma window 2/3", 4, 9),
        ("backtest sba window 2/3", 5, 9),
        ("backtest zero window 2/3", 6, 9),
        ("backtest ma window 3/3", 7, 9),
        ("backtest sba window 3/3", 8, 9),
        ("backtest zero window 3/3", 9, 9),
        ("forecast ma", 1, 2),
        ("forecast sba", 2, 2),
    ]
