"""Monitoring along the served lineage (tests/utils/monitoring.py's hand-built numbers):
degraded periods count on across a weekly refresh (a new model version of the same
configuration) and afresh after a promotion; no false alert on a no_demand group whose
expectation is ~0; several watched metrics, where a bias shift alerts and MASE does not."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from utils.monitoring import DATES, IDS, N_ITEMS, PUMPS, actuals_panel, item_attributes

from sparecast.config import Settings, load_settings
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError
from sparecast.pipeline.monitor import monitor, record_actuals
from sparecast.store import ForecastStore, RunMeta, default_store_url
from sparecast.store.aliases import CHAMPION


def settings(**monitoring: Any) -> Settings:
    """MASE twice the expectation for 3 periods in a row, groups of 2 items and more."""
    values = {"watch": {"mase": 1.0}, "consecutive_periods": 3, "min_items": 2, **monitoring}
    return load_settings(monitoring=values)


def write_run(store: ForecastStore, first: int, items: pl.DataFrame | None = None) -> str:
    """A run forecasting 2.0 for every item from DATES[first] on (trained on the day before);
    its model version."""
    dates = DATES[first:]
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat(IDS, len(dates)).tolist(),
            "ds": dates * N_ITEMS,
            "forecast": [2.0] * (N_ITEMS * len(dates)),
            "method": ["sba"] * (N_ITEMS * len(dates)),
        }
    )
    end = DATES[first] - timedelta(days=1)
    meta = RunMeta("0.1.0", {}, date(2026, 1, 1), end, "D", N_ITEMS, 304, len(dates))
    run_id = store.write_run(meta, frame, items=item_attributes() if items is None else items)
    run = store.get_run(run_id)
    assert run is not None
    return run.model_version


def load(data_dir: Path, panel: DemandPanel, as_of: date) -> None:
    store = ForecastStore(default_store_url(data_dir))
    try:
        record_actuals(store, panel, as_of, since=DATES[0])
    finally:
        store.dispose()


@pytest.mark.parametrize(("second", "alert"), [("refresh", True), ("promote", False)])
def test_degraded_periods_count_on_across_a_refresh(
    tmp_path: Path, second: str, alert: bool
) -> None:
    """v1 serves days 1-2, v2 (trained on day 2) days 3-4: pumps are degraded all four days.
    Counted per model version, v2 has 2 degraded periods (< k = 3): no alert. A refresh is the
    same configuration: the count goes on (4 periods, an alert); a promotion starts afresh."""
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    v1 = write_run(store, 0)
    store.move_alias(CHAMPION, v1, action="bootstrap", reason="first")
    load(tmp_path, actuals_panel(PUMPS), DATES[1])
    early = monitor(settings(), tmp_path, as_of=DATES[1])
    assert not early.degraded and early.lineage == [v1]
    v2 = write_run(store, 2)
    store.move_alias(CHAMPION, v2, action=second, reason="weekly", expect=v1, check_expected=True)
    store.dispose()
    load(tmp_path, actuals_panel(PUMPS), DATES[3])
    report = monitor(settings(), tmp_path, as_of=DATES[3])
    assert report.model_version == v2 and report.degraded is alert
    pumps = report.states.filter((pl.col("group") == "pumps") & (pl.col("metric") == "mase"))
    if alert:
        assert report.lineage == [v1, v2] and report.periods_scored == 4
        assert pumps["streak"].to_list() == [4]
        (opened,) = report.alerts
        assert (opened.group, opened.metric, opened.model_version) == ("pumps", "mase", v2)
        assert "for 4 consecutive period(s) up to 2026-11-04" in opened.reason
        assert "across 2 refresh(es)" in report.reason
        # each period is scored by the run that served it
        served = report.scores.filter(pl.col("grouping") == "all").sort("period")
        assert served["model_version"].to_list() == [v1, v1, v2, v2]
    else:  # another configuration: its own count, 2 periods so far
        assert report.lineage == [v2] and pumps["streak"].to_list() == [2]
        assert report.alerts == []


def test_an_alert_follows_the_refresh_and_closes_when_another_model_serves(
    tmp_path: Path,
) -> None:
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    v1 = write_run(store, 0)
    store.move_alias(CHAMPION, v1, action="bootstrap", reason="first")
    load(tmp_path, actuals_panel(PUMPS), DATES[2])
    (alert,) = monitor(settings(), tmp_path, as_of=DATES[2]).alerts
    v2 = write_run(store, 3)
    store.move_alias(CHAMPION, v2, action="refresh", reason="weekly")
    load(tmp_path, actuals_panel(PUMPS), DATES[3])
    refreshed = monitor(settings(), tmp_path, as_of=DATES[3])
    (same,) = refreshed.alerts  # the same alert, now naming the refreshed version
    assert same.alert_id == alert.alert_id and same.model_version == v2 and same.periods == 4
    v3 = write_run(store, 4)
    store.move_alias(CHAMPION, v3, action="promote", reason="a better configuration")
    store.dispose()
    moved = monitor(settings(), tmp_path, as_of=DATES[3])
    assert [a.alert_id for a in moved.closed] == [alert.alert_id]
    assert moved.closed[0].reason.startswith(f"closed: model {v2} no longer serves")
    assert not moved.degraded


def _no_demand_items() -> pl.DataFrame:
    """The pumps had no demand before the run: class no_demand, backtest expectation 0."""
    pumps = pl.col("unique_id").is_in(PUMPS)
    zero = [c for c in item_attributes().columns if c.startswith("expected_")]
    return item_attributes().with_columns(
        pl.when(pumps).then(pl.lit("no_demand")).otherwise(pl.col("sb_class")).alias("sb_class"),
        *[pl.when(pumps).then(0.0).otherwise(pl.col(c)).alias(c) for c in zero],
    )


@pytest.mark.parametrize(("exclude", "alert"), [(["no_demand"], False), ([], True)])
def test_no_false_alert_on_a_no_demand_group(
    tmp_path: Path, exclude: list[str], alert: bool
) -> None:
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    write_run(store, 0, _no_demand_items())
    store.dispose()
    load(tmp_path, actuals_panel([]), DATES[3])  # an error of 1 a day, against 0 expected
    cfg = settings(groupings=["class"], exclude_groups=exclude, watch={"mae": 1.0})
    report = monitor(cfg, tmp_path, as_of=DATES[3])
    assert report.degraded is alert
    assert [a.group for a in report.alerts] == (["no_demand"] if alert else [])
    # the group is still scored and shown
    assert "no_demand" in report.scores.filter(pl.col("grouping") == "class")["group"].to_list()


def test_a_bias_shift_alerts_on_rel_bias_where_mase_does_not(tmp_path: Path) -> None:
    """Pumps' demand goes from 1, 3, 1, ... (around the forecast of 2) to 3 every day: the
    absolute error stays 1 (MASE = the expectation, 1) but every error is an under-forecast
    (relative bias -1/3 against 0 expected)."""
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    write_run(store, 0)
    store.dispose()
    y = actuals_panel([]).y.copy()
    y[[IDS.index(u) for u in PUMPS]] = 3.0
    shifted = DemandPanel(y, np.array(IDS), np.datetime64(DATES[0].isoformat()), "D")
    load(tmp_path, shifted, DATES[3])
    mase_only = monitor(settings(), tmp_path, as_of=DATES[3])
    assert not mase_only.degraded
    both = monitor(settings(watch={"mase": 0.5, "rel_bias": 0.3}), tmp_path, as_of=DATES[3])
    assert both.degraded
    (alert,) = both.alerts
    assert (alert.group, alert.metric) == ("pumps", "rel_bias")
    assert alert.value == pytest.approx(-1 / 3) and alert.threshold == 0.3
    assert alert.reason.startswith("rel_bias of category pumps is -0.3333, worse than")
    pumps = both.states.filter(pl.col("group") == "pumps")
    assert dict(zip(pumps["metric"], pumps["alert"], strict=True)) == {
        "mase": False,
        "rel_bias": True,
    }


def test_legacy_metric_and_threshold_keys_mean_one_watched_metric() -> None:
    cfg = load_settings(monitoring={"metric": "mae", "threshold": 0.7}).monitoring
    assert cfg.watch == {"mae": 0.7} and (cfg.metric, cfg.threshold) == ("mae", 0.7)
    default = Settings().monitoring
    assert "rel_bias" in default.watch and default.exclude_groups == ["no_demand"]
    with pytest.raises(ConfigError, match="unknown metric"):
        load_settings(monitoring={"watch": {"wape": 0.5}})


def test_a_rolling_window_spans_the_refreshes(tmp_path: Path) -> None:
    """window = 2: the score of v2's first day (day 3) covers day 2, served by v1; pumps are
    degraded on day 2 only, so with the window day 3 is degraded too (without a window it is
    scored on its own healthy day)."""
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    v1 = write_run(store, 0)
    store.move_alias(CHAMPION, v1, action="bootstrap", reason="first")
    v2 = write_run(store, 2)
    store.move_alias(CHAMPION, v2, action="refresh", reason="weekly")
    store.dispose()
    y = actuals_panel([]).y.copy()
    y[[IDS.index(u) for u in PUMPS], 1] = 12.0  # day 2: error 10 (expected 1)
    load(
        tmp_path, DemandPanel(y, np.array(IDS), np.datetime64(DATES[0].isoformat()), "D"), DATES[2]
    )
    cfg = {"consecutive_periods": 2, "groupings": ["category"]}
    alone = monitor(settings(**cfg), tmp_path, as_of=DATES[2])
    spanning = monitor(settings(window=2, **cfg), tmp_path, as_of=DATES[2])
    pumps = pl.col("group") == "pumps"
    assert alone.states.filter(pumps)["streak"].to_list() == [0]
    assert spanning.states.filter(pumps)["streak"].to_list() == [2] and spanning.degraded
    day3 = spanning.scores.filter(pumps & (pl.col("ds") == DATES[2]))
    assert day3["model_version"].to_list() == [v2]
    assert day3["mae"].to_list() == [pytest.approx((10 + 1) / 2)]  # days 2 and 3
