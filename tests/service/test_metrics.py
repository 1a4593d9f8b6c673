"""The service's Prometheus metrics on their own: cache lookup counters and the hit ratio
derived from them, the forecast age, one registry per app, and the latency middleware on a
small Starlette app (route templates as labels, the status of failed requests)."""

from __future__ import annotations

import math
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from sparecast.service.metrics import LatencyMiddleware, ServiceMetrics

LATENCY = "sparecast_http_request_duration_seconds"


def _samples(metrics: ServiceMetrics) -> dict[str, float]:
    """Every sample of the exposition by its name and labels."""
    out = {}
    for line in metrics.exposition().decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_hit_ratio_counts_errors_as_misses() -> None:
    metrics = ServiceMetrics(lambda: None)
    before = _samples(metrics)
    assert math.isnan(before["sparecast_cache_hit_ratio"])  # no lookups yet
    metrics.cache_lookups(hits=3, misses=1)
    metrics.cache_lookups(hits=0, misses=0, errors=2)
    metrics.cache_lookups(hits=2, misses=2)
    m = _samples(metrics)
    assert m['sparecast_cache_requests_total{result="hit"}'] == 5
    assert m['sparecast_cache_requests_total{result="miss"}'] == 3
    assert m['sparecast_cache_requests_total{result="error"}'] == 2
    assert m["sparecast_cache_hit_ratio"] == pytest.approx(5 / (5 + 3 + 2))
    assert not any("_created" in name for name in m)  # *_created series are disabled


def test_forecast_age_is_seconds_since_the_run_or_nan() -> None:
    created: list[float | None] = [None]
    metrics = ServiceMetrics(lambda: created[0])
    assert math.isnan(_samples(metrics)["sparecast_forecast_age_seconds"])
    created[0] = time.time() - 100.0
    assert _samples(metrics)["sparecast_forecast_age_seconds"] == pytest.approx(100.0, abs=1.0)


def test_two_apps_in_one_process_count_apart() -> None:
    a = ServiceMetrics(lambda: None)
    b = ServiceMetrics(lambda: None)
    a.cache_lookups(hits=1, misses=0)
    assert _samples(a)['sparecast_cache_requests_total{result="hit"}'] == 1
    assert _samples(b)['sparecast_cache_requests_total{result="hit"}'] == 0


def _app(metrics: ServiceMetrics) -> Starlette:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["item_id"])

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/boom", boom)])
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


def test_latency_per_route_template_and_status() -> None:
    metrics = ServiceMetrics(lambda: None)
    with TestClient(_app(metrics), raise_server_exceptions=False) as client:
        for uid in ("a1", "b2", "c3"):
            assert client.get(f"/items/{uid}").text == uid
        assert client.get("/nowhere").status_code == 404
        assert client.get("/boom").status_code == 500
    m = _samples(metrics)
    assert m[f'{LATENCY}_count{{method="GET",route="/items/{{item_id}}",status="200"}}'] == 3
    assert m[f'{LATENCY}_count{{method="GET",route="unmatched",status="404"}}'] == 1
    assert m[f'{LATENCY}_count{{method="GET",route="/boom",status="500"}}'] == 1
    assert not any(uid in name for name in m for uid in ("a1", "b2", "c3"))
    # every observation is in the +Inf bucket and took some time
    inf = f'{LATENCY}_bucket{{le="+Inf",method="GET",route="/items/{{item_id}}",status="200"}}'
    assert m[inf] == 3
    assert m[f'{LATENCY}_sum{{method="GET",route="/items/{{item_id}}",status="200"}}'] > 0
