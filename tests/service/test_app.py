"""The app factory (service/app.py): routers, OpenAPI schema and its API-key security."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.pipeline.staging import COMMITTED, STAGING_PREFIX, write_json_atomic
from sparecast.service import create_app

from .conftest import API_KEY, AUTH, service_settings


def test_api_key_header_name_is_configurable(data_dir: Path) -> None:
    settings = Settings(**service_settings(api_key_header="X-Planner-Token"))
    with TestClient(create_app(settings, data_dir)) as client:
        body = {"item_ids": ["P000001"]}
        assert client.post("/forecast/items", json=body, headers=AUTH).status_code == 401
        ok = client.post("/forecast/items", json=body, headers={"X-Planner-Token": API_KEY})
        assert ok.status_code == 200
        scheme = client.get("/openapi.json").json()["components"]["securitySchemes"]["ApiKey"]
        assert scheme == {"type": "apiKey", "in": "header", "name": "X-Planner-Token"}


def test_openapi_paths_and_the_api_key_on_the_post_operations(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert sorted(schema["paths"]) == sorted(
        [
            "/forecast/item/{item_id}",
            "/forecast/items",
            "/items/{item_id}/policy",
            "/items/{item_id}/override",
            "/reports/inventory",
            "/health",
            "/retrain",
            "/jobs/{job_id}",
            "/metrics",
        ]
    )
    secured = {
        (path, method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"ApiKey": []}]
    }
    assert secured == {
        ("/forecast/items", "post"),
        ("/retrain", "post"),
        ("/items/{item_id}/override", "put"),
        ("/items/{item_id}/override", "delete"),
    }


@pytest.mark.parametrize(
    ("path", "method", "model"),
    [
        ("/forecast/item/{item_id}", "get", "ItemForecastOut"),
        ("/forecast/items", "post", "ForecastBatchOut"),
        ("/items/{item_id}/policy", "get", "ItemPolicyOut"),
        ("/items/{item_id}/override", "get", "ItemOverrideOut"),
        ("/items/{item_id}/override", "put", "OverrideOut"),
        ("/health", "get", "HealthOut"),
        ("/retrain", "post", "JobOut"),
        ("/jobs/{job_id}", "get", "JobOut"),
    ],
)
def test_every_json_answer_is_documented_by_its_model(
    client: TestClient, path: str, method: str, model: str
) -> None:
    """Raw-bytes routes declare their model for the schema as the validated ones do."""
    operation = client.get("/openapi.json").json()["paths"][path][method]
    success = next(v for k, v in operation["responses"].items() if k.startswith("2"))
    schema = success["content"]["application/json"]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{model}"}


def test_start_finishes_a_commit_a_killed_command_left_behind(data_dir: Path) -> None:
    """A command killed after its commit point left a committed staging folder: the app's start
    rolls it forward, so the directory serves the committed results."""
    policy = data_dir / "policy.parquet"
    assert policy.exists()
    folder = data_dir / f"{STAGING_PREFIX}killed"
    folder.mkdir()
    (folder / "inventory_report.html").write_text("<p>new report</p>")
    marker = {"token": "killed", "files": ["inventory_report.html"], "remove": []}
    write_json_atomic(folder / COMMITTED, marker)
    settings = Settings(**service_settings())
    with TestClient(create_app(settings, data_dir)) as client:
        assert not folder.exists()
        assert (data_dir / "inventory_report.html").read_text() == "<p>new report</p>"
        assert client.get("/reports/inventory").text == "<p>new report</p>"


def test_a_running_service_finishes_a_commit_left_behind(data_dir: Path) -> None:
    """Killed while moving its files (after its commit point), a command left a committed
    staging folder: the running service completes it at its next refresh, not only at a
    restart."""
    settings = Settings(**service_settings(version_refresh_s=0.2))
    with TestClient(create_app(settings, data_dir)) as client:
        folder = data_dir / f"{STAGING_PREFIX}killed"
        folder.mkdir()
        (folder / "inventory_report.html").write_text("<p>newer report</p>")
        marker = {"token": "killed", "files": ["inventory_report.html"], "remove": []}
        write_json_atomic(folder / COMMITTED, marker)
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not folder.exists()
        assert client.get("/reports/inventory").text == "<p>newer report</p>"
