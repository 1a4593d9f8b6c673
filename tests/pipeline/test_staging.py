"""Atomic runs (sparecast.pipeline.staging): files go into a staging folder and into place only
at commit; recovery rolls committed folders forward and deletes the others."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparecast.config import Settings
from sparecast.errors import OutputError
from sparecast.pipeline.staging import (
    COMMITTED,
    LOCK_FILE,
    STAGING_PREFIX,
    Staging,
    recover_output_dir,
    write_json_atomic,
)

OFF = Settings(store={"write_runs": False})


def _old_run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "forecasts.parquet").write_text("old forecasts")
    (out / "policy.parquet").write_text("old policy")
    (out / "run.json").write_text(json.dumps({"run": "old"}))


def test_commit_replaces_files_and_removes_stale_ones(tmp_path: Path) -> None:
    _old_run(tmp_path)
    with Staging(tmp_path, remove=("forecasts.parquet", "policy.parquet", "run.json")) as st:
        (st.dir / "forecasts.parquet").write_text("new forecasts")
        (st.dir / "run.json").write_text(json.dumps({"run": "new"}))
        # nothing visible before the commit
        assert (tmp_path / "forecasts.parquet").read_text() == "old forecasts"
        st.prepare()
        st.commit({"run_id": 7})
    assert (tmp_path / "forecasts.parquet").read_text() == "new forecasts"
    assert not (tmp_path / "policy.parquet").exists()  # stale: the new run has no plan
    assert json.loads((tmp_path / "run.json").read_text()) == {"run": "new", "store": {"run_id": 7}}
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*"))


def test_a_failure_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    _old_run(tmp_path)
    with pytest.raises(RuntimeError), Staging(tmp_path, remove=("policy.parquet",)) as st:
        (st.dir / "forecasts.parquet").write_text("new forecasts")
        raise RuntimeError("boom")
    assert (tmp_path / "forecasts.parquet").read_text() == "old forecasts"
    assert (tmp_path / "policy.parquet").read_text() == "old policy"
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*"))


def _left_behind(out: Path, *, committed: bool) -> Path:
    """A staging folder as a killed command leaves it (nobody holds the lock)."""
    folder = out / f"{STAGING_PREFIX}dead"
    folder.mkdir()
    (folder / "forecasts.parquet").write_text("new forecasts")
    (folder / "run.json").write_text(json.dumps({"run": "new"}))
    if committed:
        marker = {"token": "dead", "files": ["forecasts.parquet", "run.json"]}
        write_json_atomic(folder / COMMITTED, marker | {"remove": ["policy.parquet"]})
    return folder


def test_recovery_rolls_a_committed_folder_forward(tmp_path: Path) -> None:
    _old_run(tmp_path)
    _left_behind(tmp_path, committed=True)
    lines = recover_output_dir(tmp_path, OFF)
    assert lines and "completed" in lines[0]
    assert (tmp_path / "forecasts.parquet").read_text() == "new forecasts"
    assert json.loads((tmp_path / "run.json").read_text()) == {"run": "new"}
    assert not (tmp_path / "policy.parquet").exists()
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*"))


def test_recovery_finishes_a_half_done_roll_forward(tmp_path: Path) -> None:
    """Killed after moving some files: those are not taken for stale ones."""
    _old_run(tmp_path)
    folder = _left_behind(tmp_path, committed=True)
    os.replace(folder / "forecasts.parquet", tmp_path / "forecasts.parquet")
    recover_output_dir(tmp_path, OFF)
    assert (tmp_path / "forecasts.parquet").read_text() == "new forecasts"
    assert json.loads((tmp_path / "run.json").read_text()) == {"run": "new"}


def test_recovery_deletes_an_uncommitted_folder(tmp_path: Path) -> None:
    _old_run(tmp_path)
    _left_behind(tmp_path, committed=False)
    assert "removed" in recover_output_dir(tmp_path, OFF)[0]
    assert (tmp_path / "forecasts.parquet").read_text() == "old forecasts"
    assert (tmp_path / "policy.parquet").read_text() == "old policy"
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*"))


def test_recovery_leaves_a_running_commands_folder_alone(tmp_path: Path) -> None:
    _old_run(tmp_path)
    with Staging(tmp_path) as st:
        (st.dir / "forecasts.parquet").write_text("in progress")
        assert recover_output_dir(tmp_path, OFF) == []
        assert st.dir.is_dir()
        st.commit()
    assert (tmp_path / "forecasts.parquet").read_text() == "in progress"
    assert (tmp_path / LOCK_FILE).exists()


def test_write_json_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_an_output_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write to the output directory"):
        Staging(blocker / "out", remove=()).__enter__()
    assert blocker.read_text() == "x"
