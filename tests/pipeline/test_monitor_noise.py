"""The monitor step's noise-scaled test ([monitoring] z) on the hand-built store
(tests/utils/monitoring.py): the pumps' actuals 3x the forecast are a rel_bias of -0.67, far
beyond a threshold of 0.4; with the demand noise the items' history shows (RMSSE scale 1) that
is significant and alerts, with a history 400x as noisy it is not, unless z = 0."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from utils.monitoring import DATES, IDS, N_ITEMS, PUMPS, H, actuals_panel, item_attributes

from sparecast.config import Settings, load_settings
from sparecast.pipeline.monitor import monitor, record_actuals
from sparecast.store import ForecastStore, RunMeta, default_store_url


def settings(**monitoring: Any) -> Settings:
    values = {"watch": {"rel_bias": 0.4}, "consecutive_periods": 3, "min_items": 2}
    return load_settings(monitoring={**values, **monitoring})


def store_run(data_dir: Path, pump_scale: float) -> None:
    """The hand-built run, the pumps' RMSSE scale (their history's noise) set to
    ``pump_scale``, and the actuals of the first 3 days (pumps degraded)."""
    items = item_attributes().with_columns(
        pl.when(pl.col("category") == "pumps")
        .then(pump_scale)
        .otherwise(pl.col("scale_rmsse"))
        .alias("scale_rmsse")
    )
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat(IDS, H).tolist(),
            "ds": DATES * N_ITEMS,
            "forecast": [2.0] * (N_ITEMS * H),
            "method": ["sba"] * (N_ITEMS * H),
        }
    )
    store = ForecastStore(default_store_url(data_dir))
    try:
        store.migrate()
        meta = RunMeta("0.1.0", {}, date(2026, 1, 1), date(2026, 10, 31), "D", N_ITEMS, 304, H)
        store.write_run(meta, frame, items=items)
        record_actuals(store, actuals_panel(PUMPS), DATES[2])
    finally:
        store.dispose()


def pumps(report: Any) -> dict[str, Any]:
    (row,) = report.states.filter(pl.col("group") == "pumps").to_dicts()
    return row


def test_a_shift_beyond_the_items_noise_alerts(tmp_path: Path) -> None:
    store_run(tmp_path, pump_scale=1.0)  # noise variance 0.5 a day
    report = monitor(settings(), tmp_path, as_of=DATES[2])
    assert report.degraded
    (alert,) = report.alerts
    assert (alert.group, alert.metric) == ("pumps", "rel_bias")
    # 4 items x 3 days, error -4 each: 48 / sqrt(12 x 0.5) = 19.6 standard deviations
    assert pumps(report)["z"] == pytest.approx(48 / np.sqrt(6.0))
    assert "19.6 standard errors of its noise above the expectation" in alert.reason


def test_the_same_shift_within_a_noisy_history_does_not(tmp_path: Path) -> None:
    store_run(tmp_path, pump_scale=400.0)  # noise variance 200 a day: 48 / sqrt(2400) = 0.98
    report = monitor(settings(), tmp_path, as_of=DATES[2])
    state = pumps(report)
    assert state["value"] < -0.6 and state["streak"] == 0
    assert not report.degraded and report.alerts == []
    old = monitor(settings(z=0), tmp_path, as_of=DATES[2])  # the threshold alone
    assert old.degraded and [a.group for a in old.alerts] == ["pumps"]
