"""`sparecast serve` as a real subprocess, queried over HTTP (one worker, and two forked
workers whose metrics add up)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from utils.servers import ServedApp, served

from .conftest import API_KEY_HASH, AUTH, run_json

pytestmark = pytest.mark.slow


def serving(data_dir: Path, *args: str) -> AbstractContextManager[ServedApp]:
    """``sparecast serve``, configured through the environment as in a container; SIGTERM must
    stop it cleanly."""
    env = {"SPARECAST_SERVICE__API_KEY_HASHES": json.dumps([API_KEY_HASH])}
    return served(data_dir, *args, env=env, capture=True, clean_stop=True)


def test_serve_one_worker(data_dir: Path) -> None:
    with serving(data_dir) as app:
        base = app.base
        health = httpx.get(f"{base}/health", headers=AUTH).json()
        assert health["model_version"] == run_json(data_dir)["store"]["model_version"]
        r = httpx.get(f"{base}/forecast/item/P000007", params={"horizon": 4})
        assert r.status_code == 200
        assert len(r.json()["forecast"]) == 4
        # a duration in the run's periods (days): 2w = 14, over HTTP as in the container
        weeks = httpx.get(f"{base}/forecast/item/P000007", params={"horizon": "2w"})
        assert weeks.status_code == 200 and len(weeks.json()["forecast"]) == 14
        body = {"item_ids": ["P000007"], "horizon": "1w"}
        one_week = httpx.post(f"{base}/forecast/items", json=body, headers=AUTH)
        assert one_week.status_code == 200 and len(one_week.json()["items"][0]["dates"]) == 7
        garbage = httpx.get(f"{base}/forecast/item/P000007", params={"horizon": "soon"})
        assert garbage.status_code == 422
        assert "duration like 90d, 13w, 6mo" in garbage.json()["detail"][0]["msg"]
        batch = httpx.post(
            f"{base}/forecast/items", json={"item_ids": ["P000007", "P000008"]}, headers=AUTH
        )
        assert batch.status_code == 200
        assert [i["item_id"] for i in batch.json()["items"]] == ["P000007", "P000008"]
        assert httpx.post(f"{base}/forecast/items", json={"item_ids": ["P1"]}).status_code == 401


def test_serve_two_workers_share_the_port_and_the_metrics(data_dir: Path) -> None:
    with serving(data_dir, "--workers", "2") as app:
        base = app.base
        n = 40
        with httpx.Client(base_url=base) as client:
            for i in range(n):
                # new connections: the kernel spreads them over both workers
                r = httpx.get(f"{base}/forecast/item/P0000{10 + i % 5}")
                assert r.status_code == 200
            text = client.get("/metrics").text
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        route = 'method="GET",route="/forecast/item/{item_id:path}",status="200"'
        assert samples[f"sparecast_http_request_duration_seconds_count{{{route}}}"] == n
        hits = samples['sparecast_cache_requests_total{result="hit"}']
        misses = samples['sparecast_cache_requests_total{result="miss"}']
        assert hits + misses == n
        assert 5 <= misses <= 10  # 5 items, each a miss once per worker's own LRU


def test_serve_names_a_missing_data_directory(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sparecast.cli import app

    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"data directory {tmp_path / 'nope'} does not exist" in result.output
    assert "sparecast demo --output" in result.output
