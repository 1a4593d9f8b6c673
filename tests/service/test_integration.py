"""The API against the real PostgreSQL and our own redis-server: degradation and recovery
without a restart (Redis stopped and started; PostgreSQL cut off behind a TCP relay)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from utils.servers import RedisProcess, TcpProxy

from sparecast.config import Settings
from sparecast.service import create_app

from .conftest import AUTH, service_settings, write_quantile_run

pytestmark = pytest.mark.integration


def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _cache_counts(client: TestClient) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("sparecast_cache_requests_total{"):
            name, value = line.rsplit(" ", 1)
            out[name.split('"')[1]] = float(value)
    return out


def _app(tmp_path: Path, store_url: str, cache_url: str) -> TestClient:
    settings = Settings(
        store={"url": store_url, "cache_url": cache_url}, **service_settings(version_refresh_s=0.5)
    )
    return TestClient(create_app(settings, tmp_path))


def test_redis_down_answers_from_postgresql_and_recovers(
    tmp_path: Path, pg_url: str, redis_server: RedisProcess
) -> None:
    write_quantile_run(pg_url)
    with _app(tmp_path, pg_url, redis_server.url) as client:
        health = client.get("/health", headers=AUTH).json()
        assert health["status"] == "ok"
        ok = {"state": "ok", "detail": ""}
        assert health["dependencies"]["store"] == {**ok, "kind": "postgresql"}
        assert health["dependencies"]["cache"] == {**ok, "kind": "redis"}
        version = health["model_version"]

        first = client.get("/forecast/item/A-1")
        assert first.status_code == 200
        assert first.json()["forecast"] == [10.0, 11.0, 12.0, 13.0]
        assert client.get("/forecast/item/A-1").content == first.content
        assert _cache_counts(client) == {"hit": 1, "miss": 1, "error": 0}
        keys = redis.Redis.from_url(redis_server.url).keys("*")
        assert len(keys) == 1 and version.encode() in keys[0]  # keys carry the model version

        redis_server.stop()
        during = client.get("/forecast/item/A-1")
        assert during.status_code == 200
        assert during.content == first.content  # from PostgreSQL
        batch = client.post("/forecast/items", json={"item_ids": ["A-1", "C 3"]}, headers=AUTH)
        assert batch.status_code == 200
        assert [i["item_id"] for i in batch.json()["items"]] == ["A-1", "C 3"]
        assert _cache_counts(client)["error"] >= 3
        health = client.get("/health", headers=AUTH).json()
        assert health["status"] == "degraded"
        assert health["dependencies"]["cache"]["state"] == "down"
        assert "answered from the store" in health["dependencies"]["cache"]["detail"]
        assert health["dependencies"]["store"]["state"] == "ok"

        redis_server.start()  # same port, empty: no restart of the service
        _until(lambda: client.get("/health", headers=AUTH).json()["status"] == "ok")
        before = _cache_counts(client)
        assert client.get("/forecast/item/A-1").content == first.content  # miss, cached again
        assert client.get("/forecast/item/A-1").content == first.content  # hit
        after = _cache_counts(client)
        assert (after["miss"] - before["miss"], after["hit"] - before["hit"]) == (1, 1)


def test_postgresql_down_serves_cached_answers_and_503_for_the_rest(
    tmp_path: Path, pg_url: str, pg_proxy: TcpProxy, redis_server: RedisProcess
) -> None:
    write_quantile_run(pg_url)
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_proxy.port}")
    with _app(tmp_path, via_proxy, redis_server.url) as client:
        cached = client.get("/forecast/item/A-1?horizon=2")
        assert cached.status_code == 200
        client.get("/forecast/item/C 3")

        pg_proxy.cut()
        assert client.get("/forecast/item/A-1?horizon=2").content == cached.content
        uncached = client.get("/forecast/item/B/2?horizon=2")
        assert uncached.status_code == 503
        detail = uncached.json()["detail"]
        assert "forecast store is unreachable" in detail
        assert "not cached" in detail and "cached forecasts are still served" in detail
        ok_batch = client.post("/forecast/items", json={"item_ids": ["C 3"]}, headers=AUTH)
        assert ok_batch.status_code == 200
        part = client.post("/forecast/items", json={"item_ids": ["C 3", "B/2"]}, headers=AUTH)
        assert part.status_code == 503
        assert "1 of the 2 items is not cached" in part.json()["detail"]
        health = client.get("/health", headers=AUTH).json()
        assert health["status"] == "degraded"
        assert health["dependencies"]["store"]["state"] == "down"
        assert "uncached ones answer 503" in health["dependencies"]["store"]["detail"]
        assert health["model_version"] is not None  # the last known run is still served

        redis_server.stop()  # both down: /health says so with 503
        down = client.get("/health", headers=AUTH)
        assert down.status_code == 503
        assert down.json()["status"] == "down"
        redis_server.start()

        pg_proxy.restore()  # no restart: the pool reconnects
        _until(lambda: client.get("/forecast/item/B/2?horizon=2").status_code == 200)
        body = client.get("/forecast/item/B/2?horizon=2").json()
        assert body["forecast"] == [20.0, 21.0]
        _until(lambda: client.get("/health", headers=AUTH).json()["status"] == "ok")


def test_a_new_run_in_postgresql_is_served_after_the_refresh(
    tmp_path: Path, pg_url: str, redis_server: RedisProcess
) -> None:
    """Another process (a pipeline, another worker's retraining) writes a run: the service
    serves its version within version_refresh_s, and never the old cached bytes."""
    write_quantile_run(pg_url)
    with _app(tmp_path, pg_url, redis_server.url) as client:
        old = client.get("/forecast/item/A-1").json()
        write_quantile_run(pg_url, config={"test": "second run"})
        _until(lambda: client.get("/forecast/item/A-1").json()["run_id"] == old["run_id"] + 1)
        new = client.get("/forecast/item/A-1").json()
        assert new["model_version"] != old["model_version"]
        assert client.get("/health", headers=AUTH).json()["model_version"] == new["model_version"]


def test_a_demo_run_written_to_postgresql_is_served(
    tmp_path: Path, pg_url: str, redis_server: RedisProcess
) -> None:
    """`sparecast demo` with store.url on PostgreSQL, then the API over that store and Redis:
    what the pipeline wrote is what the API answers."""
    import polars as pl
    from typer.testing import CliRunner

    from sparecast.cli import app as cli_app

    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli_app,
        ["demo", "--output", str(out), "--items", "25", "--days", "120"]
        + ["--methods", "ma,tsb", "--quiet"],
        env={"SPARECAST_STORE__URL": pg_url},
    )
    assert result.exit_code == 0, result.output
    assert not (out / "history.sqlite").exists()
    stored = json.loads((out / "run.json").read_text())["store"]
    expected = pl.read_parquet(out / "forecasts.parquet").filter(pl.col("unique_id") == "P000009")
    with _app(out, pg_url, redis_server.url) as client:
        health = client.get("/health", headers=AUTH).json()
        assert health["model_version"] == stored["model_version"]
        assert health["dependencies"]["store"]["kind"] == "postgresql"
        body = client.get("/forecast/item/P000009").json()
        assert body["model_version"] == stored["model_version"]
        assert body["dates"] == [d.isoformat() for d in expected["ds"].to_list()]
        assert body["forecast"] == pytest.approx(expected["forecast"].to_list(), rel=1e-12)
        ids = [f"P{i:06d}" for i in range(1, 26)]
        batch = client.post("/forecast/items", json={"item_ids": ids}, headers=AUTH)
        assert [i["item_id"] for i in batch.json()["items"]] == ids
