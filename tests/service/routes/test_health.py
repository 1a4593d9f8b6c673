"""GET and HEAD /health over a real demo run: details only with a valid API key."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.models import HealthOut

from ..conftest import AUTH, run_json, service_settings


def test_health_reports_version_freshness_and_dependencies(
    client: TestClient, data_dir: Path
) -> None:
    r = client.get("/health", headers=AUTH)
    assert r.status_code == 200
    health = HealthOut.model_validate_json(r.content)
    info = run_json(data_dir)
    assert health.status == "ok"
    assert health.model_version == info["store"]["model_version"]
    assert health.run_id == info["store"]["run_id"]
    assert health.freshness.data_window_end == date.fromisoformat(info["data_window"]["end"])
    assert health.freshness.data_window_start == date.fromisoformat(info["data_window"]["start"])
    assert health.freshness.data_age_days == (date.today() - health.freshness.data_window_end).days
    assert health.freshness.run_created_at is not None
    age = (datetime.now(UTC) - health.freshness.run_created_at).total_seconds()
    assert health.freshness.run_age_s == pytest.approx(age, abs=2.0)
    assert health.dependencies["store"].state == "ok"
    assert health.dependencies["store"].kind == "sqlite"
    assert health.dependencies["cache"].state == "ok"
    assert health.dependencies["cache"].kind == "lru"


def test_health_without_a_key_says_only_the_status(client: TestClient) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = client.get("/health", headers=headers)
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}


def test_health_details_name_no_secret_path_or_host(tmp_path: Path, unused_port: int) -> None:
    """An unreachable PostgreSQL store: without a key nothing but the status; with one the
    details, the password redacted."""
    url = f"postgresql+psycopg://scott:tiger-secret@127.0.0.1:{unused_port}/inventory"
    settings = Settings(store={"url": url}, **service_settings(store_timeout_s=5))
    with TestClient(create_app(settings, tmp_path)) as client:
        public = client.get("/health")
        assert public.json() == {"status": "degraded"}
        forecast = client.get("/forecast/item/P1")
        assert forecast.status_code == 503
        for r in (public, forecast):
            for leak in ("scott", "tiger", str(unused_port), "inventory", str(tmp_path)):
                assert leak not in r.text, (leak, r.text)
        detailed = client.get("/health", headers=AUTH).json()
        assert detailed["dependencies"]["store"]["state"] == "down"
        assert "tiger-secret" not in str(detailed)


def test_head_health_answers_the_status_code_without_a_body(client: TestClient) -> None:
    r = client.head("/health")
    assert r.status_code == 200
    assert r.content == b""
