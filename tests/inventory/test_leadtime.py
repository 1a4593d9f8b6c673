"""Lead times, open quantities, supplier performance and rejected rows on hand-computed data."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparecast.errors import DataValidationError
from sparecast.inventory.leadtime import lead_time_stats

TODAY = date(2026, 5, 1)
D = date.fromisoformat


def _po(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "po_id": pl.String,
            "item_id": pl.String,
            "supplier_id": pl.String,
            "order_date": pl.Date,
            "quantity": pl.Float64,
            "promised_date": pl.Date,
        },
        orient="row",
    )


def _rc(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "po_id": pl.String,
            "item_id": pl.String,
            "receipt_date": pl.Date,
            "quantity": pl.Float64,
        },
        orient="row",
    )


ITEMS = pl.DataFrame({"item_id": ["A", "B", "C", "D"]})
SUPPLIERS = pl.DataFrame(
    {"supplier_id": ["S1", "S2"], "name": ["One", "Two"], "quoted_lead_time_days": [9.0, 30.0]}
)
POS = _po(
    [
        ("PO1", "A", "S1", D("2026-01-01"), 10.0, D("2026-01-11")),
        ("PO2", "A", "S1", D("2026-02-01"), 5.0, D("2026-02-11")),
        ("PO3", "A", "S1", D("2026-03-01"), 4.0, D("2026-03-11")),
        ("PO4", "B", "S1", D("2026-04-01"), 8.0, D("2026-04-11")),
        ("PO5", "C", "S2", D("2026-04-15"), 2.0, None),
        ("PO6", "C", "S2", D("2026-04-20"), 3.0, None),
    ]
)
RECEIPTS = _rc(
    [
        ("PO1", "A", D("2026-01-11"), 6.0),  # 10 days
        ("PO1", "A", D("2026-01-21"), 4.0),  # 20 days -> PO1: (6*10 + 4*20) / 10 = 14
        ("PO2", "A", D("2026-02-09"), 5.0),  # 8 days, 2 days early
        ("PO3", "A", D("2026-03-13"), 4.0),  # 12 days, 2 days late
        ("PO4", "B", D("2026-04-10"), 3.0),  # partial, 5 still open
        ("PO5", "C", D("2026-04-25"), 2.0),  # 10 days
    ]
)


def _stats(**kw):  # type: ignore[no-untyped-def]
    args = {"suppliers": SUPPLIERS, "items": ITEMS, "today": TODAY}
    args.update(kw)
    return lead_time_stats(args.pop("pos", POS), args.pop("receipts", RECEIPTS), **args)


def _row(df: pl.DataFrame, **key: str) -> dict:
    out = df
    for k, v in key.items():
        out = out.filter(pl.col(k) == v)
    assert out.height == 1, (key, out)
    return out.row(0, named=True)


def test_partial_receipts_weighted_by_quantity_and_item_level_stats() -> None:
    a = _row(_stats().per_item, item_id="A")
    assert a["lead_time_source"] == "item_supplier"
    assert a["supplier_id"] == "S1"
    assert a["n_orders"] == 3
    assert a["lead_time_samples_days"] == [14.0, 8.0, 12.0]  # in order of completion
    assert a["lead_time_mean_days"] == pytest.approx(34 / 3)
    assert a["lead_time_std_days"] == pytest.approx(np.std([14, 8, 12], ddof=1))


def test_fallbacks_supplier_then_global() -> None:
    per = _stats().per_item
    b = _row(per, item_id="B")  # no completed PO of its own: S1's three
    assert (b["supplier_id"], b["n_orders"], b["lead_time_source"]) == ("S1", 0, "supplier")
    assert b["lead_time_samples_days"] == [14.0, 8.0, 12.0]
    c = _row(per, item_id="C")  # one own PO, S2 has one too: global (PO1, PO2, PO3, PO5)
    assert (c["supplier_id"], c["n_orders"], c["lead_time_source"]) == ("S2", 1, "global")
    assert c["lead_time_samples_days"] == [14.0, 8.0, 12.0, 10.0]
    assert c["lead_time_mean_days"] == pytest.approx(11.0)
    d = _row(per, item_id="D")  # no PO at all
    assert d["supplier_id"] is None and d["lead_time_source"] == "global"
    assert per["item_id"].to_list() == ["A", "B", "C", "D"]
    # with min_orders=1 C uses its own single PO, std 0
    c1 = _row(_stats(min_orders=1).per_item, item_id="C")
    assert c1["lead_time_source"] == "item_supplier"
    assert (c1["lead_time_mean_days"], c1["lead_time_std_days"]) == (10.0, 0.0)


def test_samples_for_in_the_order_asked_with_global_for_unknown_items() -> None:
    res = _stats()
    got = res.samples_for(["C", "A", "X", "B"])
    assert [g.tolist() for g in got] == [
        [14.0, 8.0, 12.0, 10.0],
        [14.0, 8.0, 12.0],
        [14.0, 8.0, 12.0, 10.0],  # X is unknown: the global samples
        [14.0, 8.0, 12.0],
    ]
    assert all(g.dtype == np.float64 for g in got)
    assert res.samples_for([]) == []


def test_max_samples_keeps_the_most_recent_orders() -> None:
    a = _row(_stats(max_samples=2).per_item, item_id="A")
    assert a["lead_time_samples_days"] == [8.0, 12.0]
    assert a["lead_time_mean_days"] == pytest.approx(10.0)


def test_samples_are_the_lines_completed_last_not_ordered_last() -> None:
    """X ordered first, 40 days; Y ordered later, 5 days, completed before X: the last
    completed line is X (by order date it would be the fast Y)."""
    pos = _po(
        [
            ("X", "A", "S1", D("2026-01-01"), 1.0, None),
            ("Y", "A", "S1", D("2026-01-20"), 1.0, None),
        ]
    )
    rc = _rc([("X", "A", D("2026-02-10"), 1.0), ("Y", "A", D("2026-01-25"), 1.0)])
    res = lead_time_stats(pos, rc, min_orders=1, max_samples=1, today=TODAY)
    assert _row(res.per_item, item_id="A")["lead_time_samples_days"] == [40.0]
    assert res.global_samples.tolist() == [40.0]


def test_quoted_lead_time_when_nothing_was_received_and_error_without_it() -> None:
    res = _stats(receipts=RECEIPTS.head(0), items=ITEMS.head(3))  # A, B, C have suppliers
    per = res.per_item
    assert _row(per, item_id="A")["lead_time_source"] == "quoted"
    assert _row(per, item_id="A")["lead_time_samples_days"] == [9.0]
    assert _row(per, item_id="C")["lead_time_mean_days"] == 30.0
    with pytest.raises(DataValidationError, match="quoted_lead_time_days"):
        _stats(receipts=RECEIPTS.head(0))  # D has no supplier: nothing known


def test_open_orders_and_quantities() -> None:
    res = _stats()
    oo = res.open_orders
    assert oo["po_id"].to_list() == ["PO4", "PO6"]
    po4 = _row(oo, po_id="PO4")
    assert (po4["ordered_quantity"], po4["received_quantity"], po4["open_quantity"]) == (
        8.0,
        3.0,
        5.0,
    )
    assert po4["expected_date"] == D("2026-04-11") and po4["overdue"] is True
    po6 = _row(oo, po_id="PO6")  # no promised date: order date + round(C's mean 11)
    assert po6["expected_date"] == D("2026-05-01") and po6["overdue"] is False
    oq = res.open_quantity
    assert oq["item_id"].to_list() == ["B", "C"]
    assert oq["open_quantity"].to_list() == [5.0, 3.0]
    np.testing.assert_array_equal(res.open_quantity_for(["A", "B", "C", "X"]), [0, 5, 3, 0])


def test_supplier_on_time_delay_and_fill_rate() -> None:
    sup = _stats().suppliers
    s1 = _row(sup, supplier_id="S1")
    assert (s1["n_orders"], s1["n_completed"], s1["n_due"]) == (4, 3, 4)
    assert s1["on_time_rate"] == pytest.approx(1 / 4)  # only PO2 in full by its promised date
    assert s1["mean_delay_days"] == pytest.approx((10 + 0 + 2) / 3)
    assert s1["fill_rate"] == pytest.approx((6 + 5 + 0 + 3) / (10 + 5 + 4 + 8))
    assert s1["lead_time_mean_days"] == pytest.approx(34 / 3)
    assert s1["name"] == "One" and s1["quoted_lead_time_days"] == 9.0
    s2 = _row(sup, supplier_id="S2")  # no promised dates: no rates
    assert s2["on_time_rate"] is None and s2["fill_rate"] is None
    assert s2["mean_delay_days"] is None
    assert s2["lead_time_mean_days"] == 10.0


def test_over_delivery_completes_the_line_and_caps_the_fill_rate() -> None:
    pos = _po([("X", "A", "S1", D("2026-01-01"), 5.0, D("2026-01-11"))])
    rc = _rc([("X", "A", D("2026-01-05"), 4.0), ("X", "A", D("2026-01-09"), 3.0)])
    res = lead_time_stats(pos, rc, min_orders=1, today=TODAY)
    assert res.open_orders.height == 0
    assert _row(res.per_item, item_id="A")["lead_time_samples_days"] == [
        pytest.approx((4 * 4 + 3 * 8) / 7)
    ]
    s1 = _row(res.suppliers, supplier_id="S1")
    assert (s1["on_time_rate"], s1["fill_rate"], s1["mean_delay_days"]) == (1.0, 1.0, 0.0)


def _strings(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(pl.all().cast(pl.String))


def test_every_kind_of_bad_row_is_reported_and_excluded() -> None:
    bad_pos = pl.DataFrame(
        [
            (None, "A", "S1", "2026-01-05", "1", None),  # missing_po_id
            ("PX1", "A", "S1", "yesterday", "1", None),  # bad_order_date
            ("PX2", "A", None, "2026-01-05", "1", None),  # missing_supplier_id
            ("PX3", "ZZ", "S1", "2026-01-05", "1", None),  # unknown_item
            ("PX4", "A", "S9", "2026-01-05", "1", None),  # unknown_supplier
            ("PX5", "A", "S1", "2026-01-05", "-5", None),  # non_positive_quantity
            ("PX6", "A", "S1", "2026-06-01", "1", None),  # future_order_date
            ("PX7", "A", "S1", "2026-01-05", "1", "2026-01-01"),  # promised_before_order
            ("PO1", "A", "S1", "2026-01-01", "10", "2026-01-11"),  # duplicate_po_line
        ],
        schema=list(POS.columns),
        orient="row",
    )
    bad_rc = pl.DataFrame(
        [
            ("PO2", "A", "2026-02-09", "-1"),  # non_positive_quantity
            ("PO2", "A", "2026-05-02", "1"),  # future_receipt
            ("PO99", "A", "2026-02-09", "1"),  # unknown_po
            ("PO1", "B", "2026-01-15", "1"),  # item_not_on_po
            ("PX5", "A", "2026-01-15", "1"),  # rejected_po
            ("PO3", "A", "2026-02-20", "1"),  # receipt_before_order
            ("PO3", "A", None, "1"),  # missing_receipt_date
            ("PO3", "A", "2026-03-20", "lots"),  # bad_quantity
        ],
        schema=list(RECEIPTS.columns),
        orient="row",
    )
    pos = pl.concat([_strings(POS), bad_pos])
    receipts = pl.concat([_strings(RECEIPTS), bad_rc])
    dirty = _stats(pos=pos, receipts=receipts)
    clean = _stats()
    rej = dirty.rejected
    got_po = rej.filter(pl.col("table") == "purchase_orders").sort("input_row")
    assert got_po["reason"].to_list() == [
        "missing_po_id",
        "bad_order_date",
        "missing_supplier_id",
        "unknown_item",
        "unknown_supplier",
        "non_positive_quantity",
        "future_order_date",
        "promised_before_order",
        "duplicate_po_line",
    ]
    assert got_po["input_row"].to_list() == list(range(6, 15))
    got_rc = rej.filter(pl.col("table") == "receipts").sort("input_row")
    assert got_rc["reason"].to_list() == [
        "non_positive_quantity",
        "future_receipt",
        "unknown_po",
        "item_not_on_po",
        "rejected_po",
        "receipt_before_order",
        "missing_receipt_date",
        "bad_quantity",
    ]
    assert got_rc["input_row"].to_list() == list(range(6, 14))
    assert got_rc.filter(pl.col("reason") == "receipt_before_order")["detail"].item() == (
        "quantity=1.0 receipt_date=2026-02-20 order_date=2026-03-01"
    )
    # nothing bad was used: every result equals the clean one
    for name in ("per_item", "per_item_supplier", "open_orders", "open_quantity", "suppliers"):
        got, want = getattr(dirty, name), getattr(clean, name)
        assert got.equals(want), (name, got, want)
    assert clean.rejected.height == 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # item
            st.integers(0, 60),  # order day
            st.integers(1, 20),  # quantity
            st.lists(st.tuples(st.integers(-5, 40), st.integers(-2, 12)), max_size=3),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_properties_on_random_purchase_history(orders: list) -> None:
    """Rows in = used + rejected; received + open = ordered; lead times within the observed
    receipt lead times; open quantities never negative."""
    base = date(2026, 1, 1)
    po_rows, rc_rows = [], []
    for k, (item, day, qty, parts) in enumerate(orders):
        od = base + np.timedelta64(day, "D").item()
        po_rows.append((f"P{k}", f"I{item}", "S1", od, float(qty), None))
        for offset, rq in parts:
            rc_rows.append(
                (f"P{k}", f"I{item}", od + np.timedelta64(offset, "D").item(), float(rq))
            )
    pos, receipts = _po(po_rows), _rc(rc_rows)
    today = date(2026, 3, 15)

    def completed(day: int, qty: int, parts: list) -> bool:
        usable = [q for o, q in parts if o >= 0 and q > 0 and day + o <= (today - base).days]
        return sum(usable) >= qty

    any_completed = any(completed(d, q, p) for _, d, q, p in orders)
    if not any_completed:  # nothing to learn from and no quoted lead time: a clear error
        with pytest.raises(DataValidationError, match="no lead time can be estimated"):
            lead_time_stats(pos, receipts, min_orders=1, today=today)
        return
    res = lead_time_stats(pos, receipts, min_orders=1, today=today)
    rejected_rows = res.rejected.filter(pl.col("table") == "receipts")["input_row"]
    used = receipts.with_row_index("row").filter(
        ~pl.col("row").cast(pl.Int64).is_in(rejected_rows.implode())
    )
    assert (used["quantity"] > 0).all()
    assert (used["receipt_date"] <= today).all()
    offsets = [o for _, d, _, parts in orders for o, q in parts if 0 <= o and q > 0]
    assert res.per_item["lead_time_mean_days"].min() >= min(offsets) - 1e-9
    assert res.per_item["lead_time_mean_days"].max() <= max(offsets) + 1e-9
    assert (res.open_orders["open_quantity"] > 0).all()
    oo = res.open_orders
    np.testing.assert_allclose(
        oo["received_quantity"] + oo["open_quantity"], oo["ordered_quantity"]
    )
    n_closed = sum(completed(d, q, p) for _, d, q, p in orders)
    assert res.open_orders.height == len(orders) - n_closed


def test_an_items_quoted_lead_time_comes_after_its_own_orders_and_before_the_pools() -> None:
    items = ITEMS.with_columns(
        pl.Series("lead_time_days", ["20", "25", "", "40"]),
        pl.Series("lead_time_std_days", [None, 5.0, None, None]),
    )
    per = _stats(items=items).per_item
    a, b, c, d = (_row(per, item_id=i) for i in "ABCD")
    assert a["lead_time_source"] == "item_supplier"  # 3 completed lines of its own beat a quote
    assert (b["lead_time_source"], c["lead_time_source"]) == ("quoted", "global")
    # B's quote (25 ± 5 days) replaces the pooled S1 lead times: 25 samples, exactly 25 and 5
    assert len(b["lead_time_samples_days"]) == 25
    assert b["lead_time_mean_days"] == pytest.approx(25.0)
    assert b["lead_time_std_days"] == pytest.approx(5.0)
    assert (d["lead_time_samples_days"], d["lead_time_std_days"]) == ([40.0], 0.0)


def test_quote_samples_are_the_normal_quantiles_cut_at_zero() -> None:
    from statistics import NormalDist

    from sparecast.inventory.leadtime import quote_samples

    assert quote_samples(12.0) == [12.0] and quote_samples(12.0, 0.0) == [12.0]
    s = np.array(quote_samples(10.0, 2.0))
    z = np.array([NormalDist().inv_cdf((k + 0.5) / 25) for k in range(25)])
    np.testing.assert_allclose(s, 10.0 + 2.0 * z / z.std(ddof=1))
    assert s.mean() == pytest.approx(10.0) and s.std(ddof=1) == pytest.approx(2.0)
    assert min(quote_samples(1.0, 5.0)) == 0.0


def test_default_lead_time_when_nothing_is_known() -> None:
    no_receipts = RECEIPTS.head(0)
    with pytest.raises(DataValidationError, match="no lead time can be estimated"):
        _stats(receipts=no_receipts, suppliers=None)
    per = _stats(receipts=no_receipts, suppliers=None, default_days=21.0).per_item
    assert per["lead_time_source"].to_list() == ["default"] * 4
    assert per["lead_time_mean_days"].to_list() == [21.0] * 4
    # a supplier's quote still beats the default; the item's own quote beats both
    items = ITEMS.with_columns(pl.Series("lead_time_days", [None, None, None, 5.0]))
    per = _stats(receipts=no_receipts, items=items, default_days=21.0).per_item
    assert per["lead_time_source"].to_list() == ["quoted", "quoted", "quoted", "quoted"]
    assert per["lead_time_mean_days"].to_list() == [9.0, 9.0, 30.0, 5.0]
