"""GET /items/{item_id}/policy: the inventory plan row, over a real demo run and a written plan."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from sparecast.service.models import ItemPolicyOut

from ..conftest import write_policy


def test_the_demo_plan_is_served_as_written(client: TestClient, data_dir: Path) -> None:

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
