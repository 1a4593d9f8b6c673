"""The monitor step on a hand-built store (tests/utils/monitoring.py): hand-checked scores, a
champion made to degrade (one category's actuals 3x the forecast level) raising exactly one
alert after k periods, a healthy one raising none, idempotent reruns, recovery, the webhook
against a real local HTTP receiver, record_actuals, and the run_items a real run stores."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner
from utils.monitoring import DATES, PUMPS, actuals_panel, write_hand_run

from sparecast.cli import app
from sparecast.config import Settings, load_settings
from sparecast.data.panel import DemandPanel
from sparecast.errors import StoreError
from sparecast.pipeline.monitor import monitor, record_actuals, send_webhook
from sparecast.store import ForecastStore, default_store_url

runner = CliRunner()


def settings(**monitoring: Any) -> Settings:
    """k = 3 periods, threshold 1.0 (twice the expectation), groups of 2 items and more."""
    values = {"threshold": 1.0, "consecutive_periods": 3, "min_items": 2, **monitoring}
    return load_settings(monitoring=values)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = ForecastStore(default_store_url(tmp_path))
    write_hand_run(store)
    store.dispose()
    return tmp_path


def load(data_dir: Path, degraded: tuple[str, ...] | list[str], as_of: date) -> None:
    store = ForecastStore(default_store_url(data_dir))
    try:
        record_actuals(store, actuals_panel(degraded), as_of)
    finally:
        store.dispose()


class Receiver:
    """A real HTTP server on 127.0.0.1 (a thread) that records the JSON bodies POSTed to it
    and answers ``status`` (a list: one per request, the last one repeated)."""

    def __init__(self, statuses: list[int]) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses = statuses
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                code = outer.statuses[min(len(outer.bodies), len(outer.statuses)) - 1]
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver([200]) as r:
        yield r


def test_scores_by_hand(data_dir: Path) -> None:
    load(data_dir, PUMPS, DATES[1])  # two days of actuals
    report = monitor(settings(), data_dir, as_of=DATES[1])
    assert report.periods_scored == 2 and not report.degraded and report.alerts == []
    assert report.expectation.startswith("backtest of each item's served method")
    rows = {(r["period"], r["grouping"], r["group"]): r for r in report.scores.to_dicts()}
    pumps = rows[2, "category", "pumps"]
    assert pumps["n_items"] == 4 and pumps["mae"] == pytest.approx(4.0)
    assert pumps["mase"] == pytest.approx(4.0) and pumps["rmsse"] == pytest.approx(4.0)
    assert pumps["rel_bias"] == pytest.approx((2 - 6) / 6)
    assert pumps["mape"] == pytest.approx(4 / 6)  # its regular items i00, i02
    assert pumps["expected_mase"] == pytest.approx(1.0)
    every = rows[2, "all", "all"]
    assert every["n_items"] == 16 and every["mae"] == pytest.approx((4 * 4 + 12 * 1) / 16)
    # healthy items: errors +1, -1 (no bias); pumps -4 twice each: -32 over actuals 48 + 48
    assert every["rel_bias"] == pytest.approx(-32 / 96)
    # day 1: regular pumps (2 items) APE 4/6, healthy regular (6 items) |2-1|/1 = 1
    assert rows[1, "all", "all"]["mape"] == pytest.approx((2 * 4 / 6 + 6 * 1.0) / 8)
    # tier regular mixes 2 pumps with 6 healthy items: 1.75 < 1 x (1 + 1.0): not degraded
    assert rows[2, "tier", "regular"]["mase"] == pytest.approx((2 * 4 + 6 * 1) / 8)


def test_a_healthy_champion_raises_nothing(data_dir: Path, receiver: Receiver) -> None:
    load(data_dir, [], DATES[-1])
    report = monitor(settings(webhook_url=receiver.url), data_dir, as_of=DATES[-1])
    assert report.periods_scored == 6 and not report.degraded
    assert report.alerts == [] and report.closed == [] and report.webhook is None
    assert "within the backtest expectation" in report.reason
    assert receiver.bodies == []


def test_a_degraded_champion_raises_one_alert_after_k_periods(
    data_dir: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # a rolling window of one period: a single healthy day ends the degradation
    cfg = settings(webhook_url=receiver.url, window=1)
    load(data_dir, PUMPS, DATES[1])
    early = monitor(cfg, data_dir, as_of=DATES[1])
    assert not early.degraded  # 2 degraded periods < k = 3
    assert early.states.filter(pl.col("group") == "pumps")["streak"].to_list() == [2]
    load(data_dir, PUMPS, DATES[2])
    with caplog.at_level(logging.WARNING, logger="sparecast.monitor"):
        report = monitor(cfg, data_dir, as_of=DATES[2])
    assert report.degraded
    (alert,) = report.alerts
    assert (alert.grouping, alert.group, alert.metric) == ("category", "pumps", "mase")
    assert alert.new and alert.status == "open" and alert.periods == 3
    assert alert.value == pytest.approx(4.0) and alert.expected == pytest.approx(1.0)
    assert alert.reason.startswith("mase of category pumps is 4, worse than the backtest")
    assert "expectation: 1 x (1 + 1) = 2 for 3 consecutive" in alert.reason
    assert "3 consecutive period(s) up to 2026-11-03 (4 items)" in alert.reason
    assert alert.reason in report.reason and report.model_version in report.reason
    assert any(
        "accuracy alert opened" in r.message and "pumps" in r.message for r in caplog.records
    )
    # the webhook: one JSON POST received by the local server
    assert report.webhook == "sent (HTTP 200)"
    (body,) = receiver.bodies
    assert body["event"] == "sparecast.accuracy_alerts" and body["degraded"] is True
    assert body["model_version"] == report.model_version
    assert [(a["grouping"], a["group"]) for a in body["opened"]] == [("category", "pumps")]
    # a rerun with the same actuals: the same alert, refreshed; no new one, no second POST
    again = monitor(cfg, data_dir, as_of=DATES[2])
    assert [a.alert_id for a in again.alerts] == [alert.alert_id] and not again.alerts[0].new
    assert again.webhook is None and len(receiver.bodies) == 1
    # the group recovers: the alert closes, the model is not degraded any more
    store = ForecastStore(default_store_url(data_dir))
    record_actuals(store, actuals_panel([]), DATES[3], since=DATES[3])
    store.dispose()
    healed = monitor(cfg, data_dir, as_of=DATES[3])
    assert not healed.degraded and healed.alerts == []
    assert [a.alert_id for a in healed.closed] == [alert.alert_id]
    assert healed.closed[0].reason.startswith("recovered: mase of category pumps")
    assert [b["closed"][0]["alert_id"] for b in receiver.bodies[1:]] == [alert.alert_id]


def test_a_failing_webhook_is_retried_and_never_fatal(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver([500, 200]) as flaky:
        url = flaky.url
        assert send_webhook(url, {"x": 1}, timeout_s=2, retries=2, backoff_s=0.01) == (
            "sent (HTTP 200)"
        )
        assert flaky.bodies == [{"x": 1}, {"x": 1}]
    # the receiver is gone now: every attempt fails, monitoring still reports its alert
    load(data_dir, PUMPS, DATES[2])
    cfg = settings(webhook_url=url, webhook_retries=1, webhook_timeout_s=1)
    with caplog.at_level(logging.WARNING, logger="sparecast.monitor"):
        report = monitor(cfg, data_dir, as_of=DATES[2])
    assert report.degraded and len(report.alerts) == 1
    assert report.webhook is not None and report.webhook.startswith("failed after 2 attempt(s)")
    assert "s3cret" not in caplog.text and "token=***" in caplog.text


def test_alerts_of_a_metric_no_longer_watched_close(data_dir: Path) -> None:
    load(data_dir, PUMPS, DATES[2])
    (alert,) = monitor(settings(), data_dir, as_of=DATES[2]).alerts
    report = monitor(settings(metric="mae", groupings=["tier"]), data_dir, as_of=DATES[2])
    assert [a.alert_id for a in report.closed] == [alert.alert_id]
    assert report.closed[0].reason.startswith("closed: monitoring watches mae now, not mase")
    assert not report.degraded  # tiers mix pumps with healthy items: within 2 x expectation


def test_record_actuals_is_idempotent(data_dir: Path) -> None:
    store = ForecastStore(default_store_url(data_dir))
    try:
        first = record_actuals(store, actuals_panel(), DATES[2])
        assert (first.inserted, first.updated, first.unchanged) == (16 * 3, 0, 0)
        again = record_actuals(store, actuals_panel(), DATES[2])
        assert (again.inserted, again.updated) == (0, 0)
        corrected = record_actuals(store, actuals_panel(["i05"]), DATES[3])
        assert (corrected.inserted, corrected.updated) == (16, 3)  # day 4 new, i05 fixed
        assert store.observed("D").filter(pl.col("unique_id") == "i05")["y"].to_list() == [6.0] * 4
    finally:
        store.dispose()


def test_record_actuals_without_runs_loads_nothing(tmp_path: Path) -> None:
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    try:
        assert record_actuals(store, actuals_panel(), DATES[2]).inserted == 0
    finally:
        store.dispose()


def test_unknown_model_version_and_empty_store(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="model version nope is not in the forecast store"):
        monitor(settings(), data_dir, model_version="nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    report = monitor(settings(), empty, as_of=DATES[0])
    assert not report.degraded and "holds no run" in report.reason


def test_cli_prints_scores_and_alerts(data_dir: Path) -> None:
    load(data_dir, PUMPS, DATES[2])
    config = data_dir / "monitoring.toml"
    config.write_text("[monitoring]\nthreshold = 1.0\nmin_items = 2\n")
    args = ["monitor", "--data", str(data_dir), "--as-of", "2026-11-03", "-c", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Open accuracy alerts" in result.output and "pumps" in result.output
    assert "DEGRADED: model" in result.output
    failing = runner.invoke(app, [*args, "--fail-on-alert"])
    assert failing.exit_code == 1
    bad = runner.invoke(app, ["monitor", "--data", str(data_dir), "--as-of", "3 Nov"])
    assert bad.exit_code != 0 and "is not a date" in bad.output


def store_forecasts(directory: Path) -> pl.DataFrame:
    store = ForecastStore(default_store_url(directory))
    try:
        return store.run_forecasts()
    finally:
        store.dispose()


def test_a_real_run_stores_what_monitoring_needs(tmp_path: Path) -> None:
    """A demo run stores its items' groups, scales and expectations; its forecasts taken as
    actuals raise nothing, three times them raise alerts after k = 3 periods."""
    out = tmp_path / "demo"
    result = runner.invoke(
        app,
        [
            "demo",
            "--output",
            str(out),
            "--items",
            "30",
            "--days",
            "150",
            "--methods",
            "naive,ma,sba,tsb",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    store = ForecastStore(default_store_url(out))
    try:
        run = store.latest_run()
        assert run is not None
        items = store.run_items(run.run_id)
        assert items.height == 30
        assert items["tier"].null_count() == 0 and items["sb_class"].null_count() == 0
        assert items["category"].null_count() == 0
        assert items["expected_mae"].null_count() == 0  # every served method was backtested
        assert items["scale_mase"].null_count() < 30
    finally:
        store.dispose()
    # a level shift is the relative bias's to see: on intermittent items 3x the forecast level
    # stays within the backtest's MASE (the lumps dominate both), far off its bias
    cfg = load_settings(
        monitoring={"metric": "rel_bias", "min_items": 1, "threshold": 0.3, "window": 3}
    )
    report = monitor(cfg, out, as_of=date(2026, 10, 31))
    assert report.periods_scored == 0 and "no forecast period" in report.reason
    # actuals exactly as forecast for 3 days: healthy; then 3 times the forecast for 6 days:
    # every group's bias is -2/3 from the 3rd shifted day on
    assert run.model_version is not None
    forecasts = store_forecasts(out)
    days = sorted(forecasts["ds"].unique().to_list())[:9]
    level = forecasts.filter(pl.col("ds").is_in(days)).sort("unique_id", "ds")
    ids = level["unique_id"].unique(maintain_order=True).to_numpy()
    y = level["forecast"].to_numpy().reshape(len(ids), len(days)).copy()
    y[:, 3:] *= 3.0
    store = ForecastStore(default_store_url(out))
    panel = DemandPanel(y.astype("float32"), ids, np.datetime64(days[0].isoformat()), "D")
    record_actuals(store, panel, days[-1])
    store.dispose()
    healthy = monitor(cfg, out, model_version=run.model_version, as_of=days[2])
    assert healthy.periods_scored == 3 and not healthy.degraded
    shifted = monitor(cfg, out, model_version=run.model_version, as_of=days[8])
    assert shifted.degraded and shifted.alerts
    for alert in shifted.alerts:
        assert alert.value is not None and alert.expected is not None
        # rel_bias of actuals 3x the forecast: (1 - 3) / 3 in every group
        assert alert.value == pytest.approx(-2 / 3) and alert.periods >= 3
        assert abs(alert.value) > abs(alert.expected) + 0.3


@pytest.mark.integration
def test_monitor_on_postgresql(pg_databases: Any, tmp_path: Path) -> None:
    """The same degradation on a fresh PostgreSQL database (store.url): one alert, a rerun
    adds none, the pass is recorded."""
    url = pg_databases.create()
    store = ForecastStore(url)
    try:
        write_hand_run(store)
        first = record_actuals(store, actuals_panel(PUMPS), DATES[2])
        assert first.inserted == 16 * 3
        assert record_actuals(store, actuals_panel(PUMPS), DATES[2]).inserted == 0
        cfg = load_settings(
            store={"url": url},
            monitoring={"threshold": 1.0, "min_items": 2, "consecutive_periods": 3},
        )
        report = monitor(cfg, tmp_path, as_of=DATES[2])
        assert report.degraded and [(a.grouping, a.group) for a in report.alerts] == [
            ("category", "pumps")
        ]
        again = monitor(cfg, tmp_path, as_of=DATES[2])
        assert [a.alert_id for a in again.alerts] == [report.alerts[0].alert_id]
        assert len(store.alerts()) == 1
        last = store.last_monitor_pass()
        assert last is not None and last.degraded and last.model_version == report.model_version
        assert not (tmp_path / "history.sqlite").exists()  # everything went to PostgreSQL
    finally:
        store.dispose()
