"""Order decisions in the store: recorded, changed in place (one row per order line), read back
per plan, approved and pending; the ERP write-back upserts by line key (MariaDB integration)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from sparecast.errors import SparecastError
from sparecast.store import ForecastStore
from sparecast.store.decisions import OrderDecision, OrderDecisions
from sparecast.store.writeback import erp_table, orders_xlsx, write_erp_orders


def _decision(
    item: str, decision: str = "approved", qty: float = 4.0, **kw: object
) -> OrderDecision:
    values: dict = {
        "plan_id": "plan1",
        "unique_id": item,
        "supplier_id": "S1",
        "suggested_quantity": 4.0,
        "quantity": qty,
        "unit_cost": 2.5,
        "decision": decision,
        "reason": "",
        "decided_by": "ann",
    }
    values.update(kw)
    return OrderDecision(**values)


@pytest.fixture
def decisions(tmp_path: Path) -> OrderDecisions:
    store = ForecastStore(f"sqlite:///{tmp_path / 'h.sqlite'}")
    store.migrate()
    return OrderDecisions(store.engine)


def test_record_update_and_read(decisions: OrderDecisions) -> None:
    decisions.record(_decision("A"))
    decisions.record(_decision("B", qty=7))
    decisions.record(_decision("A", "rejected", reason="stock found"))  # changed mind: same row
    plan = decisions.of_plan("plan1").sort("unique_id")
    assert plan["unique_id"].to_list() == ["A", "B"]
    assert plan["decision"].to_list() == ["rejected", "approved"]
    assert plan["line_key"].to_list() == ["plan1:A", "plan1:B"]
    assert decisions.approved("plan1")["quantity"].to_list() == [7.0]
    assert decisions.of_plan("other").height == 0
    assert decisions.pending().height == 2
    decisions.mark_written(["plan1:B"])
    assert decisions.pending()["unique_id"].to_list() == ["A"]
    decisions.record(_decision("B", qty=8))  # a new decision is written back again
    assert sorted(decisions.pending()["unique_id"].to_list()) == ["A", "B"]


def test_bad_decisions_are_refused(decisions: OrderDecisions) -> None:
    with pytest.raises(SparecastError, match="needs a reason"):
        decisions.record(_decision("A", "rejected"))
    with pytest.raises(SparecastError, match="expected one of"):
        decisions.record(_decision("A", "maybe"))
    with pytest.raises(SparecastError, match="0 or more"):
        decisions.record(_decision("A", qty=-1))


def test_xlsx_of_decisions(decisions: OrderDecisions) -> None:
    from io import BytesIO

    from openpyxl import load_workbook

    decisions.record(_decision("A"))
    book = load_workbook(BytesIO(orders_xlsx(decisions.approved(), "approved")))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][0] == "line_key" and rows[1][0] == "plan1:A"


def _erp_rows(url: str, table: str) -> pl.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(erp_table(table))).mappings().all()
    finally:
        engine.dispose()
    return pl.DataFrame([dict(r) for r in rows])


def test_erp_write_back_on_sqlite_is_idempotent(decisions: OrderDecisions, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    decisions.record(_decision("A"))
    decisions.record(_decision("B", qty=9))
    first = write_erp_orders(url, "proposals", decisions.pending())
    assert (first.inserted, first.updated) == (2, 0)
    again = write_erp_orders(url, "proposals", decisions.pending())  # a retry
    assert (again.inserted, again.updated) == (0, 2)
    rows = _erp_rows(url, "proposals").sort("item_id")
    assert rows["line_key"].to_list() == ["plan1:A", "plan1:B"]
    assert rows["order_value"].to_list() == [10.0, 22.5]


@pytest.mark.integration
def test_erp_write_back_on_mariadb(decisions: OrderDecisions, mariadb_url: str) -> None:
    decisions.record(_decision("A"))
    decisions.record(_decision("B", qty=9))
    decisions.record(_decision("C", "rejected", reason="obsolete"))  # never in the ERP
    result = write_erp_orders(mariadb_url, "sparecast_order_proposals", decisions.pending())
    assert (result.inserted, result.updated) == (2, 0)
    decisions.mark_written(result.keys)
    # a retry of the same lines (e.g. the mark was lost) updates, never duplicates
    retry = write_erp_orders(mariadb_url, "sparecast_order_proposals", decisions.approved("plan1"))
    assert (retry.inserted, retry.updated) == (0, 2)
    decisions.record(_decision("B", "rejected", qty=0, reason="supplier closed"))
    later = write_erp_orders(mariadb_url, "sparecast_order_proposals", decisions.pending())
    assert (later.inserted, later.updated) == (0, 1)
    rows = _erp_rows(mariadb_url, "sparecast_order_proposals").sort("item_id")
    assert rows["item_id"].to_list() == ["A", "B"]
    assert rows["status"].to_list() == ["approved", "rejected"]
    assert rows["quantity"].to_list() == [4.0, 0.0]
    with pytest.raises(SparecastError, match="sparecast_order_proposals"):
        write_erp_orders(
            mariadb_url.rsplit("/", 1)[0] + "/no_such_db_x",
            "sparecast_order_proposals",
            decisions.pending(),
        )
