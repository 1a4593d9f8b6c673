"""POST /retrain and GET /jobs/{id}: a real pipeline run in a background process changes the
served model version; one job at a time; failures end in a recorded state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.models import JobOut

from ..conftest import AUTH, run_json, service_settings

pytestmark = pytest.mark.slow


def _settings(**service: Any) -> Settings:
    # as the demo ran: its history ends on 2026-10-31, the methods of the demo fixture
    return Settings(
        methods=["naive", "ma", "sba", "tsb"],
        data={"today": "2026-10-31"},
        **service_settings(**service),
    )


def _wait(client: TestClient, job_id: str, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    seen = set()
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        seen.add(job["state"])
        if job["state"] in ("succeeded", "failed"):
            job["seen"] = seen
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def test_retrain_runs_the_pipeline_and_changes_the_model_version(data_dir: Path) -> None:
    before = run_json(data_dir)["store"]
    settings = _settings(retrain_source=f"sqlite:///{data_dir / 'erp.sqlite'}")
    with TestClient(create_app(settings, data_dir)) as client:
        assert (
            client.get("/health", headers=AUTH).json()["model_version"] == before["model_version"]
        )
        old = client.get("/forecast/item/P000001").json()
        assert client.post("/retrain").status_code == 401

        r = client.post("/retrain", headers=AUTH)
        assert r.status_code == 202
        job = JobOut.model_validate_json(r.content)
        assert r.headers["location"] == f"/jobs/{job.job_id}"
        assert job.state == "queued"
        assert job.model_version_before == before["model_version"]
        assert job.source == f"sqlite:///{data_dir / 'erp.sqlite'}"
        assert job.command == "plan"  # the demo directory holds a plan: it is kept

        # one job at a time: the second POST names the running job
        second = client.post("/retrain", headers=AUTH)
        assert second.status_code == 409
        assert job.job_id in second.json()["detail"]

        # the event loop is free while the pipeline runs
        t0 = time.perf_counter()
        assert client.get("/forecast/item/P000001").status_code == 200
        assert time.perf_counter() - t0 < 1.0

        done = _wait(client, job.job_id)
        assert done["state"] == "succeeded", done
        assert done["error"] is None
        assert done["model_version"] != before["model_version"]
        assert done["run_id"] == before["run_id"] + 1
        assert done["progress"]  # the pipeline's last progress step
        after = run_json(data_dir)["store"]
        assert done["model_version"] == after["model_version"]
        assert client.get("/health", headers=AUTH).json()["model_version"] == after["model_version"]
        new = client.get("/forecast/item/P000001").json()
        assert new["model_version"] == after["model_version"]
        assert new["run_id"] == after["run_id"]
        assert new["dates"] == old["dates"]  # same data, same window
        # the retrain ran `plan`: the policy and the report are still (newly) there
        assert client.get("/items/P000001/policy").status_code == 200
        assert client.get("/reports/inventory").status_code == 200
        assert run_json(data_dir)["command"]["name"] == "plan"

        # the lock is released: the next job starts (and is left to fail fast below)
        assert not (data_dir / ".sparecast_jobs" / "running").exists()


def test_a_failing_job_records_the_error_and_frees_the_slot(data_dir: Path) -> None:
    settings = _settings(retrain_source=str(data_dir / "no_such_file.csv"))
    with TestClient(create_app(settings, data_dir)) as client:
        r = client.post("/retrain", headers=AUTH)
        assert r.status_code == 202
        done = _wait(client, r.json()["job_id"])
        assert done["state"] == "failed"
        assert "no_such_file.csv" in done["error"]
        assert done["model_version"] is None
        again = client.post("/retrain", headers=AUTH)
        assert again.status_code == 202
        assert _wait(client, again.json()["job_id"])["state"] == "failed"


def test_unknown_job_is_404(client: TestClient) -> None:
    for job_id in ("0" * 32, "not-a-job", "a.b"):
        r = client.get(f"/jobs/{job_id}")
        assert r.status_code == 404
        assert "unknown job" in r.json()["detail"]


def test_retrain_without_a_source_is_409_with_the_fix(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(), tmp_path)) as client:
        r = client.post("/retrain", headers=AUTH)
        assert r.status_code == 409
        assert "service.retrain_source" in r.json()["detail"]
