"""Small demand panels and score lookups shared by the backtest, selection, ML and feature tests,
and a small long demand CSV for the pipeline tests."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast.data.panel import DemandPanel


def make_panel(y: np.ndarray, ids: list[str] | None = None) -> DemandPanel:
    """A daily panel of the rows of ``y`` (one row: one item), items ``item0``.. by default,
    starting 2024-01-01."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[None, :]
    ids = ids or [f"item{i}" for i in range(y.shape[0])]
    return DemandPanel(y=y, item_ids=np.array(ids, dtype=object), start=np.datetime64("2024-01-01"))


def method_score(result: Any, item: str, method: str, col: str) -> Any:
    """The ``col`` score of one item and method in a backtest result (exactly one row)."""
    row = result.scores.filter((pl.col("unique_id") == item) & (pl.col("method") == method))
    assert row.height == 1
    return row[col][0]


def two_method_panel() -> tuple[DemandPanel, pl.DataFrame]:
    """Three items where the backtest of naive and ma has a clear winner per item, and their
    Syntetos-Boylan classes."""
    # item0: a linear trend -> naive wins
    # item1: noise around a constant level -> ma wins
    rng = np.random.default_rng(7)
    t = 120
    y0 = np.arange(t, dtype=float)
    y1 = 10.0 + rng.normal(0.0, 2.0, t)
    y2 = np.zeros(t)  # no history
    panel = make_panel(np.vstack([y0, y1, y2]))
    classes = pl.DataFrame(
        {"unique_id": ["item0", "item1", "item2"], "sb_class": ["smooth", "erratic", "no_demand"]}
    )
    return panel, classes


def weekday_panel(
    n_items: int = 40, n_periods: int = 120, seed: int = 0, attributes: bool = True
) -> DemandPanel:
    """Items with their own demand rate and size, demand only Monday to Friday."""
    rng = np.random.default_rng(seed)
    p = rng.choice([0.03, 0.1, 0.3, 0.7], n_items)[:, None]
    size = rng.choice([1.0, 3.0, 10.0], n_items)[:, None]
    start = np.datetime64("2026-01-05")  # a Monday
    weekday = (np.arange(n_periods) % 7) < 5
    hit = (rng.random((n_items, n_periods)) < p) & weekday[None, :]
    y = np.where(hit, rng.poisson(size, (n_items, n_periods)) + 1, 0).astype(np.float32)
    ids = np.array([f"I{i:03d}" for i in range(n_items)], dtype=object)
    attrs = None
    if attributes:
        attrs = pl.DataFrame(
            {
                "unique_id": ids.tolist(),
                "category": [["a", "b", "c"][i % 3] for i in range(n_items)],
                "unit_cost": size.ravel() * 2.0,
            }
        )
    return DemandPanel(y, ids, start, "D", attrs)


def write_long_csv(directory: Path) -> Path:
    """DIRECTORY/demand.csv in long form: items A (Poisson 4) and B (Poisson 0.3), 60 days from
    2026-01-01 (seed 3)."""
    rng = np.random.default_rng(3)
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(60)]
    long = pl.DataFrame(
        {
            "unique_id": ["A"] * 60 + ["B"] * 60,
            "ds": days * 2,
            "y": np.concatenate([rng.poisson(4.0, 60), rng.poisson(0.3, 60)]).astype(float),
        }
    )
    path = directory / "demand.csv"
    long.write_csv(path)
    return path


def write_monthly_csv(directory: Path, n_months: int = 56, n_items: int = 12) -> Path:
    """DIRECTORY/monthly.csv in long form: ``n_items`` intermittent items (Poisson rates 0.3 to
    3), ``n_months`` month starts from 2020-01-01 (seed 5): a panel like oil's (56 months) or
    carparts' (51)."""
    rng = np.random.default_rng(5)
    months = [date(2020 + m // 12, m % 12 + 1, 1) for m in range(n_months)]
    rates = np.linspace(0.3, 3.0, n_items)
    long = pl.DataFrame(
        {
            "unique_id": np.repeat([f"M{i:02d}" for i in range(n_items)], n_months),
            "ds": months * n_items,
            "y": rng.poisson(np.repeat(rates, n_months)).astype(float),
        }
    )
    path = directory / "monthly.csv"
    long.write_csv(path)
    return path
