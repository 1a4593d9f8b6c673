"""The database behind the forecast store: the SQLAlchemy engine for SQLite (embedded default)
or PostgreSQL (production, psycopg 3), connections whose driver errors become ``StoreError`` or
``StoreUnavailable`` with the URL redacted, and the Alembic schema migrations."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from sparecast.errors import StoreError, StoreUnavailable
from sparecast.urls import redact_url

__all__ = ["MIGRATIONS_DIR", "StoreEngine", "alembic_config"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATE_LOCK = 7_305_118_201  # pg_advisory_xact_lock key of migrate()


def alembic_config() -> Any:
    """The Alembic configuration of the store's migrations (``MIGRATIONS_DIR``).

    Alembic is imported here, not at the top: it takes about 0.1 s and only migrations need it."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


class StoreEngine:
    """One database (``url``: SQLAlchemy URL, SQLite or PostgreSQL) with pooled connections.

    ``read``/``write`` hand out connections whose errors are translated: a database that cannot
    be reached raises ``StoreUnavailable``, anything else ``StoreError``, both naming the
    redacted URL and what was being done."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 3.0,
        statement_timeout_s: float | None = None,
        echo: bool = False,
    ) -> None:
        if url.startswith(("postgresql://", "postgres://")):  # the driver sparecast ships
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = url
        self.backend = sa.make_url(url).get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"store.url {redact_url(url)}: unsupported database {self.backend!r}; use "
                "sqlite:///path/history.sqlite or postgresql+psycopg://user@host:5432/db"
            )
        if self.backend == "postgresql" and sa.make_url(url).get_driver_name() != "psycopg":
            raise StoreError(
                f"store.url {redact_url(url)}: use the psycopg 3 driver, postgresql+psycopg://..."
            )
        if self.backend == "sqlite":
            database = sa.make_url(url).database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                url, echo=echo, connect_args={"timeout": max(connect_timeout_s, 30.0)}
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = sa.create_engine(
                url,
                echo=echo,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                connect_args=_pg_connect_args(connect_timeout_s, statement_timeout_s),
            )
        # the DBAPI connection each thread has checked out now, so abort() can break it
        self._checked_out: dict[int, Any] = {}
        self._lock = threading.Lock()
        event.listen(self.engine, "checkout", self._on_checkout)
        event.listen(self.engine, "checkin", self._on_checkin)
        # the pool's pre-ping runs before the checkout event and blocks as long as a query on a
        # frozen database: register the connection it pings too
        ping = self.engine.dialect.do_ping

        def registered_ping(dbapi_connection: Any) -> bool:
            self._on_checkout(dbapi_connection, None, None)
            return bool(ping(dbapi_connection))

        self.engine.dialect.do_ping = registered_ping  # type: ignore[method-assign]

    def _on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        with self._lock:
            self._checked_out[threading.get_ident()] = dbapi_connection

    def _on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        with self._lock:
            for thread, conn in list(self._checked_out.items()):
                if conn is dbapi_connection:
                    del self._checked_out[thread]

    def abort(self, thread_id: int) -> bool:
        """Break the connection thread ``thread_id`` is using (from any thread), so a call
        blocked on a frozen database returns with an error now and its connection is
        discarded, not pooled: PostgreSQL's socket is shut down (the driver then reports the
        connection lost and the pool invalidates it), SQLite's statement is interrupted.
        False when the thread holds no connection."""
        with self._lock:
            conn = self._checked_out.get(thread_id)
        if conn is None:
            return False
        if self.backend == "sqlite":
            conn.interrupt()
            return True
        try:
            fd = conn.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # noqa: BLE001 - already closed: nothing to break
            return False
        return True

    def __repr__(self) -> str:
        return f"StoreEngine({redact_url(self.url)!r})"

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # ---------------------------------------------------------------- errors and connections

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Driver and pool errors raised inside the block as StoreError/StoreUnavailable."""
        try:
            yield
        except exc.DBAPIError as error:
            raise self._translate(error, action) from error
        except exc.TimeoutError as error:  # every pooled connection busy for pool_timeout
            raise StoreUnavailable(
                f"forecast store {redact_url(self.url)}: no free database connection while "
                f"{action} ({error}); the database is overloaded or connections leak"
            ) from error

    def _translate(self, error: exc.DBAPIError, action: str) -> StoreError:
        """The store error a driver error means: no schema, an unknown schema, unreachable
        (StoreUnavailable) or a plain failure."""
        where = f"forecast store {redact_url(self.url)}"
        message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        if "no such table" in message or "does not exist" in message and "relation" in message:
            return StoreError(
                f"{where} has no schema ({message}) while {action}; run a pipeline into it or "
                "`sparecast store migrate` (ForecastStore.migrate())"
            )
        if "no such column" in message or "does not exist" in message and "column" in message:
            return StoreError(
                f"{where} has a schema this sparecast does not know ({message}) while {action}; "
                "run `sparecast store migrate`, or use a new store file"
            )
        unavailable = error.connection_invalidated or isinstance(
            error, exc.OperationalError | exc.InterfaceError
        )
        if self.backend == "sqlite" and isinstance(error, exc.OperationalError):
            # SQLite reports SQL errors as OperationalError too: only these mean "can't use it"
            unavailable = any(
                s in message for s in ("unable to open", "locked", "disk I/O", "readonly", "busy")
            )
        if unavailable:
            return StoreUnavailable(
                f"{where} is unreachable while {action}: {message}; check that the database "
                "server is running (store.url)"
            )
        return StoreError(f"{where} failed while {action}: {message}")

    @contextmanager
    def write(self, action: str) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        with self.errors(action):
            with self.engine.connect() as conn:
                conn = conn.execution_options(sparecast_write=True)
                with conn.begin():
                    yield conn

    @contextmanager
    def read(self, action: str) -> Iterator[Connection]:
        """A connection for reading, errors translated (``action`` names what failed)."""
        with self.errors(action):
            with self.engine.connect() as conn:
                yield conn

    # ----------------------------------------------------------------------------- schema

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (alembic upgrade head).

        Idempotent; concurrent callers are serialised (PostgreSQL advisory lock, SQLite
        write lock), so every worker of a service may call it at start."""
        from alembic import command

        cfg = alembic_config()
        with self.write("migrating the schema") as conn:
            if self.backend == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_LOCK}
                )
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        """The migration the database is at (None: no schema)."""
        from alembic.runtime.migration import MigrationContext

        with self.read("reading the schema revision") as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def is_migrated(self) -> bool:
        """True when the schema is at the newest migration."""
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        return self.schema_revision() == head

    def ping(self) -> bool:
        """True when the database answers ``SELECT 1``; never raises."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not available"
            return False


def _pg_connect_args(connect_timeout_s: float, statement_timeout_s: float | None) -> dict[str, Any]:
    """libpq options of every PostgreSQL connection: the connect timeout, TCP keepalives (a
    dead peer is noticed in about 20 s, not hours) and the server-side statement_timeout."""
    args: dict[str, Any] = {
        "connect_timeout": max(1, int(round(connect_timeout_s))),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 2,
    }
    if statement_timeout_s is not None:
        args["options"] = f"-c statement_timeout={max(1, int(statement_timeout_s * 1000))}"
    return args


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    """Every new SQLite connection: autocommit driver mode, WAL journal, foreign keys on."""
    # Transactions are issued by _sqlite_on_begin (pysqlite's implicit BEGIN skips DDL).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. Switching a new file to WAL needs a moment with
    # no other transaction (the busy handler does not cover it): retry while others migrate.
    deadline = time.monotonic() + 30.0
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE for write transactions (writers queue), plain BEGIN for reads."""
    immediate = conn.get_execution_options().get("sparecast_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
