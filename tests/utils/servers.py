"""Servers for the integration tests: where the machine's servers listen, a clear skip when one
cannot be reached (a failure under CI=true, where every integration test must run), our own
redis-server and PostgreSQL processes that a test may stop and start, a TCP proxy that cuts or
freezes connections on demand, and ``sparecast serve`` as a real subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
import sqlalchemy as sa

PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
MARIADB_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
REDIS_URL = "redis://127.0.0.1:6379/0"


def unreachable(message: str) -> NoReturn:
    """Skip the test with ``message`` (why a server is unreachable); under CI=true fail it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration servers are required)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_server() -> sa.Engine:
    """An AUTOCOMMIT engine on the local PostgreSQL's ``postgres`` database, to create and drop
    scratch databases; ``unreachable`` when the server does not answer."""
    server = sa.create_engine(
        f"{PG_SERVER_URL}/postgres",
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with server.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not reachable"
        server.dispose()
        unreachable(f"PostgreSQL not reachable at 127.0.0.1:5432: {getattr(exc, 'orig', exc)}")
    return server


class PgDatabases:
    """Creates uniquely named scratch databases on the local PostgreSQL and drops them all."""

    def __init__(self) -> None:
        self.server = pg_server()
        self.names: list[str] = []
        self.prefix = f"sparecast_store_{uuid.uuid4().hex[:8]}"

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.names)}"
        with self.server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return f"{PG_SERVER_URL}/{name}"

    def drop_all(self) -> None:
        with self.server.connect() as conn:
            for name in self.names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.server.dispose()


class RedisProcess:
    """Our own redis-server (no persistence) on a fixed free port, which a test may stop and
    start at will without disturbing anyone else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisProcess]:
    """A started RedisProcess, stopped on exit; ``unreachable`` when redis-server is not
    installed or does not start."""
    if shutil.which("redis-server") is None:
        unreachable("redis-server is not installed")
    server = RedisProcess(workdir)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unreachable(f"cannot start redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()


class PostgresProcess:
    """A PostgreSQL cluster of our own (initdb in a temp dir, trust auth, fsync off) on a free
    port, which a test may stop and start; the shared server on 5432 is never touched."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.data = workdir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user="postgres")
        self._as_postgres(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._as_postgres(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.workdir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


class TcpProxy:
    """A TCP relay 127.0.0.1:port -> target; ``cut()`` closes the listener and every relayed
    connection (the database looks down: connection refused), ``restore()`` listens again on
    the same port. ``pause()`` stops forwarding while still accepting connections and taking
    data, as a frozen (SIGSTOPped) database server does: TCP is ACKed, nothing answers;
    ``resume()`` forwards again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.flowing = threading.Event()
        self.flowing.set()

    def pause(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while not self.flowing.wait(0.5):
                    pass
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            try:  # wakes the thread blocked in accept(); close() alone would not on Linux
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: ours without SPARECAST_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARECAST_")}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"
    return env | extra


def cli_command(*args: str) -> list[str]:
    """``python -m sparecast.cli ARGS``."""
    return [sys.executable, "-m", "sparecast.cli", *args]


@dataclass
class ServedApp:
    """A running ``sparecast serve``: its base URL and process; ``output`` (stdout and stderr)
    is filled once the server has stopped, when it was captured."""

    base: str
    proc: subprocess.Popen[bytes]
    output: str = ""


@contextmanager
def served(
    data_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    clean_stop: bool = False,
) -> Iterator[ServedApp]:
    """``sparecast serve --data DATA_DIR ARGS`` as a real subprocess on a free port, in
    ``cli_env(**env)``, yielded once /health answers 200 (fails after 90 s); stopped with
    SIGTERM on exit (killed after 30 s). ``capture`` keeps its output in ``ServedApp.output``;
    ``clean_stop`` asserts that SIGTERM stops it cleanly (exit 0 or -SIGTERM)."""
    port = free_port()
    proc = subprocess.Popen(
        cli_command("serve", "--data", str(data_dir), "--port", str(port), *args),
        env=cli_env(**(env or {})),
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
    )
    app = ServedApp(f"http://127.0.0.1:{port}", proc)
    came_up = False
    try:
        came_up = _wait_healthy(app)
        if came_up:
            yield app
    finally:
        _stop(app, clean_stop=clean_stop and came_up)
    if not came_up:
        raise AssertionError(f"sparecast serve did not come up: {app.output}")


def _wait_healthy(app: ServedApp, timeout_s: float = 90) -> bool:
    """Whether /health answers 200 before the process ends or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while app.proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{app.base}/health", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def _stop(app: ServedApp, *, clean_stop: bool) -> None:
    """SIGTERM, then wait up to 30 s (kill after that); keep the output; with ``clean_stop``
    assert a clean stop."""
    app.proc.send_signal(signal.SIGTERM)
    try:
        out, _ = app.proc.communicate(timeout=30)
        stopped = True
    except subprocess.TimeoutExpired:
        app.proc.kill()
        out, _ = app.proc.communicate()
        stopped = False
    app.output = (out or b"").decode(errors="replace")
    if clean_stop:
        assert stopped, "sparecast serve did not stop on SIGTERM"
        # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean stop
        assert app.proc.returncode in (0, -signal.SIGTERM), app.output
