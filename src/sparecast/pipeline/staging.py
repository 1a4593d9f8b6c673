"""Atomic runs: every command writes its files into a staging folder inside the output directory
and moves them into place only after it has succeeded.

The order (``Staging``): files are written into ``DIR/.staging-<id>/``; the files are complete
-> ``PREPARED`` (names the run's token, which the store's run row carries); the run is written
into the store (the store's run row is the commit point; with ``store.write_runs`` off the
``COMMITTED`` marker is) -> ``COMMITTED`` (written atomically); every file is moved into place
with ``os.replace`` (run.json last), files of the previous run the new one does not produce are
removed, the folder is deleted. A reader of ``DIR`` sees the old or the new file, never a torn one.

``recover_output_dir`` runs at the start of every command and at service start: it rolls a
committed folder forward, rolls a prepared one forward when the store has its run (the kill hit
between the store commit and the marker) and deletes every other one. Writers hold a shared
``flock`` on ``DIR/.sparecast_staging.lock``; recovery runs only when it gets the lock
exclusively, so it never touches the folder of a command still running.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from sparecast.config import Settings
from sparecast.errors import OutputError, SparecastError
from sparecast.pipeline.progress import Steps, no_steps
from sparecast.pipeline.store_step import store_url_for
from sparecast.store.history import ForecastStore
from sparecast.urls import redact_url

__all__ = [
    "STAGING_PREFIX",
    "LOCK_FILE",
    "Staging",
    "ensure_output_dir",
    "recover_output_dir",
    "write_json_atomic",
]

STAGING_PREFIX = ".staging-"
LOCK_FILE = ".sparecast_staging.lock"
PREPARED = "PREPARED"
COMMITTED = "COMMITTED"
RUN_JSON = "run.json"
_MARKERS = (PREPARED, COMMITTED)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and ``os.replace``: a reader
    (or a kill) sees the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(value, indent=2, default=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _lock(output_dir: Path, mode: int) -> int | None:
    """Open the directory's staging lock and take it in ``mode`` without waiting; the file
    descriptor, or None when another process holds it incompatibly."""
    fd = os.open(output_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def ensure_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` and check it is writable; an OutputError naming it otherwise."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".sparecast_write_test.{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output directory {output_dir}: {exc.strerror or exc}; "
            "give a writable directory with --output"
        ) from None


class Staging:
    """The staging folder of one command writing into ``output_dir``; see the module docstring.

    ``remove``: files of an earlier run to delete at commit when the new run did not produce
    them (e.g. a ``run`` into a plan directory removes the stale plan files)."""

    def __init__(self, output_dir: Path, *, remove: tuple[str, ...] = ()) -> None:
        ensure_output_dir(output_dir)
        self.output_dir = output_dir
        self.remove = remove
        self.token = uuid.uuid4().hex
        fd = None
        try:
            fd = os.open(output_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a recovery holds it
            self._fd: int | None = fd
            self.dir = output_dir / f"{STAGING_PREFIX}{self.token}"
            self.dir.mkdir()
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            raise OutputError(
                f"cannot write to the output directory {output_dir}: {exc.strerror or exc}"
            ) from None

    def prepare(self) -> None:
        """The files are complete in the staging folder: mark it so (before the store write)."""
        write_json_atomic(self.dir / PREPARED, {"token": self.token, "remove": self.remove})

    def commit(self, store: dict[str, Any] | None = None, steps: Steps = no_steps) -> None:
        """The run is in the store (or the store is off): add ``store`` (url, run_id, ...) to
        the staged run.json, write the COMMITTED marker and move the files into place."""
        if store is not None:
            _add_store_entry(self.dir, store)
        _commit_marker(self.dir, self.token, self.remove)
        steps("replace")
        _roll_forward(self.dir, self.output_dir)
        self.close()

    def abort(self) -> None:
        """Delete the staging folder (the command failed): the directory is as it was."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Release the directory's shared lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self._fd is not None:  # not committed: failed (or an exception)
            self.abort()


def _add_store_entry(folder: Path, store: dict[str, Any]) -> None:
    run_json = folder / RUN_JSON
    if run_json.is_file():
        record = json.loads(run_json.read_text())
        record["store"] = store
        write_json_atomic(run_json, record)


def _commit_marker(folder: Path, token: str, remove: list[str] | tuple[str, ...]) -> None:
    """Write the COMMITTED marker: the files the run produced (all in ``folder`` now) and the
    stale files to remove."""
    files = sorted(p.name for p in folder.iterdir() if p.name not in _MARKERS)
    marker = {"token": token, "files": files, "remove": list(remove)}
    write_json_atomic(folder / COMMITTED, marker)


def _roll_forward(folder: Path, output_dir: Path) -> None:
    """Move a committed folder's files into ``output_dir`` (run.json last), remove the stale
    files the marker names and delete the folder. Idempotent: a kill midway is finished by the
    next recovery (a file already moved is not moved again, nor removed as stale)."""
    marker = json.loads((folder / COMMITTED).read_text())
    produced = set(marker["files"])
    for name in sorted(produced):
        if name != RUN_JSON and not name.startswith(".") and (folder / name).exists():
            if (folder / name).is_dir() and (output_dir / name).is_dir():
                shutil.rmtree(output_dir / name)  # a folder of parts replaces the old one
            os.replace(folder / name, output_dir / name)
    for name in marker.get("remove", []):
        if name not in produced and name != RUN_JSON:
            if (output_dir / name).is_dir():
                shutil.rmtree(output_dir / name, ignore_errors=True)
            else:
                (output_dir / name).unlink(missing_ok=True)
    if (folder / RUN_JSON).exists():
        os.replace(folder / RUN_JSON, output_dir / RUN_JSON)
    shutil.rmtree(folder, ignore_errors=True)


def _stored_run(settings: Settings, output_dir: Path, token: str) -> dict[str, Any] | None:
    """The store's run that carries ``token`` (config.store.staging_token) as run.json's
    ``store`` entry; None when it has none. Raises SparecastError when the store is unreachable."""
    url = store_url_for(settings, output_dir)
    store = ForecastStore(url)
    try:
        for run in store.runs(limit=50):
            if (run.config.get("store") or {}).get("staging_token") == token:
                return {
                    "url": redact_url(url),
                    "run_id": run.run_id,
                    "model_version": run.model_version,
                    "seconds": 0.0,
                }
        return None
    finally:
        store.dispose()


def recover_output_dir(output_dir: Path, settings: Settings) -> list[str]:
    """Finish or undo what an interrupted command left in ``output_dir``: roll committed staging
    folders forward, delete uncommitted ones (a prepared one is rolled forward when the store
    has its run). Does nothing while another command writes into the directory. Returns one line
    per folder handled (for the console)."""
    if not output_dir.is_dir():
        return []
    folders = sorted(p for p in output_dir.glob(f"{STAGING_PREFIX}*") if p.is_dir())
    if not folders:
        return []
    try:
        fd = _lock(output_dir, fcntl.LOCK_EX)
    except OSError:
        return []
    if fd is None:  # a command is writing into the directory: its folder is alive
        return []
    done: list[str] = []
    try:
        for folder in folders:
            if (folder / COMMITTED).is_file():
                _roll_forward(folder, output_dir)
                done.append(f"recovered: completed the interrupted run {folder.name}")
                continue
            if (folder / PREPARED).is_file() and settings.store.write_runs:
                prepared = json.loads((folder / PREPARED).read_text())
                token = prepared["token"]
                try:
                    stored = _stored_run(settings, output_dir, token)
                except SparecastError:
                    done.append(f"recovered: kept {folder.name} (the store is unreachable)")
                    continue
                if stored is not None:
                    _add_store_entry(folder, stored)
                    _commit_marker(folder, token, prepared.get("remove", []))
                    _roll_forward(folder, output_dir)
                    done.append(f"recovered: completed the interrupted run {folder.name}")
                    continue
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"recovered: removed the unfinished run {folder.name}")
    finally:
        os.close(fd)
    return done
