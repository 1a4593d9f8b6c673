"""Sources (sparecast.data.sources): SQL read/write, long files, the Source kinds."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa

from sparecast.data.demo import generate_demo_erp, write_tables
from sparecast.data.mapping import ErpMapping
from sparecast.data.panel import DemandPanel
from sparecast.data.sources import (
    FileSource,
    SqliteSource,
    SqlSource,
    load_source,
    open_source,
    read_long_file,
    read_tables,
    sqlite_url,
    write_long_file,
)
from sparecast.errors import DataValidationError, SourceError


@pytest.fixture(scope="module")
def demo() -> dict[str, pl.DataFrame]:
    return generate_demo_erp(n_items=200, n_days=90, seed=5)


def test_round_trip_sqlite(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    url = sqlite_url(tmp_path / "erp.sqlite")
    written = write_tables(demo, url)
    assert written == {k: v.height for k, v in demo.items()}
    back = read_tables(url)
    for name, frame in demo.items():
        assert back[name].schema == frame.schema, name
        assert back[name].equals(frame), name
    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    assert any(ix["column_names"] == ["item_id", "date"] for ix in insp.get_indexes("demand"))
    assert {c["name"]: str(c["type"]) for c in insp.get_columns("demand")}["date"] == "DATE"
    engine.dispose()
    # replace is idempotent, append doubles, fail refuses
    write_tables({"stock": demo["stock"]}, url)
    write_tables({"stock": demo["stock"]}, url, if_exists="append")
    assert read_tables(url, tables=["stock"])["stock"].height == 2 * demo["stock"].height
    with pytest.raises(SourceError, match="already exists"):
        write_tables({"stock": demo["stock"]}, url, if_exists="fail")


def test_read_since(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    url = sqlite_url(tmp_path / "erp.sqlite")
    write_tables(demo, url)
    cut = date(2026, 10, 15)
    got = read_tables(url, tables=["demand", "items"], since=cut)
    assert got["demand"].height == demo["demand"].filter(pl.col("date") > cut).height
    assert got["items"].height == demo["items"].height  # master tables in full


def test_mapping_other_names(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    url = sqlite_url(tmp_path / "erp.sqlite")
    renamed = {
        "MTL_ISSUES": demo["demand"].rename(
            {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"}
        ),
        "MTL_ITEMS": demo["items"].rename({"item_id": "ITEM_NO", "description": "DESCR"}),
        "PO_HEADERS": demo["purchase_orders"].rename({"po_id": "PO_NUM", "order_date": "CREATED"}),
        "receipts": demo["receipts"],
        "suppliers": demo["suppliers"],
        "stock": demo["stock"].rename({"on_hand": "QTY_ON_HAND"}),
    }
    write_tables(renamed, url)
    mapping = ErpMapping.from_dict(
        {
            "demand": {
                "table": "MTL_ISSUES",
                "columns": {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"},
            },
            "items": {
                "table": "MTL_ITEMS",
                "columns": {"item_id": "ITEM_NO", "description": "DESCR"},
            },
            "purchase_orders": {
                "table": "PO_HEADERS",
                "columns": {"po_id": "PO_NUM", "order_date": "CREATED"},
            },
            "stock": {"columns": {"on_hand": "qty_on_hand"}},  # case-insensitive column lookup
        }
    )
    back = read_tables(url, mapping)
    for name, frame in demo.items():
        assert back[name].equals(frame), name
    src = load_source(url, mapping=mapping)
    assert src.kind == "sql"
    assert src.tables["demand"].equals(demo["demand"])
    assert all(r.ok for r in src.reports.values())
    # without the mapping: the missing tables are named
    with pytest.raises(SourceError, match=r"lacks table\(s\) items.*demand.*purchase_orders"):
        read_tables(url)


def test_missing_column_named(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    url = sqlite_url(tmp_path / "erp.sqlite")
    write_tables({"demand": demo["demand"].rename({"quantity": "qty"})}, url)
    with pytest.raises(
        SourceError, match=r"lacks column\(s\) quantity \(source column 'quantity'\).*'qty'"
    ):
        read_tables(url, tables=["demand"])


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        load_source(tmp_path / "nope.sqlite")
    with pytest.raises(SourceError, match="does not exist"):
        read_tables(sqlite_url(tmp_path / "nope.sqlite"))
    assert not (tmp_path / "nope.sqlite").exists()  # no empty database created
    with pytest.raises(
        SourceError, match="cannot connect to mysql\\+pymysql://root:\\*\\*\\*@127.0.0.1:1/x"
    ):
        read_tables("mysql+pymysql://root:secret@127.0.0.1:1/x")
    with pytest.raises(SourceError, match="not a valid database URL"):
        read_tables("nota url://")
    with pytest.raises(SourceError, match="cannot tell what kind of source"):
        load_source(tmp_path / "data.xlsx")
    with pytest.raises(SourceError, match="does not exist"):
        read_long_file(tmp_path / "missing.csv")


def test_long_files(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    for ext in ("csv", "parquet"):
        path = write_long_file(demo["demand"], tmp_path / f"sub/demand.{ext}")
        raw = read_long_file(path)
        assert raw.columns[:3] == ["unique_id", "ds", "y"]
        src = load_source(path)
        assert src.kind == "long_file"
        assert src.tables["demand"].equals(demo["demand"])
        assert src.tables["items"]["item_id"].to_list() == sorted(
            demo["demand"]["item_id"].unique()
        )
        assert src.reports["demand"].returns == int((demo["demand"]["quantity"] < 0).sum())


def test_long_csv_keeps_strings_and_reports_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text("unique_id,ds,y\n007,2024-01-01,1\n007,2024-13-01,2\n008,2024-01-02,abc\n")
    assert read_long_file(p)["unique_id"].to_list() == ["007", "007", "008"]  # leading zeros kept
    src = load_source(p)
    assert src.tables["demand"].height == 1
    assert src.reports["demand"].counts == {"bad_date": 1, "non_numeric_quantity": 1}
    assert src.rejected["demand"].height == 2
    with pytest.raises(DataValidationError, match="2 of 3 rows rejected"):
        load_source(p, strict=True)
    bad = tmp_path / "wide.csv"
    bad.write_text("item,date,qty\nA,2024-01-01,1\n")
    with pytest.raises(SourceError, match=r"lacks column\(s\) \['unique_id', 'ds', 'y'\]"):
        read_long_file(bad)


def test_load_source_validates_against_items(tmp_path: Path, demo: dict[str, pl.DataFrame]) -> None:
    demand = pl.concat(
        [
            demo["demand"].with_columns(pl.col("date", "quantity").cast(pl.String)),
            pl.DataFrame({"item_id": ["GHOST"], "date": ["2026-10-01"], "quantity": ["1"]}),
        ]
    )
    path = tmp_path / "erp.db"
    write_tables({**demo, "demand": demand}, sqlite_url(path))
    src = load_source(str(path), today=date(2026, 10, 31))
    assert src.reports["demand"].counts == {"unknown_item": 1}
    assert src.tables["demand"].height == demo["demand"].height
    assert src.report_dict()["demand"]["rows_rejected"] == 1
    with pytest.raises(DataValidationError, match="GHOST"):
        src.raise_if_rejected()


def test_read_progress_reports_rows_per_table(
    tmp_path: Path, demo: dict[str, pl.DataFrame]
) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    write_tables(demo, url)
    calls: list[tuple[str, int, int]] = []
    read_tables(
        url, tables=("items", "demand"), chunk_size=1000, progress=lambda *a: calls.append(a)
    )
    demand = [c for c in calls if c[0] == "demand"]
    assert demand[0] == ("demand", 0, demo["demand"].height)  # the total comes first
    assert demand[-1] == ("demand", demo["demand"].height, demo["demand"].height)
    assert len(demand) == 1 + -(-demo["demand"].height // 1000)  # one call per chunk
    assert any(c[0] == "items" for c in calls)


@pytest.mark.integration
def test_mapping_mariadb(mariadb_url: str) -> None:
    demo = generate_demo_erp(n_items=40, n_days=30, seed=9, end_date=date(2026, 10, 31))
    write_tables(
        {
            "MTL_ISSUES": demo["demand"].rename(
                {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"}
            )
        },
        mariadb_url,
    )
    mapping = {
        "demand": {
            "table": "MTL_ISSUES",
            "columns": {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"},
        }
    }
    got = read_tables(mariadb_url, mapping, tables=["demand"])["demand"]
    assert got.sort(got.columns).equals(demo["demand"].sort(demo["demand"].columns))
    with pytest.raises(SourceError, match=r"lacks table\(s\) items"):
        read_tables(mariadb_url, mapping, tables=["items"])


def _panel(tables: dict[str, pl.DataFrame]) -> DemandPanel:
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    return DemandPanel.from_long(demand, freq="D", item_ids=tables["items"]["item_id"].to_list())


def test_every_source_kind_reads_the_same_panel(tmp_path: Path) -> None:
    """The same three days of two items as a SQL URL, a SQLite file, a CSV and a Parquet file:
    open_source picks the kind from the string, and every kind gives the same panel."""
    d = date.fromisoformat
    demand = pl.DataFrame(
        {
            "item_id": ["A", "A", "B", "B"],
            "date": [d("2026-01-01"), d("2026-01-03"), d("2026-01-02"), d("2026-01-03")],
            "quantity": [2.0, 1.0, 5.0, -1.0],
        }
    )
    items = pl.DataFrame({"item_id": ["A", "B"], "description": ["a", "b"]})
    db = tmp_path / "erp.sqlite"
    write_tables({"items": items, "demand": demand}, sqlite_url(db))
    csv = write_long_file(demand, tmp_path / "demand.csv")
    parquet = write_long_file(demand, tmp_path / "demand.parquet")

    sources = {
        "url": open_source(sqlite_url(db)),
        "sqlite": open_source(str(db)),
        "csv": open_source(csv),
        "parquet": open_source(parquet),
    }
    assert [type(s) for s in sources.values()] == [SqlSource, SqliteSource, FileSource, FileSource]
    assert [s.name for s in sources.values()] == ["sql", "sqlite", "file", "file"]
    assert sources["url"].url == sources["sqlite"].url == sqlite_url(db)
    assert sources["csv"].url is None
    assert sources["sqlite"].describe() == str(db)
    assert sources["csv"].describe() == str(csv)

    expected = np.array([[2.0, 0.0, 1.0], [0.0, 5.0, -1.0]], dtype=np.float32)
    for name, source in sources.items():
        loaded = source.load(tables=["items", "demand"])
        assert loaded.kind == source.kind, name
        panel = _panel(loaded.tables)
        assert panel.item_ids.tolist() == ["A", "B"], name
        assert str(panel.dates[0]) == "2026-01-01" and panel.n_periods == 3, name
        np.testing.assert_array_equal(panel.y, expected, err_msg=name)
        raw = source.read_tables(["items", "demand"])  # as read, before validation
        assert raw["demand"].height == 4, name


def test_sql_source_describes_itself_without_the_password() -> None:
    source = open_source("mysql+pymysql://erp:hunter2@db:3306/erp?charset=utf8mb4")
    assert isinstance(source, SqlSource)
    assert source.describe() == "mysql+pymysql://erp:***@db:3306/erp?charset=utf8mb4"
    assert "hunter2" in source.url  # the URL itself is kept to connect


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="SQLite file .*nope.db does not exist"):
        open_source(tmp_path / "nope.db")
    with pytest.raises(SourceError, match="cannot tell what kind of source"):
        open_source(tmp_path / "data.xlsx")
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "missing.csv").read_tables()


# --------------------------------------------------------------------------- malformed URLs
@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://u:hunter2pw@host:abc/db",  # a port that is not a number
        "mysql+pymysql://u:hunter2pw@host:70000/db",  # out of range
        "mysql+pymysql://u:hunter2pw@[::1/db",  # an unclosed IPv6 bracket
        "not a url://u:hunter2pw@host/db",
    ],
)
def test_malformed_source_url_is_a_source_error(url: str) -> None:
    with pytest.raises(SourceError, match="not a valid database URL") as info:
        open_source(url)
    assert "hunter2pw" not in str(info.value)


def test_malformed_source_url_through_the_cli(tmp_path: Path) -> None:
    """The reported case: a traceback and exit 1 before; a one-line error and exit 2 now."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparecast.cli",
            "run",
            "--source",
            "mysql+pymysql://u:hunter2pw@host:abc/db",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "hunter2pw" not in out
    assert "port must be a number" in out and "u:***@host:abc" in out


@pytest.mark.parametrize(
    ("url", "driver_says"),
    [
        # libpq refuses an unknown option; PyMySQL fails inside its constructor on a bad charset
        (
            "postgresql+psycopg://u:hunter2pw@127.0.0.1:5432/db?foo=bar",
            'invalid connection option "foo"',
        ),
        ("mysql+pymysql://u:hunter2pw@127.0.0.1:3306/db?charset=nope", "encoding"),
    ],
)
def test_an_option_the_driver_rejects_is_a_source_error(url: str, driver_says: str) -> None:
    """Any failure to connect is a SourceError naming the redacted URL, never a traceback."""
    with pytest.raises(SourceError, match="cannot connect to") as info:
        open_source(url).read_tables(["items"])
    assert driver_says in str(info.value) and "hunter2pw" not in str(info.value)
