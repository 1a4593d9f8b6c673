"""Accuracy alerts in the API: the open alerts and the last monitoring pass appear in the
authenticated /health detail and as Prometheus gauges, and leave with the alert (the service
re-reads them from the store every ``service.version_refresh_s``)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from utils.monitoring import (
    DATES,
    FVA_DAYS,
    PUMPS,
    actuals_panel,
    write_hand_run,
    write_override_run,
)

from sparecast.config import Settings, load_settings
from sparecast.pipeline.monitor import monitor, record_actuals
from sparecast.service import create_app
from sparecast.service.models import HealthOut
from sparecast.store import ForecastStore, default_store_url

from .conftest import AUTH, service_settings


def _samples(client: TestClient) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _wait_for(check: object, client: TestClient, seconds: float = 5.0) -> HealthOut:
    deadline = time.monotonic() + seconds
    while True:
        health = HealthOut.model_validate_json(client.get("/health", headers=AUTH).content)
        if check(health) or time.monotonic() > deadline:  # type: ignore[operator]
            return health
        time.sleep(0.05)


def test_health_and_metrics_show_the_open_alert(tmp_path: Path) -> None:
    store = ForecastStore(default_store_url(tmp_path))
    write_hand_run(store)
    cfg = load_settings(
        monitoring={"threshold": 1.0, "min_items": 2, "consecutive_periods": 3, "window": 1}
    )
    app = create_app(Settings(**service_settings(version_refresh_s=0.05)), tmp_path)
    with TestClient(app) as client:
        health = _wait_for(lambda h: h.monitoring is not None, client)
        assert health.monitoring is not None and health.monitoring.open_alerts == []
        assert health.monitoring.last_run_at is None and not health.monitoring.degraded
        m = _samples(client)
        assert m["sparecast_accuracy_alerts_open"] == 0
        assert (
            m["sparecast_monitoring_last_run_timestamp_seconds"]
            != m["sparecast_monitoring_last_run_timestamp_seconds"]
        )  # NaN: never ran

        record_actuals(store, actuals_panel(PUMPS), DATES[2])
        report = monitor(cfg, tmp_path, as_of=DATES[2])
        (alert,) = report.alerts
        health = _wait_for(lambda h: h.monitoring and h.monitoring.open_alerts, client)
        assert health.status == "ok"  # accuracy is reported beside the dependencies
        assert health.monitoring is not None and health.monitoring.degraded
        (shown,) = health.monitoring.open_alerts
        assert (shown.alert_id, shown.grouping, shown.group) == (
            alert.alert_id,
            "category",
            "pumps",
        )
        assert shown.reason == alert.reason and shown.periods == 3
        assert health.monitoring.last_model_version == report.model_version
        m = _samples(client)
        assert m["sparecast_accuracy_alerts_open"] == 1
        labels = (  # the exposition sorts the labels
            f'group="pumps",grouping="category",metric="mase",model_version="{report.model_version}"'
        )
        assert m[f"sparecast_accuracy_alert_ratio{{{labels}}}"] == 4.0
        assert m["sparecast_monitoring_last_run_timestamp_seconds"] > time.time() - 60
        # without the key: the status alone, no alert text
        assert client.get("/health").json() == {"status": "ok"}

        record_actuals(store, actuals_panel([]), DATES[3], since=DATES[3])
        assert not monitor(cfg, tmp_path, as_of=DATES[3]).degraded
        health = _wait_for(lambda h: h.monitoring and not h.monitoring.open_alerts, client)
        assert health.monitoring is not None and not health.monitoring.degraded
        assert _samples(client)["sparecast_accuracy_alerts_open"] == 0
    store.dispose()


def test_health_and_metrics_show_the_override_fva(tmp_path: Path) -> None:
    # a's override helped (MAE 1 -> 0), b's hurt (0 -> 2): FVA -0.5 over 2 items x 2 days
    write_override_run(tmp_path)
    app = create_app(Settings(**service_settings(version_refresh_s=0.05)), tmp_path)
    with TestClient(app) as client:
        health = _wait_for(lambda h: h.monitoring is not None, client)
        assert health.monitoring is not None and health.monitoring.override_fva is None
        assert _samples(client)["sparecast_override_fva_items"] == 0

        monitor(load_settings(monitoring={"min_items": 1}), tmp_path, as_of=FVA_DAYS[1])
        health = _wait_for(lambda h: h.monitoring and h.monitoring.override_fva, client)
        assert health.monitoring is not None
        fva = health.monitoring.override_fva
        assert fva is not None and (fva.n_items, fva.n_periods) == (2, 4)
        assert (fva.mae_model, fva.mae_override, fva.mae_fva) == (0.5, 1.0, -0.5)
        assert (fva.share_helped, fva.share_hurt) == (0.5, 0.5)
        m = _samples(client)
        assert m["sparecast_override_fva_mae"] == -0.5
        assert m["sparecast_override_fva_rmsse"] == 0.5  # a alone has a scale: 0.5 -> 0
        assert m["sparecast_override_fva_items"] == 2
