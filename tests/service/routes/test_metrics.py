"""GET /metrics: latency per route template, cache hit ratio, forecast age."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from ..conftest import AUTH


def _samples(client: TestClient) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_latency_per_route_template_hit_ratio_and_forecast_age(
    client: TestClient,
) -> None:
    before = _samples(client)
    assert before["sparecast_cache_hit_ratio"] != before["sparecast_cache_hit_ratio"]  # NaN
    client.get("/forecast/item/P000004")  # miss
    for _ in range(3):
        client.get("/forecast/item/P000004")  # hits (the fast path)
    client.get("/forecast/item/P000005?horizon=2")  # miss
    client.get("/forecast/item/NOPE")  # miss, 404
    m = _samples(client)
    assert m['sparecast_cache_requests_total{result="hit"}'] == 3
    assert m['sparecast_cache_requests_total{result="miss"}'] == 3
    assert m["sparecast_cache_hit_ratio"] == pytest.approx(0.5)
    route = 'method="GET",route="/forecast/item/{item_id:path}"'
    assert m[f'sparecast_http_request_duration_seconds_count{{{route},status="200"}}'] == 5
    assert m[f'sparecast_http_request_duration_seconds_count{{{route},status="404"}}'] == 1
    # item ids never become label values
    assert not any("P000004" in name for name in m)
    age = m["sparecast_forecast_age_seconds"]
    created = client.get("/health", headers=AUTH).json()["freshness"]["run_created_at"]
    expected = time.time() - datetime.fromisoformat(created).timestamp()
    assert age == pytest.approx(expected, abs=2.0)
    assert age > 0
