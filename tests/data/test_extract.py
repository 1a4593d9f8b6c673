"""Incremental extraction of an ERP database into Parquet files (sparecast.data.extract)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest

from sparecast.data.demo import generate_demo_erp, write_tables
from sparecast.data.extract import extract_incremental, read_extract
from sparecast.data.sources import load_source, read_tables, sqlite_url
from sparecast.errors import ConfigError, SourceError

END = date(2026, 10, 31)


def _new_rows(demo: dict[str, pl.DataFrame], days: int) -> dict[str, pl.DataFrame]:
    """Rows dated after the demo's end: a few more days of demand, orders and receipts."""
    items = demo["items"]["item_id"].head(3).to_list()
    demand = pl.DataFrame(
        {
            "item_id": [items[i % 3] for i in range(2 * days)],
            "date": [END + timedelta(days=1 + i // 2) for i in range(2 * days)],
            "quantity": [float(i + 1) for i in range(2 * days)],
        },
        schema=demo["demand"].schema,
    )
    pos = pl.DataFrame(
        {
            "po_id": ["PO_NEW_1"],
            "item_id": [items[0]],
            "supplier_id": [demo["suppliers"]["supplier_id"][0]],
            "order_date": [END + timedelta(days=1)],
            "quantity": [10.0],
            "promised_date": [END + timedelta(days=20)],
        },
        schema=demo["purchase_orders"].schema,
    )
    receipts = pl.DataFrame(
        {
            "po_id": ["PO_NEW_1"],
            "item_id": [items[0]],
            "receipt_date": [END + timedelta(days=2)],
            "quantity": [10.0],
        },
        schema=demo["receipts"].schema,
    )
    return {"demand": demand, "purchase_orders": pos, "receipts": receipts}


def _check_incremental(url: str, state: Path, demo: dict[str, pl.DataFrame]) -> None:
    first = extract_incremental(url, state)
    assert first.full
    assert first.new_rows == {k: v.height for k, v in demo.items()}
    assert first.watermarks["demand"] == demo["demand"]["date"].max()
    saved = json.loads((state / "extract" / "state.json").read_text())
    assert saved["watermarks"]["demand"] == demo["demand"]["date"].max().isoformat()
    assert "secret" not in json.dumps(saved)

    again = extract_incremental(url, state)  # nothing new
    assert not again.full
    assert again.new_rows["demand"] == 0 and again.new_rows["receipts"] == 0
    assert again.new_rows["items"] == demo["items"].height  # master tables re-read in full
    assert again.total_rows["demand"] == demo["demand"].height

    new = _new_rows(demo, days=3)
    write_tables(new, url, if_exists="append")
    second = extract_incremental(url, state)
    assert not second.full
    assert second.new_rows["demand"] == 6
    assert second.new_rows["purchase_orders"] == 1 and second.new_rows["receipts"] == 1
    assert second.total_rows["demand"] == demo["demand"].height + 6
    assert second.watermarks["demand"] == END + timedelta(days=3)
    tables = read_extract(state)
    expected = pl.concat([demo["demand"], new["demand"]])
    assert (
        tables["demand"]
        .sort("item_id", "date", "quantity")
        .equals(expected.sort("item_id", "date", "quantity"))
    )
    assert tables["purchase_orders"].height == demo["purchase_orders"].height + 1

    forced = extract_incremental(url, state, full=True)
    assert forced.full and forced.new_rows["demand"] == demo["demand"].height + 6
    # a changed mapping means a full extraction
    remapped = extract_incremental(url, state, {"stock": {"columns": {"as_of": "as_of"}}})
    assert remapped.full


def test_incremental_extraction_sqlite(tmp_path: Path) -> None:
    demo = generate_demo_erp(n_items=150, n_days=60, seed=2, end_date=END)
    url = sqlite_url(tmp_path / "erp.sqlite")
    write_tables(demo, url)
    _check_incremental(url, tmp_path / "state", demo)


def test_incremental_with_mapping_and_datetime_column(tmp_path: Path) -> None:
    """An ERP whose demand date is a DATETIME column under another name."""
    demo = generate_demo_erp(n_items=50, n_days=30, seed=4, end_date=END)
    url = sqlite_url(tmp_path / "erp.sqlite")
    issues = (
        demo["demand"]
        .with_columns(
            (pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=10)).alias("TRX_TIME")
        )
        .drop("date")
    )
    write_tables({**{k: v for k, v in demo.items() if k != "demand"}, "ISSUES": issues}, url)
    mapping = {"demand": {"table": "ISSUES", "columns": {"date": "TRX_TIME"}}}
    first = extract_incremental(url, tmp_path, mapping)
    assert first.watermarks["demand"] == demo["demand"]["date"].max()
    mark = first.watermarks["demand"]
    late = datetime.combine(mark, time(18))  # a late booking for the last extracted day
    more = pl.DataFrame({"item_id": ["P000001", "P000002"], "quantity": [2.0, 3.0]}).with_columns(
        TRX_TIME=pl.Series([late, late + timedelta(hours=15)]).cast(pl.Datetime("us"))
    )
    write_tables({"ISSUES": more}, url, if_exists="append")
    second = extract_incremental(url, tmp_path, mapping)
    # the late row for the already extracted day is not seen (watermark rule)
    assert second.new_rows["demand"] == 1
    assert read_extract(tmp_path, ["demand"])["demand"]["date"].dtype == pl.Date


def test_extraction_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        extract_incremental(sqlite_url(tmp_path / "missing.sqlite"), tmp_path)
    with pytest.raises(ConfigError, match="unknown table"):
        extract_incremental(sqlite_url(tmp_path / "x.sqlite"), tmp_path, tables=["orders"])
    with pytest.raises(SourceError, match="run the extraction first"):
        read_extract(tmp_path / "empty")


@pytest.mark.integration
def test_round_trip_and_incremental_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    demo = generate_demo_erp(n_items=150, n_days=60, seed=2, end_date=END)
    write_tables(demo, mariadb_url)
    back = read_tables(mariadb_url)
    for name, frame in demo.items():
        assert back[name].schema == frame.schema, name
        assert back[name].sort(back[name].columns).equals(frame.sort(frame.columns)), name
    src = load_source(mariadb_url)
    assert src.kind == "sql" and all(r.ok for r in src.reports.values())
    _check_incremental(mariadb_url, tmp_path / "state", demo)
