"""Retraining jobs (service/jobs.py): the source they run on, and jobs of a dead server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.errors import SparecastError
from sparecast.service.jobs import retrain_command, retrain_source
from sparecast.service.models import JobOut


def test_retrain_source_defaults_to_the_runs_source(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"source": "sqlite:///x/erp.sqlite"}))
    assert retrain_source(Settings(), tmp_path) == "sqlite:///x/erp.sqlite"
    configured = Settings(service={"retrain_source": "data.parquet"})
    assert retrain_source(configured, tmp_path) == "data.parquet"
    (tmp_path / "run.json").write_text(
        json.dumps({"source": "mysql+pymysql://erp:***@db:3306/erp"})
    )
    with pytest.raises(SparecastError, match="password redacted; set service.retrain_source"):
        retrain_source(Settings(), tmp_path)
    (tmp_path / "run.json").unlink()
    with pytest.raises(SparecastError, match="SPARECAST_SERVICE__RETRAIN_SOURCE"):
        retrain_source(Settings(), tmp_path)


def test_a_job_whose_server_process_died_reads_as_failed(
    client: TestClient, data_dir: Path
) -> None:
    """A job file left 'running' by a killed server (nobody holds the job lock) is reported
    as failed, not running forever."""
    jobs = data_dir / ".sparecast_jobs"
    jobs.mkdir()
    (jobs / "lock").touch()
    job = JobOut(
        job_id="ab" * 16,
        state="running",
        created_at="2026-11-26T08:00:00Z",
        source="x.csv",
    )
    (jobs / f"{job.job_id}.json").write_text(job.model_dump_json())
    seen = client.get(f"/jobs/{job.job_id}").json()
    assert seen["state"] == "failed"
    assert "server process running the job stopped" in seen["error"]


def test_retrain_command_repeats_the_directorys_command(tmp_path: Path) -> None:
    assert retrain_command(tmp_path) == "run"  # no run.json
    for record, expected in (
        ({"command": {"name": "plan", "reuse_forecasts": True}}, "plan"),
        ({"command": {"name": "run"}}, "run"),
        ({"command": {"name": "backtest"}}, "run"),
        ({"plan": {}}, "plan"),  # written before run.json named its command
        ({}, "run"),
    ):
        (tmp_path / "run.json").write_text(json.dumps(record))
        assert retrain_command(tmp_path) == expected, record
