"""Shared fixtures: scratch databases on the real servers (skipped when unreachable, except under
CI=true where an unreachable server is a failure), our own redis-server, a free TCP port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from utils.servers import (
    MARIADB_SERVER_URL,
    PgDatabases,
    RedisProcess,
    free_port,
    running_redis,
    unreachable,
)

from sparecast.data.demo import generate_demo_erp


@pytest.fixture(scope="session")
def erp_tables() -> dict[str, pl.DataFrame]:
    """A small demo ERP (80 items, 200 days to 2026-10-31, seed 5), shared by the plan tests;
    tests must not modify the frames."""
    return generate_demo_erp(n_items=80, n_days=200, seed=5, end_date=date(2026, 10, 31))


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """URL of a fresh scratch database ``sparecast_test_<random>`` on the local MariaDB,
    dropped after the test."""
    sa = pytest.importorskip("sqlalchemy")
    name = f"sparecast_test_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(f"{MARIADB_SERVER_URL}/", connect_args={"connect_timeout": 5})
    try:
        with server.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not reachable"
        server.dispose()
        orig = getattr(exc, "orig", None) or exc
        unreachable(f"MariaDB not reachable at 127.0.0.1:3306: {orig}")
    try:
        yield f"{MARIADB_SERVER_URL}/{name}"
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


@pytest.fixture
def unused_port() -> int:
    """A TCP port nothing listens on (just freed)."""
    return free_port()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """Scratch databases on the local PostgreSQL, created on demand, dropped after the session."""
    dbs = PgDatabases()
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of our own (stopped at the end), so stopping it disturbs nobody."""
    with running_redis(tmp_path) as server:
        yield server
