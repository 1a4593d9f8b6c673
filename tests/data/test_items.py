"""The items file of `sparecast plan --items` (sparecast.data.items): reading, one reason per
rejected row, every row accounted for, the planning tables and the notes naming each default."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from sparecast.data.items import (
    ITEM_FILE_COLUMNS,
    plan_tables,
    read_items_file,
    validate_items_file,
)
from sparecast.errors import SourceError

ROWS = """unique_id,lead_time_days,lead_time_std_days,moq,lot_size,unit_cost,on_hand,on_order
A,14,2,5,1,2.5,3,1
B,,,,,,,
C,-3,0,1,1,1,1,1
D,abc,0,1,1,1,1,1
A,20,0,1,1,1,1,1
,7,0,1,1,1,1,1
E,7,0,1,0,1,1,1
F,7,-1,1,1,1,1,1
G,7,0,1,1,1,-2,1
H, 21 ,0,1,2,inf,0,0
"""


def _file(tmp_path: Path, text: str = ROWS, name: str = "items.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rejects_each_bad_row_with_its_reason_and_keeps_the_rest(tmp_path: Path) -> None:
    raw = read_items_file(_file(tmp_path))
    assert raw.schema["lead_time_days"] == pl.String  # read as strings: nothing lost
    res = validate_items_file(raw)
    got = dict(zip(res.rejected["input_row"].to_list(), res.rejected["reason"], strict=True))
    assert got == {
        2: "negative_lead_time_days",
        3: "bad_lead_time_days",
        4: "duplicate",  # the first A is kept
        5: "missing_unique_id",
        6: "non_positive_lot_size",
        7: "negative_lead_time_std_days",
        8: "negative_on_hand",
        9: "bad_unit_cost",  # inf is not a finite number
    }
    assert res.valid.height + res.rejected.height == raw.height
    assert res.report.rows_rejected == 8 and res.report.counts["duplicate"] == 1
    # the rejected rows as they came (strings), the kept ones parsed
    assert res.rejected.filter(pl.col("input_row") == 3)["lead_time_days"].item() == "abc"
    a = res.valid.row(0, named=True)
    assert a["item_id"] == "A" and a["active"] is True
    assert [a[c] for c in ITEM_FILE_COLUMNS] == [14.0, 2.0, 5.0, 1.0, 2.5, 3.0, 1.0]
    b = res.valid.row(1, named=True)
    assert b["item_id"] == "B" and all(b[c] is None for c in ITEM_FILE_COLUMNS)  # blank: default


def test_service_target_must_be_a_probability() -> None:
    raw = pl.DataFrame({"unique_id": ["a", "b", "c"], "target": ["0.9", "1.2", ""]})
    res = validate_items_file(raw, target_column="target")
    assert res.rejected["reason"].to_list() == ["bad_service_target"]
    assert res.valid["target"].to_list() == [0.9, None]


def test_read_items_file_parquet_and_errors(tmp_path: Path) -> None:
    frame = pl.DataFrame({"unique_id": ["x"], "moq": [4.0]})
    frame.write_parquet(tmp_path / "items.parquet")
    assert read_items_file(tmp_path / "items.parquet").equals(frame)
    with pytest.raises(SourceError, match="does not exist"):
        read_items_file(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="lacks the column 'unique_id'"):
        read_items_file(_file(tmp_path, "item,moq\nx,1\n"))
    with pytest.raises(SourceError, match="unknown extension"):
        read_items_file(_file(tmp_path, "unique_id\nx\n", "items.txt"))


def test_plan_tables_defaults_and_notes() -> None:
    raw = pl.DataFrame(
        {"unique_id": ["A", "B", "Z"], "lead_time_days": ["14", "", "7"], "on_hand": ["3", "", ""]}
    )
    valid = validate_items_file(raw).valid
    inputs = plan_tables(
        valid, ["A", "B", "C", "D"], columns=raw.columns, today=date(2026, 1, 1), moq_column="MOQ"
    )
    items = inputs.tables["items"]
    # the demand's C and D get a row of defaults (nulls); Z has no demand history
    assert items["item_id"].to_list() == ["A", "B", "Z", "C", "D"]
    assert "MOQ" in items.columns and "moq" not in items.columns
    assert inputs.only_in_items == ["Z"]
    stock = inputs.tables["stock"]
    assert stock.rows() == [("A", 3.0, date(2026, 1, 1))]  # only the stock that was given
    assert inputs.tables["purchase_orders"].height == 0 and inputs.tables["receipts"].height == 0
    notes = "\n".join(inputs.notes)
    for col in ("lead_time_std_days", "moq", "lot_size", "unit_cost", "on_order"):
        assert f"{col} (default: " in notes  # every absent column is named with its default
    assert "lead_time_days (default" not in notes
    assert "lead_time_days 1, on_hand 2" in notes  # blank cells per column
    assert "2 item(s) of the demand have no row in the items file" in notes
    assert "1 item(s) of the items file have no demand history" in notes
