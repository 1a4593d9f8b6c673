"""Helpers of the fault tests: a small demo ERP, the CLI as a real subprocess (so that it can
be killed), snapshots of an output directory and the check that it holds one complete run."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from utils.servers import cli_command, cli_env

from sparecast.config import Settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import write_tables
from sparecast.pipeline.staging import STAGING_PREFIX, recover_output_dir
from sparecast.store import ForecastStore
from sparecast.store.history import default_store_url

API_KEY = "faults-key-51c2"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
AUTH = {"X-API-Key": API_KEY}

METHODS = "naive,ma,sba,tsb"
"""Quick methods: the fault tests are about files and the store, not accuracy."""


@pytest.fixture(scope="session")
def small_erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo ERP of 200 items x 120 days in a SQLite file, made once."""
    path = tmp_path_factory.mktemp("erp") / "erp.sqlite"
    tables = generate_demo_erp(n_items=200, n_days=120, seed=0, end_date=date(2026, 10, 31))
    write_tables(tables, f"sqlite:///{path}")
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end; its exit code, stdout and stderr."""
    return subprocess.run(
        cli_command(*args), env=env or cli_env(), capture_output=True, text=True, timeout=timeout
    )


def snapshot(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` (relative path -> digest)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def readable_results(directory: Path) -> dict:
    """Every Parquet file of ``directory`` reads and run.json parses (what a reader sees at any
    moment); run.json's content."""
    for path in directory.glob("*.parquet"):
        pl.read_parquet(path)
    return json.loads((directory / "run.json").read_text())


def assert_one_complete_run(
    directory: Path, *, plan: bool, settings: Settings | None = None
) -> dict:
    """After the recovery every command starts with: no staging folder is left, the files are
    readable, run.json names the store's latest run and (for a plan directory) the policy is
    there. Returns run.json."""
    settings = settings or Settings()
    recover_output_dir(directory, settings)
    assert not list(directory.glob(f"{STAGING_PREFIX}*"))
    run = readable_results(directory)
    for name, path in run["outputs"].items():
        assert (directory / Path(path).name).is_file(), name
    store = ForecastStore(settings.store.url or default_store_url(directory))
    try:
        latest = store.latest_run()
    finally:
        store.dispose()
    assert latest is not None
    assert run["store"]["run_id"] == latest.run_id
    assert run["store"]["model_version"] == latest.model_version
    if plan:
        assert run["command"]["name"] == "plan"
        assert (directory / "policy.parquet").is_file()
        pl.read_parquet(directory / "policy.parquet")
    return run


@pytest.fixture(scope="session")
def planned_template(small_erp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output directory holding one complete ``plan`` of the small ERP, made once."""
    out = tmp_path_factory.mktemp("planned") / "out"
    done = run_cli("plan", "-s", str(small_erp), "-o", str(out), "-m", METHODS, "-q")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def planned_dir(planned_template: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of ``planned_template`` for one test (its SQLite store included)."""
    out = tmp_path / "out"
    shutil.copytree(planned_template, out)
    yield out
