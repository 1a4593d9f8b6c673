"""Loading (sparecast.pipeline.load): a long CSV file and the demo SQLite ERP give the panel the
rows say, with the rejected rows and the extraction recorded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import FileSource, SqliteSource, write_tables
from sparecast.errors import DataValidationError
from sparecast.pipeline.load import load_panel

END = date(2026, 10, 31)


def _csv(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "demand.csv"
    path.write_text("unique_id,ds,y\n" + rows)
    return path


def test_load_a_long_csv(tmp_path: Path) -> None:
    """Two items over three days; a row with a bad date is rejected under the file's names."""
    path = _csv(
        tmp_path,
        "A,2026-01-01,2\nA,2026-01-03,1\nB,2026-01-02,5\nB,2026-01-99,7\n",
    )
    loaded = load_panel(str(path), load_settings(data={"today": "2026-01-31"}))
    assert isinstance(loaded.source, FileSource)
    assert loaded.source_kind == "long_file"
    panel = loaded.panel
    assert panel.item_ids.tolist() == ["A", "B"]
    assert str(panel.dates[0]) == "2026-01-01" and panel.n_periods == 3
    np.testing.assert_array_equal(panel.y, [[2.0, 0.0, 1.0], [0.0, 5.0, 0.0]])
    assert loaded.reports["demand"].counts == {"bad_date": 1}
    rejected = loaded.rejected["demand"]
    assert rejected["unique_id"].to_list() == ["B"]
    assert {"unique_id", "ds", "y"} <= set(rejected.columns)
    assert loaded.extract_info == {}  # a file is read directly, never extracted


def test_a_file_without_valid_rows_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "A,2026-01-99,1\n")
    with pytest.raises(DataValidationError, match=f"no valid demand rows in {path}"):
        load_panel(str(path), load_settings())


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pl.DataFrame]]:
    tables = generate_demo_erp(n_items=20, n_days=60, seed=7, end_date=END)
    db = tmp_path_factory.mktemp("erp") / "erp.sqlite"
    write_tables(tables, f"sqlite:///{db}")
    return db, tables


def test_load_the_demo_sqlite_with_extraction(
    tmp_path: Path, demo_db: tuple[Path, dict[str, pl.DataFrame]]
) -> None:
    """With an output directory the ERP is extracted (in full the first time, incrementally
    after); the panel holds every item and the demand of every valid row."""
    db, tables = demo_db
    settings = load_settings(data={"today": END.isoformat()})
    loaded = load_panel(str(db), settings, tmp_path)
    assert isinstance(loaded.source, SqliteSource)
    assert loaded.source_kind == "database"
    assert loaded.extract_info["full"] is True
    assert loaded.extract_info["total_rows"]["demand"] == tables["demand"].height
    assert (tmp_path / "extract" / "demand.parquet").is_file()
    assert sorted(loaded.tables) == ["demand", "items"]  # only what the forecast needs
    assert loaded.panel.item_ids.tolist() == tables["items"]["item_id"].to_list()
    assert str(loaded.panel.end) == str(tables["demand"]["date"].max())
    assert loaded.reports["demand"].counts == {}
    assert loaded.panel.y.sum() == pytest.approx(tables["demand"]["quantity"].sum())

    again = load_panel(str(db), settings, tmp_path)
    assert again.extract_info["full"] is False
    np.testing.assert_array_equal(again.panel.y, loaded.panel.y)

    direct = load_panel(str(db), settings)  # no output directory: read, not extracted
    assert direct.source_kind == "sql" and direct.extract_info == {}
    np.testing.assert_array_equal(direct.panel.y, loaded.panel.y)


def test_extra_tables_and_weekly_buckets(tmp_path: Path) -> None:
    """Demand of 1 a day from Wednesday 2026-01-07 to Monday 2026-01-26: the two whole weeks
    (Monday 12th to Sunday 25th) are kept, 5 days before and 1 day after are dropped."""
    days = pl.date_range(date(2026, 1, 7), date(2026, 1, 26), eager=True)
    tables = {
        "items": pl.DataFrame({"item_id": ["A"]}),
        "demand": pl.DataFrame({"item_id": ["A"] * days.len(), "date": days, "quantity": 1.0}),
        "stock": pl.DataFrame({"item_id": ["A"], "on_hand": [4.0], "as_of": [date(2026, 1, 26)]}),
    }
    db = tmp_path / "erp.sqlite"
    write_tables(tables, f"sqlite:///{db}")
    settings = load_settings(data={"freq": "W", "today": "2026-01-31"})
    loaded = load_panel(str(db), settings, tmp_path, extra_tables=("stock",))
    assert loaded.tables["stock"]["on_hand"].to_list() == [4.0]  # read, not validated
    assert loaded.panel.freq == "W"
    assert str(loaded.panel.start) == "2026-01-12"
    np.testing.assert_array_equal(loaded.panel.y, [[7.0, 7.0]])
    assert loaded.extract_info["bucketing"] == {
        "freq": "W",
        "partial_days_dropped_at_start": 5,
        "partial_days_dropped_at_end": 1,
        "demand_in_dropped_days": 6.0,
    }


def test_an_items_file_adds_its_items_and_the_plan_inputs(tmp_path: Path) -> None:
    """Items of the items file without demand join the panel with zero demand; its rejected
    rows are reported under ``items``; its valid rows become the plan's tables."""
    path = _csv(tmp_path, "A,2026-01-01,2\nA,2026-01-03,1\nB,2026-01-02,5\n")
    items = tmp_path / "items.csv"
    items.write_text("unique_id,category,on_hand\nA,pumps,4\nC,valves,\nB,x,-2\n")
    loaded = load_panel(str(path), load_settings(data={"today": "2026-01-31"}), items_file=items)
    panel = loaded.panel
    assert panel.item_ids.tolist() == ["A", "B", "C"]
    np.testing.assert_array_equal(panel.y, [[2.0, 0.0, 1.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]])
    assert panel.attributes is not None
    assert panel.attributes["category"].to_list() == ["pumps", None, "valves"]
    assert loaded.rejected["items"]["reason"].to_list() == ["negative_on_hand"]
    assert loaded.reports["items"].rows_rejected == 1
    inputs = loaded.plan_inputs
    assert inputs is not None and inputs.only_in_items == ["C"]
    assert inputs.tables["stock"].select("item_id", "on_hand").rows() == [("A", 4.0)]
    assert sorted(inputs.tables["items"]["item_id"]) == ["A", "B", "C"]  # B: defaults
    without = load_panel(str(path), load_settings(data={"today": "2026-01-31"}))
    assert without.plan_inputs is None and "items" not in without.rejected
