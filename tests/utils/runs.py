"""Hand-made runs for the forecast store tests: a long forecasts frame with quantiles, the run's
metadata, a backtest summary, and the row count of every store table; and a real small
``sparecast demo`` run for the CLI and pipeline tests."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sparecast.cli import app
from sparecast.store import ForecastStore, RunMeta
from sparecast.store.schema import metadata

START = date(2026, 11, 1)


def demo_output(tmp_path_factory: pytest.TempPathFactory, *args: str) -> Path:
    """A new temp folder holding ``sparecast demo --output FOLDER ARGS`` (which must succeed)."""
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--output", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def make_forecasts(
    n_items: int, h: int, *, levels: tuple[float, ...] = (), seed: int = 0, start: date = START
) -> pl.DataFrame:
    """Long forecasts frame: items i0.., h days from ``start``, random values and quantiles."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"i{k}" for k in range(n_items)], h)
    ds = np.tile(np.arange(np.datetime64(start), np.datetime64(start) + h), n_items)
    point = rng.gamma(0.5, 2.0, n_items * h)
    frame = pl.DataFrame(
        {
            "unique_id": ids,
            "ds": ds,
            "forecast": point,
            "method": np.repeat(rng.choice(["sba", "tsb", "ma"], n_items), h),
            "sba": point * 0.9,  # a per-method column: ignored by the store
        }
    ).with_columns(pl.col("ds").cast(pl.Date))
    for i, level in enumerate(sorted(levels)):
        frame = frame.with_columns(pl.Series(f"q{level:g}", point + 1.0 + i))
    return frame


def make_meta(h: int, n_items: int, **kw: object) -> RunMeta:
    """RunMeta of a daily run of ``n_items`` items and horizon ``h`` (``kw`` overrides)."""
    values: dict[str, object] = dict(
        sparecast_version="0.1.0",
        config={"horizon": h, "methods": ["sba", "tsb"]},
        data_start=date(2025, 11, 1),
        data_end=START - timedelta(days=1),
        freq="D",
        n_items=n_items,
        n_periods=365,
        horizon=h,
        source="erp.sqlite",
        notes=["a note"],
    )
    values.update(kw)
    return RunMeta(**values)  # type: ignore[arg-type]


RUN_TABLES = ("forecast_runs", "forecasts", "actual_demand", "run_accuracy")


def row_counts(store: ForecastStore) -> dict[str, int]:
    """Rows in each run table of the store (the tables ``write_run`` fills)."""
    with store.engine.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
            if t.name in RUN_TABLES
        }


SUMMARY = pl.DataFrame(
    {
        "grouping": ["class", "class", "class", "tier"],
        "group": ["lumpy", "lumpy", "smooth", "regular"],
        "method": ["sba", "ma", "sba", "tsb"],
        "label": ["SBA", "MA(28)", "SBA", "TSB"],
        "n_items": [10, 10, 4, 7],
        "rmsse": [0.61, 0.7, None, 0.5],
        "wape": [1.25, 1.5, 0.9, float("nan")],
        "chosen": [True, False, True, True],
    }
)
