"""Kill fault tests: ``sparecast plan``/``run`` and a retrain are SIGKILLed at every step
boundary (the CLI prints ``step: NAME`` on stderr as it advances) and at timed offsets; an
unreachable store and a wrong MariaDB password fail before the computation. After each, the
directory holds the previous or the new complete results, the store agrees with run.json, no
staging folder survives the next command and a rerun succeeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from utils.servers import (
    MARIADB_SERVER_URL,
    ServedApp,
    cli_command,
    cli_env,
    free_port,
    served,
)

from sparecast.pipeline.staging import STAGING_PREFIX

from .conftest import (
    API_KEY_HASH,
    AUTH,
    METHODS,
    assert_one_complete_run,
    run_cli,
    snapshot,
)

pytestmark = pytest.mark.slow

PLAN_STEPS = (
    "check",
    "load",
    "compute",
    "write",
    "plan",
    "write plan",
    "store",
    "commit",
    "replace",
    "done",
)
"""The step lines of ``sparecast plan`` (``run`` has the same without the plan's two)."""


def _kill_at(args: list[str], *, step: str | None = None, after_s: float | None = None) -> bool:
    """Start the CLI with ``args`` and SIGKILL it when it prints ``step: STEP`` (or after
    ``after_s`` seconds); True when it was killed before it finished."""
    proc = subprocess.Popen(
        cli_command(*args),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    if after_s is not None:
        try:
            proc.wait(timeout=after_s)
            return False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return True
    for line in proc.stderr:
        if line.strip() == f"step: {step}":
            proc.kill()
            break
    proc.wait()
    proc.stderr.close()
    return proc.returncode == -signal.SIGKILL


def test_kill_plan_at_every_step_boundary(planned_dir: Path, small_erp: Path) -> None:
    args = ["plan", "-s", str(small_erp), "-o", str(planned_dir), "-m", METHODS]
    run_ids = {assert_one_complete_run(planned_dir, plan=True)["store"]["run_id"]}
    for step in PLAN_STEPS:
        assert _kill_at(args, step=step), step
        run = assert_one_complete_run(planned_dir, plan=True)
        run_ids.add(run["store"]["run_id"])
    # the kills after the store commit were rolled forward: some new runs are the results now
    assert len(run_ids) > 1
    rerun = run_cli(*args, "-q")
    assert rerun.returncode == 0, rerun.stderr
    assert not list(planned_dir.glob(f"{STAGING_PREFIX}*"))
    assert assert_one_complete_run(planned_dir, plan=True)["store"]["run_id"] > max(run_ids)


def test_kill_run_at_timed_offsets(planned_dir: Path, small_erp: Path) -> None:
    args = ["run", "-s", str(small_erp), "-o", str(planned_dir), "-m", METHODS]
    for offset in (1.0, 4.5):
        _kill_at(args, after_s=offset)
        run = assert_one_complete_run(planned_dir, plan=False)
        # the previous results (a plan, with its policy) or the new run's (no stale plan files)
        assert (planned_dir / "policy.parquet").is_file() == (run["command"]["name"] == "plan")
    plan_again = run_cli("plan", "--reuse-forecasts", "-s", str(small_erp), "-o", str(planned_dir))
    assert plan_again.returncode == 0, plan_again.stderr
    assert assert_one_complete_run(planned_dir, plan=True)["command"]["reuse_forecasts"] is True


def _fails_fast_and_leaves_dir(args: list[str], out: Path, **env: str) -> str:
    before = snapshot(out)
    t0 = time.monotonic()
    done = subprocess.run(
        cli_command(*args), env=cli_env(**env), capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - t0
    assert done.returncode == 2, done.stderr
    assert "step: compute" not in done.stderr  # found before the computation
    assert elapsed < 15, elapsed  # interpreter start included; the check itself takes < 3 s
    assert snapshot(out) == before
    return done.stderr


def test_an_unreachable_store_fails_fast_and_changes_nothing(
    planned_dir: Path, small_erp: Path
) -> None:
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/sparecast"
    args = ["run", "-s", str(small_erp), "-o", str(planned_dir), "-m", METHODS]
    err = _fails_fast_and_leaves_dir(args, planned_dir, SPARECAST_STORE__URL=closed)
    assert "forecast store" in err


def test_a_wrong_mariadb_password_fails_fast_and_changes_nothing(planned_dir: Path) -> None:
    host = MARIADB_SERVER_URL.split("@", 1)[1]
    try:
        with sa.create_engine(MARIADB_SERVER_URL).connect():
            pass
    except Exception:  # noqa: BLE001 - any connection problem: no MariaDB here
        pytest.skip("MariaDB not reachable")
    source = f"mysql+pymysql://root:wrong-password@{host}/mysql"
    args = ["run", "-s", source, "-o", str(planned_dir), "-m", METHODS]
    err = _fails_fast_and_leaves_dir(args, planned_dir)
    assert "wrong-password" not in err


def _retrain_children(pid: int) -> list[int]:
    """The server's spawned retraining processes (not multiprocessing's resource tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                out.append(int(child))
    return out


def _serving(data_dir: Path) -> AbstractContextManager[ServedApp]:
    """``sparecast serve`` on ``data_dir`` as a real subprocess."""
    return served(data_dir, env={"SPARECAST_SERVICE__API_KEY_HASHES": json.dumps([API_KEY_HASH])})


def test_plans_into_a_served_directory_never_show_a_torn_policy(
    planned_dir: Path, small_erp: Path
) -> None:
    item = pl.read_parquet(planned_dir / "policy.parquet")["unique_id"][0]
    args = ["plan", "--reuse-forecasts", "-s", str(small_erp), "-o", str(planned_dir), "-q"]
    statuses: list[int] = []
    with _serving(planned_dir) as app:
        base = app.base
        stop = threading.Event()

        def poll() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                while not stop.is_set():
                    statuses.append(client.get(f"/items/{item}/policy").status_code)
                    statuses.append(client.get("/reports/inventory").status_code)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            done = run_cli(*args)
            assert done.returncode == 0, done.stderr
        finally:
            stop.set()
            poller.join()
    assert len(statuses) > 10
    assert set(statuses) == {200}


def test_kill_a_retrain_keeps_the_plan_served(planned_dir: Path) -> None:
    with _serving(planned_dir) as app:
        base = app.base
        item = pl.read_parquet(planned_dir / "policy.parquet")["unique_id"][0]
        started = httpx.post(f"{base}/retrain", headers=AUTH, timeout=10)
        assert started.status_code == 202, started.text
        assert started.json()["command"] == "plan"
        job = started.json()["job_id"]
        deadline = time.monotonic() + 60
        while True:  # kill the retraining child in the middle of the computation
            state = httpx.get(f"{base}/jobs/{job}", timeout=5).json()
            if state["progress"].startswith(("backtest", "forecast", "step write")):
                break
            assert state["state"] in ("queued", "running"), state
            assert time.monotonic() < deadline
            time.sleep(0.05)
        children = _retrain_children(app.proc.pid)
        assert children
        for child in children:
            os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/jobs/{job}", timeout=5).json()["state"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"{base}/items/{item}/policy", timeout=5).status_code == 200
        assert httpx.get(f"{base}/reports/inventory", timeout=5).status_code == 200
        assert httpx.get(f"{base}/forecast/item/{item}", timeout=5).status_code == 200
        assert_one_complete_run(planned_dir, plan=True)
