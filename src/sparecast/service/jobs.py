"""Background retraining: ``POST /retrain`` runs the pipeline in a separate process.

The job repeats the command that made the directory (``run.json``'s ``command``): ``plan`` for
a directory made by ``sparecast plan`` or ``demo`` (forecasts, policy and report are rebuilt;
the old ones are served until the new ones replace them), ``run`` otherwise. Like every command
it writes into a staging folder and commits atomically (``sparecast.pipeline.staging``): a
failed or killed job leaves the served results as they were. The app (at start and at each
refresh) runs ``recover_output_dir``, which finishes or undoes what a killed job left.

The pipeline runs in a spawned child process, so its
CPU work never holds the server's event loop or GIL; a watcher thread follows the child and
records the job's state. Jobs are JSON files under ``DIR/.sparecast_jobs/`` and "one job at a
time" is an exclusive ``flock`` on ``DIR/.sparecast_jobs/lock``: both hold across the server's
worker processes, so any worker answers ``GET /jobs/{id}`` and a second ``POST /retrain`` while a
job runs (in any worker) is refused with 409 naming the running job.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sparecast.config import Settings
from sparecast.methods import set_threads
from sparecast.pipeline.plan import recorded_items_file, run_plan
from sparecast.pipeline.staging import RUN_JSON, recover_output_dir
from sparecast.pipeline.steps import run_pipeline
from sparecast.pipeline.store_step import check_not_loop_managed
from sparecast.service.errors import JobConflict, NoRetrainSource
from sparecast.service.models import JobOut
from sparecast.urls import redact_text, redact_url

__all__ = ["JobManager", "retrain_command", "retrain_source"]


def retrain_command(data_dir: Path) -> str:
    """What a retrain of ``data_dir`` runs: ``plan`` when ``run.json`` says the directory was
    made by ``plan`` (or ``demo``, or holds a plan), else ``run``."""
    try:
        record = json.loads((data_dir / RUN_JSON).read_text())
    except (OSError, ValueError):
        return "run"
    command = record.get("command") or {}
    name = command.get("name") if isinstance(command, dict) else command
    if name == "plan" or (name is None and "plan" in record):
        return "plan"
    return "run"


def retrain_source(settings: Settings, data_dir: Path) -> str:
    """The source ``POST /retrain`` runs on: ``service.retrain_source``, else the source recorded
    in ``DIR/run.json`` (unless its password was redacted there)."""
    if settings.service.retrain_source:
        return settings.service.retrain_source
    run_json = data_dir / RUN_JSON
    try:
        source = json.loads(run_json.read_text()).get("source")
    except (OSError, ValueError):
        source = None
    if not source:
        raise NoRetrainSource(
            "no source to retrain on: run.json is missing or names none; set "
            "service.retrain_source (SPARECAST_SERVICE__RETRAIN_SOURCE)"
        )
    if "***" in source:
        raise NoRetrainSource(
            "the source in run.json has its password redacted; set service.retrain_source "
            "to the full URL"
        )
    return str(source)


def _retrain_main(
    source: str, data_dir: str, settings: Settings, conn: Any, command: str = "run"
) -> None:
    """Child process: run ``command`` (``run`` or ``plan``) into ``data_dir`` (which writes the
    run into the store and commits the files atomically), reporting progress and the outcome
    through ``conn``."""
    set_threads(settings.threads)  # a spawned process starts with the default
    try:

        def progress(label: str, done: int, total: int) -> None:
            conn.send(("progress", f"{label} {done}/{total}"))

        def step(name: str) -> None:
            conn.send(("progress", f"step {name}"))

        recover_output_dir(Path(data_dir), settings)  # what an earlier killed job left
        if command == "plan":
            items = recorded_items_file(Path(data_dir))  # planned from a long file + items
            run_plan(
                source, Path(data_dir), settings, progress=progress, steps=step, items_file=items
            )
        else:
            run_pipeline(source, Path(data_dir), settings, progress=progress, steps=step)
        conn.send(("done", None))
    except BaseException as exc:  # noqa: BLE001 - reported to the job, then the child exits
        conn.send(("error", redact_text(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def _now() -> datetime:
    return datetime.now(UTC)


class JobManager:
    """Starts retraining jobs and reports their state; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        current_version: Callable[[], str | None],
        on_finished: Callable[[], tuple[str | None, int | None]],
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.jobs_dir = data_dir / ".sparecast_jobs"
        self.current_version = current_version
        self.on_finished = on_finished
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    # -- persistence ----------------------------------------------------------------------
    def _path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _save(self, job: JobOut) -> None:
        tmp = self.jobs_dir / f".{job.job_id}.{os.getpid()}.tmp"
        tmp.write_text(job.model_dump_json())
        tmp.replace(self._path(job.job_id))

    def get(self, job_id: str) -> JobOut | None:
        """The job's last recorded state, or None for an unknown id."""
        if not job_id or len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
            return None
        try:
            job = JobOut.model_validate_json(self._path(job_id).read_text())
        except (OSError, ValueError):
            return None
        if job.state in ("queued", "running") and not self._lock_held():
            # the server process that ran it is gone (killed, restarted): it never finishes
            return job.model_copy(
                update={
                    "state": "failed",
                    "error": "interrupted: the server process running the job stopped",
                }
            )
        return job

    def _lock_held(self) -> bool:
        """Whether some process (this one included) holds the job lock."""
        try:
            fd = os.open(self.jobs_dir / "lock", os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def _running_job_id(self) -> str | None:
        try:
            return (self.jobs_dir / "running").read_text().strip() or None
        except OSError:
            return None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> JobOut:
        """Start a retraining job; raises JobConflict while one runs, NoRetrainSource when
        there is no source to retrain on, LoopManagedError when the production loop serves
        the directory (challengers go through ``sparecast pipeline run weekly``)."""
        source = retrain_source(self.settings, self.data_dir)
        command = retrain_command(self.data_dir)
        # the production loop serves this directory: a retrain there would not be served
        check_not_loop_managed(self.settings, self.data_dir, command="POST /retrain")
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            lock_fd = os.open(self.jobs_dir / "lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock_fd)
                raise JobConflict(self._running_job_id()) from None
            job = JobOut(
                job_id=uuid.uuid4().hex,
                state="queued",
                created_at=_now(),
                source=redact_url(source),
                command=command,
                model_version_before=self.current_version(),
            )
            try:
                self._save(job)
                (self.jobs_dir / "running").write_text(job.job_id)
                thread = threading.Thread(
                    target=self._watch,
                    args=(job, source, lock_fd),
                    name=f"retrain-{job.job_id[:8]}",
                    daemon=True,
                )
                self._threads[job.job_id] = thread
                thread.start()
            except BaseException:
                os.close(lock_fd)
                raise
            return job

    def _watch(self, job: JobOut, source: str, lock_fd: int) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        error: str | None = None
        done = False
        try:
            proc = ctx.Process(
                target=_retrain_main,
                args=(source, str(self.data_dir), self.settings, child, job.command),
                name=f"sparecast-retrain-{job.job_id[:8]}",
                daemon=True,
            )
            proc.start()
            child.close()
            job = job.model_copy(update={"state": "running", "started_at": _now()})
            self._save(job)
            while True:
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    break
                if kind == "progress":
                    job = job.model_copy(update={"progress": payload})
                    self._save(job)
                elif kind == "done":
                    done = True
                elif kind == "error":
                    error = payload
            proc.join()
            if not done and error is None:
                error = f"the retraining process exited with code {proc.exitcode}"
            update: dict[str, Any] = {"finished_at": _now()}
            if error is None:
                version, run_id = self.on_finished()
                update.update(state="succeeded", model_version=version, run_id=run_id)
            else:
                update.update(state="failed", error=error)
            self._save(job.model_copy(update=update))
        except BaseException as exc:  # noqa: BLE001 - the job must end in a recorded state
            self._save(
                job.model_copy(
                    update={
                        "state": "failed",
                        "finished_at": _now(),
                        "error": redact_text(repr(exc)),
                    }
                )
            )
        finally:
            parent.close()
            (self.jobs_dir / "running").unlink(missing_ok=True)
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for this process's job threads (shutdown, tests)."""
        for thread in list(self._threads.values()):
            thread.join(timeout_s)
