"""Planner overrides with the shared Redis cache and two server processes (two apps on one
store): the writer answers the override at once, the other within its refresh interval, and
no answer cached before the change is served after it."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from utils.servers import RedisProcess

from sparecast.config import Settings
from sparecast.service import create_app

from .conftest import AUTH, service_settings, write_quantile_run

pytestmark = pytest.mark.integration


def test_an_override_write_never_leaves_a_stale_cached_answer(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    write_quantile_run(f"sqlite:///{tmp_path / 'history.sqlite'}")
    settings = Settings(
        store={"cache_url": redis_server.url}, **service_settings(version_refresh_s=0.3)
    )
    with (
        TestClient(create_app(settings, tmp_path)) as writer,
        TestClient(create_app(settings, tmp_path)) as other,
    ):
        before = other.get("/forecast/item/B/2").json()
        assert before["forecast"] == [20.0, 21.0, 22.0, 23.0]
        keys = redis.Redis.from_url(redis_server.url).keys("*B%2F2*")
        assert len(keys) == 1 and not keys[0].decode().endswith(":o1")
        body = {
            "set_by": "alice",
            "reason": "campaign",
            "expires": (date.today() + timedelta(days=7)).isoformat(),
            "forecast_multiplier": 2.0,
        }
        put = writer.put("/items/B/2/override", json=body, headers=AUTH)
        assert put.status_code == 200, put.text
        revision = put.json()["revision"]
        # the writer: at once, although the model's answer is in the shared cache
        assert writer.get("/forecast/item/B/2").json()["forecast"] == [40.0, 42.0, 44.0, 46.0]
        # the other process: within its refresh interval
        deadline = time.monotonic() + 10.0
        while other.get("/forecast/item/B/2").json().get("override") is None:
            assert time.monotonic() < deadline, "the other process never saw the override"
            time.sleep(0.1)
        assert other.get("/forecast/item/B/2").json()["forecast"] == [40.0, 42.0, 44.0, 46.0]
        cached = {k.decode() for k in redis.Redis.from_url(redis_server.url).keys("*B%2F2*")}
        assert any(k.endswith(f":o{revision}") for k in cached)
        deleted = other.delete("/items/B/2/override?by=bob", headers=AUTH)
        assert deleted.status_code == 200
        assert other.get("/forecast/item/B/2").json() == before
        deadline = time.monotonic() + 10.0
        while writer.get("/forecast/item/B/2").json() != before:
            assert time.monotonic() < deadline, "the writer kept the deleted override"
            time.sleep(0.1)
