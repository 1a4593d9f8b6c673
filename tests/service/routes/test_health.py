"""GET /health over a real demo run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.service.models import HealthOut

from ..conftest import run_json


def test_health_reports_version_freshness_and_dependencies(
    client: TestClient, data_dir: Path
) -> None:
    r = client.get("/health")
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
