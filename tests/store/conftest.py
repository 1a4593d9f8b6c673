"""Fixtures of the store tests: a migrated scratch PostgreSQL database per test session (the
root conftest drops it at the end), SQLite files in tmp_path, fresh empty databases, our own
PostgreSQL server.

Servers that cannot be reached skip the test, except under CI=true where they fail it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from utils.servers import (
    PgDatabases,
    PostgresProcess,
    unreachable,
)

from sparecast.store import ForecastStore
from sparecast.store.schema import metadata


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


@pytest.fixture
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresProcess]:
    """Our own PostgreSQL server (stopped and removed at the end)."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        unreachable("PostgreSQL binaries initdb/pg_ctl not found: cannot run our own server")
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
        unreachable(f"cannot start our own PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        try:
            server.stop()
        except (OSError, subprocess.SubprocessError):
            pass
