"""The store's database: URL checks, driver errors translated to StoreError/StoreUnavailable
(URL redacted), SQLite connection settings, schema state (no schema, migrated)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from sparecast.store import ForecastStore, StoreError, StoreUnavailable
from sparecast.store.engine import StoreEngine, alembic_config


def test_store_without_schema_says_so(tmp_path: object) -> None:
    store = ForecastStore(f"sqlite:///{tmp_path}/empty.sqlite")  # type: ignore[str-bytes-safe]
    assert store.ping() and not store.is_migrated() and store.schema_revision() is None
    with pytest.raises(StoreError, match="has no schema .* `sparecast store migrate`"):
        store.latest_run()
    store.migrate()
    assert store.is_migrated() and store.latest_run() is None


def test_bad_urls_are_refused() -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        ForecastStore("mysql+pymysql://root@127.0.0.1/x")
    with pytest.raises(StoreError, match="psycopg 3 driver"):
        ForecastStore("postgresql+pg8000://postgres@127.0.0.1/x")
    plain = ForecastStore("postgresql://postgres@127.0.0.1/x")  # made explicit
    assert plain.url == "postgresql+psycopg://postgres@127.0.0.1/x"


def test_unreachable_postgres_is_unavailable_not_a_crash(unused_port: int) -> None:
    store = ForecastStore(
        f"postgresql+psycopg://postgres:secret@127.0.0.1:{unused_port}/nothing", connect_timeout_s=1
    )
    assert store.ping() is False
    with pytest.raises(
        StoreUnavailable, match=r"unreachable .* check that the database server"
    ) as err:
        store.latest_run()
    assert "secret" not in str(err.value) and "postgres:***@" in str(err.value)


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = StoreEngine(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'h.sqlite'}")
    with db.read("checking pragmas") as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "deep" / "dir").is_dir()
    db.dispose()


def test_a_failed_write_rolls_back(tmp_path: Path) -> None:
    db = StoreEngine(f"sqlite:///{tmp_path / 'h.sqlite'}")
    with db.write("creating a table") as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError):
        with db.write("inserting") as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("boom")
    with db.read("counting") as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    db.dispose()


def test_driver_errors_name_the_store_and_what_failed(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE forecast_runs (id INTEGER PRIMARY KEY)")
    db = StoreEngine(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="schema this sparecast does not know .* while reading"):
        with db.read("reading") as conn:
            conn.exec_driver_sql("SELECT model_version FROM forecast_runs")
    with pytest.raises(StoreError, match=r"failed while parsing: .*syntax error") as err:
        with db.read("parsing") as conn:
            conn.exec_driver_sql("SELEC 1")
    assert not isinstance(err.value, StoreUnavailable)  # an SQL error, not a dead database
    assert str(path) in str(err.value)
    db.dispose()


def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a_dir.sqlite").mkdir()  # a directory where the file should be
    db = StoreEngine(f"sqlite:///{tmp_path / 'a_dir.sqlite'}")
    assert db.ping() is False
    with pytest.raises(StoreUnavailable, match="unable to open"):
        with db.read("reading") as conn:
            conn.execute(sa.text("SELECT 1"))
    db.dispose()


def test_migrate_reaches_the_head_revision(fresh_url: str) -> None:
    from alembic.script import ScriptDirectory

    db = StoreEngine(fresh_url)
    assert db.schema_revision() is None and not db.is_migrated()
    db.migrate()
    db.migrate()  # idempotent
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert db.schema_revision() == head and db.is_migrated()
    db.dispose()


@pytest.mark.integration
def test_postgresql_statement_timeout_cancels_a_long_statement(pg_session_url: str) -> None:
    db = StoreEngine(pg_session_url, statement_timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="statement timeout"):
        with db.read("sleeping") as conn:
            conn.execute(sa.text("SELECT pg_sleep(5)"))
    assert time.monotonic() - t0 < 3
    with db.read("showing") as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "300ms"
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1  # the connection still works
    db.dispose()


def _blocked_call(db: StoreEngine, sql: str) -> tuple[threading.Thread, list[object]]:
    """``sql`` run by a new thread; the list gets its result or error."""
    out: list[object] = []

    def run() -> None:
        try:
            with db.read("waiting") as conn:
                out.append(conn.execute(sa.text(sql)).scalar())
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.integration
def test_abort_breaks_a_blocked_postgresql_call_and_drops_its_connection(
    pg_session_url: str,
) -> None:
    db = StoreEngine(pg_session_url)
    thread, out = _blocked_call(db, "SELECT pg_sleep(30)")
    deadline = time.monotonic() + 5
    while not db.abort(thread.ident or 0):  # until the thread holds its connection
        assert time.monotonic() < deadline
        time.sleep(0.02)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(out[0], StoreUnavailable)
    assert db.engine.pool.checkedout() == 0
    with db.read("after") as conn:  # the pool hands out a working connection
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    assert db.abort(threading.get_ident()) is False  # nothing checked out by this thread
    db.dispose()


def test_abort_interrupts_a_sqlite_statement(tmp_path: Path) -> None:
    db = StoreEngine(f"sqlite:///{tmp_path / 'h.sqlite'}")
    slow = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1000000000) "
        "SELECT count(*) FROM r"
    )
    thread, out = _blocked_call(db, slow)
    deadline = time.monotonic() + 10
    while thread.is_alive():  # an interrupt before the statement starts is a no-op: repeat
        db.abort(thread.ident or 0)
        assert time.monotonic() < deadline
        thread.join(timeout=0.1)
    assert isinstance(out[0], StoreError)
    db.dispose()
