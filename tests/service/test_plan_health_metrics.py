"""Inventory policy and report endpoints, /health and /metrics over a real demo run."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from sparecast.service.deps import key_matches
from sparecast.service.models import HealthOut, ItemPolicyOut

from .conftest import run_json, write_policy


def test_policy_and_report_without_a_plan_say_how_to_make_one(
    client: TestClient, data_dir: Path
) -> None:
    # `sparecast demo` plans too: remove its plan to see the answer of a directory without one
    (data_dir / "policy.parquet").unlink()
    (data_dir / "inventory_report.html").unlink()
    for path in ("/items/P000001/policy", "/reports/inventory"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["detail"] == (
            f"no inventory plan in {data_dir}; run `sparecast plan` (with --output {data_dir})"
        )


def test_the_demo_plan_is_served_as_written(client: TestClient, data_dir: Path) -> None:
    import math

    import polars as pl

    plan = pl.read_parquet(data_dir / "policy.parquet")
    row = plan.row(0, named=True)
    r = client.get(f"/items/{row['unique_id']}/policy")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(plan.columns)
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):  # JSON has no NaN or inf
            assert body[key] is None, key
        elif isinstance(value, float):
            assert body[key] == pytest.approx(value), key
        elif value is not None and not isinstance(value, str | int | bool):
            assert body[key] == str(value), key
        else:
            assert body[key] == value, key
    report = client.get("/reports/inventory")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert report.text == (data_dir / "inventory_report.html").read_text()


def test_policy_serves_the_plan_row_with_every_column(client: TestClient, data_dir: Path) -> None:
    frame = write_policy(data_dir, ["P000001", "P000002", "P000003"])
    r = client.get("/items/P000003/policy")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(frame.columns)
    assert body == {
        "unique_id": "P000003",
        "safety_stock": 3.0,
        "reorder_point": 5.0,
        "order_up_to": 10.0,
        "on_hand": 2.0,
        "suggested_order": 2.0,
        "stockout_risk": 0.02,
        "service_target": 0.95,
        "lead_time_mean_days": 12.5,
        "supplier_id": "S002",
        "next_order_date": "2026-11-03",
    }
    ItemPolicyOut.model_validate(body)
    missing = client.get("/items/P000009/policy")
    assert missing.status_code == 404
    assert "unknown item 'P000009'" in missing.json()["detail"]
    assert "policy.parquet" in missing.json()["detail"]


def test_a_new_plan_file_is_served_without_restart(client: TestClient, data_dir: Path) -> None:
    write_policy(data_dir, ["P000001"])
    assert client.get("/items/P000002/policy").status_code == 404
    time.sleep(0.01)  # a new mtime even on coarse clocks
    write_policy(data_dir, ["P000001", "P000002"])
    os.utime(data_dir / "policy.parquet")
    assert client.get("/items/P000002/policy").json()["reorder_point"] == 3.0


def test_inventory_report_is_html(client: TestClient, data_dir: Path) -> None:
    html = "<!doctype html><title>Inventory</title><h1>Plan of 30 items</h1>"
    (data_dir / "inventory_report.html").write_text(html)
    r = client.get("/reports/inventory")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == html


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
    created = client.get("/health").json()["freshness"]["run_created_at"]
    expected = time.time() - datetime.fromisoformat(created).timestamp()
    assert age == pytest.approx(expected, abs=2.0)
    assert age > 0


@given(key=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_key_matches_exactly_the_configured_keys(key: str, other: str) -> None:
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    decoy = hashlib.sha256(b"decoy").hexdigest()
    assert key_matches(key, [decoy, digest])
    assert not key_matches(key, [decoy])
    assert not key_matches(key, [])
    assert key_matches(other, [digest]) == (other == key)
