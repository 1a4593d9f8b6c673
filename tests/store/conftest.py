"""Fixtures of the store tests: a scratch PostgreSQL database per test session (dropped at the
end), our own redis-server processes on free ports, SQLite files in tmp_path.

Servers that cannot be reached skip the test, except under CI=true where they fail it."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sparecast.store import ForecastStore
from sparecast.store.schema import metadata

PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _unreachable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration servers are required)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    """A TCP port nothing listens on (just freed)."""
    return free_port()


class PgDatabases:
    """Creates uniquely named scratch databases on the local PostgreSQL and drops them all."""

    def __init__(self) -> None:
        self.server = sa.create_engine(
            f"{PG_SERVER_URL}/postgres",
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 3},
        )
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


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    try:
        with dbs.server.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not reachable"
        dbs.server.dispose()
        _unreachable(f"PostgreSQL not reachable at 127.0.0.1:5432: {getattr(exc, 'orig', exc)}")
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="session")
def pg_session_url(pg_databases: PgDatabases) -> str:
    """One migrated scratch database for the whole session (tables emptied before each test)."""
    url = pg_databases.create()
    store = ForecastStore(url)
    store.migrate()
    store.dispose()
    return url


def _empty_tables(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a migrated, empty store: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.sqlite'}"
        store = ForecastStore(url)
        store.migrate()
        store.dispose()
        return url
    url = request.getfixturevalue("pg_session_url")
    _empty_tables(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[ForecastStore]:
    s = ForecastStore(store_url)
    yield s
    s.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database without schema (SQLite file or a new PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    return request.getfixturevalue("pg_databases").create()  # type: ignore[no-any-return]


class RedisProcess:
    """Our own redis-server (no persistence) on a free port, which a test may stop and start."""

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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of our own (stopped at the end), so stopping it disturbs nobody."""
    if shutil.which("redis-server") is None:
        _unreachable("redis-server is not installed")
    server = RedisProcess(tmp_path)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        _unreachable(f"cannot start redis-server: {exc}")
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


@pytest.fixture
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresProcess]:
    """Our own PostgreSQL server (stopped and removed at the end)."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        _unreachable("PostgreSQL binaries initdb/pg_ctl not found: cannot run our own server")
    workdir = tmp_path_factory.mktemp("pg", numbered=True)
    if os.geteuid() == 0:  # the postgres user must be able to reach the directory
        base = tmp_path_factory.getbasetemp().parent  # /tmp/pytest-of-root, pytest's own
        for path in (workdir, *[p for p in workdir.parents if p.is_relative_to(base)]):
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | 0o011)
    server = PostgresProcess(workdir)
    try:
        server.init()
        server.start()
    except (OSError, subprocess.SubprocessError) as exc:
        _unreachable(f"cannot start our own PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        try:
            server.stop()
        except (OSError, subprocess.SubprocessError):
            pass
