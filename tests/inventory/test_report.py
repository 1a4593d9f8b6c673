"""The inventory report on a hand-made plan: sections, ranking, escaping, risk bands."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from sparecast.inventory.leadtime import lead_time_stats
from sparecast.inventory.plan import POLICY_COLUMNS, PlanResult
from sparecast.inventory.report import RISK_BANDS, render_inventory_report, report_context

TODAY = date(2026, 5, 1)


def _lead_times():  # type: ignore[no-untyped-def]
    po = pl.DataFrame(
        {
            "po_id": ["P1", "P2", "P3", "P4"],
            "item_id": ["A", "B", "C", "C"],
            "supplier_id": ["S1", "S<2>", "S1", "S1"],
            "order_date": [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)],
            "quantity": [5.0, 5.0, 4.0, 2.0],
            "promised_date": [date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 15), None],
        }
    )
    rc = pl.DataFrame(
        {
            "po_id": ["P1", "P2", "NOPE", "P3"],
            "item_id": ["A", "B", "A", "C"],
            "receipt_date": [
                date(2026, 1, 9),
                date(2026, 2, 20),
                date(2026, 2, 20),
                date(2026, 3, 20),
            ],
            "quantity": [5.0, 5.0, 1.0, 1.0],
        }
    )
    sup = pl.DataFrame({"supplier_id": ["S1", "S<2>"], "name": ["Acme & Co", "<b>Bold</b>"]})
    return lead_time_stats(po, rc, suppliers=sup, min_orders=1, today=TODAY)


def _plan() -> PlanResult:
    rows = {
        "unique_id": ["A", "B", "C", "D"],
        "description": ["<script>alert(1)</script>", "Bearing", None, "Seal"],
        "category": ["x", "x", "y", None],
        "stockout_risk": [0.01, 0.6, 0.3, 0.6],
        "suggested_order": [0.0, 4.0, 2.0, 1.0],
        "unit_cost": [1.0, 10.0, 3.0, 100.0],
        "on_hand": [5.0, 0.0, 1.0, 0.0],
        "forecast_horizon_total": [2.0, 8.0, 3.0, 1.0],
        "mean_lead_time_demand": [1.0, 3.0, 1.5, 0.5],
        "days_of_cover": [np.inf, 0.0, 9.0, 0.0],
    }
    frame = pl.DataFrame(rows).with_columns(
        (pl.col("suggested_order") * pl.col("unit_cost")).alias("order_value"),
        pl.Series("order_rank", [None, 2, 3, 1], dtype=pl.Int64),
    )
    for col, dtype in POLICY_COLUMNS.items():
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype).alias(col))
    frame = frame.select([pl.col(c).cast(t) for c, t in POLICY_COLUMNS.items()])
    lt = _lead_times()
    summary = {
        "today": TODAY.isoformat(),
        "stock_as_of": None,
        "n_items": 4,
        "policy": "sQ",
        "target_type": "fill_rate",
        "distribution": "auto",
        "n_to_order": 3,
        "order_value": 162.0,
        "stock_value": 8.0,
        "n_at_risk": 2,
        "mean_expected_fill_rate": 0.9,
    }
    return PlanResult(frame, lt, lt.rejected, TODAY, ["stock is old"], summary)


def test_context_ranks_orders_counts_bands_and_groups_categories() -> None:
    ctx = report_context(_plan(), source="erp")
    assert [r["unique_id"] for r in ctx["orders"]] == ["D", "B", "C"]
    assert [b["count"] for b in ctx["risk_bands"]] == [1, 0, 1, 2]
    assert [b["label"] for b in ctx["risk_bands"]] == [label for label, _, _ in RISK_BANDS]
    cats = {c["category"]: c for c in ctx["categories"]}
    assert cats["x"]["stock_value"] == 5.0 and cats["x"]["forecast_value"] == 2.0 + 80.0
    assert cats["(none)"]["order_value"] == 100.0
    assert cats["x"]["median_cover_days"] == 0.0  # the infinite cover is left out
    assert ctx["rejected_total"] == 1
    assert ctx["rejected_by_reason"][0]["reason"] == "unknown_po"
    # P3 (promised 03-15, 3 of 4 open) is overdue by 47 days; P4 has no promised date: expected
    # on 04-01 + C's mean lead time (its supplier S1's only completed line, P1: 8 days) = 04-09,
    # overdue by 22 days
    assert [(o["po_id"], o["days_overdue"], o["open_quantity"]) for o in ctx["overdue"]] == [
        ("P3", 47, 3.0),
        ("P4", 22, 2.0),
    ]
    assert ctx["overdue"][0]["supplier_name"] == "Acme & Co"


def test_html_escapes_erp_text_and_shows_every_section() -> None:
    html = render_inventory_report(_plan(), source="erp <db>")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>Bold</b>" not in html and "&lt;b&gt;Bold&lt;/b&gt;" in html
    assert "Acme &amp; Co" in html
    assert "erp &lt;db&gt;" in html
    assert "Open purchase orders (2, 2 overdue)" in html
    for section in ("summary", "suggested-orders", "stockout-risk", "open-orders", "lead-times"):
        assert f'<section id="{section}">' in html
    assert "Data quality: rejected rows (1)" in html
    assert "<li>stock is old</li>" in html
    orders = html.split('id="suggested-orders"')[1].split("</section>")[0]
    assert orders.index("<td>D</td>") < orders.index("<td>B</td>") < orders.index("<td>C</td>")
    assert "<td>A</td>" not in orders
