"""Arrow reads (sparecast.data.fastsql through read_tables): the same frames as the SQLAlchemy
reader on SQLite, MariaDB and PostgreSQL, the fallback with its note, no secret in a message."""

from __future__ import annotations

import logging
import sqlite3
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from utils.servers import PgDatabases

from sparecast.data import fastsql
from sparecast.data.demo import generate_demo_erp, write_tables
from sparecast.data.fastsql import compile_sql, fast_reader, normalise_arrow_frame
from sparecast.data.schema import validate_tables
from sparecast.data.sources import read_tables, sqlite_url
from sparecast.errors import SourceError

MAPPED = {
    "demand": {
        "table": "MTL_ISSUES",
        "columns": {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"},
    }
}


@pytest.fixture(scope="module")
def demo() -> dict[str, pl.DataFrame]:
    return generate_demo_erp(n_items=60, n_days=120, seed=11, end_date=date(2026, 10, 31))


def _assert_same_reads(url: str, mapping: object = None, tables: tuple[str, ...] = ()) -> None:
    """Both readers give identical frames (values, dtypes, order), in full and after a watermark,
    and validation of them reports the same."""
    names = list(tables) or None
    for since in (None, date(2026, 10, 15)):
        kw = {"since": since, "tables": names} if names else {"since": since}
        slow = read_tables(url, mapping, reader="sqlalchemy", **kw)  # type: ignore[arg-type]
        fast = read_tables(url, mapping, reader="arrow", **kw)  # type: ignore[arg-type]
        assert list(fast) == list(slow)
        for t in slow:
            assert fast[t].schema == slow[t].schema, (t, since)
            assert fast[t].equals(slow[t]), (t, since)
            assert slow[t].height > 0, t
    if names is None:
        slow_v = validate_tables(read_tables(url, reader="sqlalchemy"), today="2026-10-31")
        fast_v = validate_tables(read_tables(url, reader="arrow"), today="2026-10-31")
        for t, res in slow_v.items():
            assert fast_v[t].valid.equals(res.valid), t
            assert fast_v[t].report.to_dict() == res.report.to_dict(), t


def _write_with_bad_rows(demo: dict[str, pl.DataFrame], url: str) -> None:
    """The demo ERP plus the ERP-mapped demand table and rows validation must reject (a null
    item, a negative price), written through SQLAlchemy."""
    items = demo["items"].with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(-1.0)
        .otherwise(pl.col("unit_cost"))
        .alias("unit_cost")
    )
    demand = pl.concat(
        [
            demo["demand"],
            pl.DataFrame(
                {"item_id": [None, "NOPE"], "date": [date(2026, 10, 20)] * 2, "quantity": [1.0, 2]},
                schema=demo["demand"].schema,
            ),
        ]
    )
    mtl = demo["demand"].rename({"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"})
    write_tables({**demo, "items": items, "demand": demand, "MTL_ISSUES": mtl}, url)


def test_sqlite_reads_the_same_through_arrow(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    url = sqlite_url(tmp_path / "erp.sqlite")
    _write_with_bad_rows(demo, url)
    _assert_same_reads(url)
    _assert_same_reads(url, MAPPED, ("demand",))


@pytest.mark.integration
def test_mariadb_reads_the_same_through_arrow(
    mariadb_url: str, demo: dict[str, pl.DataFrame]
) -> None:
    _write_with_bad_rows(demo, mariadb_url)
    with sa.create_engine(mariadb_url).begin() as conn:  # the types of a real ERP schema
        conn.exec_driver_sql("ALTER TABLE items MODIFY unit_cost DECIMAL(12,4)")
        conn.exec_driver_sql("ALTER TABLE demand MODIFY quantity FLOAT")
        conn.exec_driver_sql("ALTER TABLE MTL_ISSUES MODIFY TRX_DATE DATETIME")
    _assert_same_reads(mariadb_url)
    _assert_same_reads(f"{mariadb_url}?charset=utf8mb4", MAPPED, ("demand",))


@pytest.mark.integration
def test_postgresql_reads_the_same_through_arrow(
    pg_databases: PgDatabases, demo: dict[str, pl.DataFrame]
) -> None:
    url = pg_databases.create()
    _write_with_bad_rows(demo, url)
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items ALTER unit_cost TYPE NUMERIC(12,4)")
        conn.exec_driver_sql("ALTER TABLE demand ALTER quantity TYPE REAL")
        conn.exec_driver_sql('ALTER TABLE "MTL_ISSUES" ALTER "TRX_DATE" TYPE TIMESTAMP')
    _assert_same_reads(url)
    _assert_same_reads(url, MAPPED, ("demand",))


@pytest.mark.integration
def test_postgresql_timestamptz_keeps_the_days_of_the_session_time_zone(
    pg_databases: PgDatabases,
) -> None:
    """23:30 UTC is the same day in New York, 03:30 UTC the day before: both readers give the
    calendar days of the database's time zone."""
    url = pg_databases.create()
    name = sa.make_url(url).database
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE demand (item_id TEXT, date TIMESTAMPTZ, quantity FLOAT)")
        conn.exec_driver_sql(
            "INSERT INTO demand VALUES ('A', '2026-01-01 23:30:00+00', 1), "
            "('A', '2026-01-02 03:30:00+00', 2)"
        )
        conn.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
    slow = read_tables(url, tables=["demand"], reader="sqlalchemy")["demand"]
    fast = read_tables(url, tables=["demand"], reader="arrow")["demand"]
    assert fast.equals(slow)
    assert fast["date"].to_list() == [date(2026, 1, 1), date(2026, 1, 1)]


def test_progress_is_reported_per_chunk_through_arrow(
    tmp_path: Path, demo: dict[str, pl.DataFrame]
) -> None:
    url = sqlite_url(tmp_path / "erp.sqlite")
    write_tables(demo, url)
    n = demo["demand"].height
    calls: dict[str, list[tuple[str, int, int]]] = {}
    for reader in ("arrow", "sqlalchemy"):
        got = calls.setdefault(reader, [])

        def keep(table: str, done: int, total: int, got: list[tuple[str, int, int]] = got) -> None:
            got.append((table, done, total))

        read_tables(url, tables=["demand"], chunk_size=700, progress=keep, reader=reader)
    assert calls["arrow"] == calls["sqlalchemy"]
    assert calls["arrow"][0] == ("demand", 0, n) and calls["arrow"][-1] == ("demand", n, n)


def test_a_column_the_driver_cannot_type_falls_back_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite lets a column hold numbers and text; the Arrow driver refuses it, the table is read
    through SQLAlchemy (with a warning) and the text reaches validation as before."""
    db = tmp_path / "erp.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE demand (item_id TEXT, date DATE, quantity)")
        rows = [("A", "2026-01-01", i) for i in range(3000)] + [("A", "2026-01-02", "lots")]
        conn.executemany("INSERT INTO demand VALUES (?, ?, ?)", rows)
    url = sqlite_url(db)
    with caplog.at_level(logging.WARNING, logger="sparecast.data.sources"):
        got = read_tables(url, tables=["demand"])["demand"]
    assert "through SQLAlchemy" in caplog.text and "adbc-sqlite" in caplog.text
    assert got.equals(read_tables(url, tables=["demand"], reader="sqlalchemy")["demand"])
    assert got["quantity"][-1] == "lots"
    with pytest.raises(SourceError, match="through adbc-sqlite"):
        read_tables(url, tables=["demand"], reader="arrow")


def test_fallback_when_the_driver_is_missing_or_the_dialect_unsupported(
    tmp_path: Path,
    demo: dict[str, pl.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert fast_reader(sa.make_url("mssql+pyodbc://u:pw@h/db"))[1].startswith("no Arrow driver")
    url = sqlite_url(tmp_path / "erp.sqlite")
    write_tables(demo, url)
    expected = read_tables(url, tables=["items"], reader="sqlalchemy")["items"]
    real = fastsql.importlib.util.find_spec
    monkeypatch.setattr(
        fastsql.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "adbc_driver_sqlite" else real(name, *a),
    )
    with caplog.at_level(logging.INFO, logger="sparecast.data.sources"):
        got = read_tables(url, tables=["items"])["items"]
    assert got.equals(expected)
    assert "adbc-driver-sqlite is not installed" in caplog.text
    with pytest.raises(SourceError, match="not installed"):
        read_tables(url, tables=["items"], reader="arrow")
    with pytest.raises(SourceError, match="reader must be"):
        read_tables(url, tables=["items"], reader="fast")  # type: ignore[arg-type]


def test_driver_uris_and_no_secret_in_any_message() -> None:
    secret = "p@ss:w/rd?x"
    pg = sa.make_url("postgresql+psycopg://app@db.example:5433/erp?sslmode=require").set(
        password=secret
    )
    reader, why = fast_reader(pg)
    assert reader is not None and why == "" and reader.driver == "adbc-postgresql"
    assert reader.uri == "postgresql://app:p%40ss%3Aw%2Frd%3Fx@db.example:5433/erp?sslmode=require"
    assert secret not in repr(reader) and "p%40ss" not in repr(reader)
    message = reader.redact(f"failed for {reader.uri} with password {secret}")
    assert secret not in message and "p%40ss" not in message
    my, _ = fast_reader(sa.make_url("mysql+pymysql://root:pw@127.0.0.1:3306/erp?charset=utf8mb4"))
    assert my is not None and my.uri == "mysql://root:pw@127.0.0.1:3306/erp"
    assert fast_reader(sa.make_url("mysql+pymysql://u@h/db?ssl_ca=/x.pem"))[0] is None
    assert fast_reader(sa.make_url("sqlite://"))[0] is None


@pytest.mark.integration
def test_a_server_that_refuses_the_password_is_a_redacted_source_error(
    pg_databases: PgDatabases,
) -> None:
    url = sa.make_url(pg_databases.create()).set(username="nobody_here", password="hunter2pw")
    text = url.render_as_string(hide_password=False)
    for reader in ("arrow", "auto"):
        with pytest.raises(SourceError) as info:
            read_tables(text, tables=["items"], reader=reader)  # type: ignore[arg-type]
        assert "hunter2pw" not in str(info.value)


def test_compile_writes_the_watermark_in_and_normalise_types() -> None:
    table = sa.Table("demand", sa.MetaData(), sa.Column("date", sa.Date))
    stmt = sa.select(table.c.date.label("date")).where(table.c.date >= date(2026, 1, 2))
    sql = compile_sql(stmt, sa.create_engine("sqlite://").dialect)
    assert "'2026-01-02'" in sql and "?" not in sql
    frame = pl.DataFrame(
        {"i": pl.Series([1, None], dtype=pl.Int16), "f": pl.Series([1.1, 2.0], dtype=pl.Float32)}
    )
    out = normalise_arrow_frame(frame)
    assert out.schema == pl.Schema({"i": pl.Int64, "f": pl.Float64})
    assert out["f"].to_list() == [1.1, 2.0]  # the float's text, as the server sends it
