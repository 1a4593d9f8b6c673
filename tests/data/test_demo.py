from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from sparecast.data.demo import generate_demo_erp
from sparecast.data.schema import TABLE_SCHEMAS, validate_tables


@pytest.fixture(scope="module")
def erp() -> dict[str, pl.DataFrame]:
    return generate_demo_erp()


def _day_share(erp: dict[str, pl.DataFrame], n_days: int) -> pl.DataFrame:
    days = (
        erp["demand"]
        .filter(pl.col("quantity") > 0)
        .group_by("item_id")
        .agg(pl.col("date").n_unique().alias("days"))
    )
    return (
        erp["items"]
        .select("item_id")
        .join(days, on="item_id", how="left")
        .with_columns((pl.col("days").fill_null(0) / n_days).alias("share"))
    )


def test_deterministic_by_seed() -> None:
    a = generate_demo_erp(n_items=300, n_days=120, seed=7)
    b = generate_demo_erp(n_items=300, n_days=120, seed=7)
    c = generate_demo_erp(n_items=300, n_days=120, seed=8)
    for name in a:
        assert a[name].equals(b[name]), name
    assert not a["demand"].equals(c["demand"])


def test_canonical_schemas_and_clean(erp: dict[str, pl.DataFrame]) -> None:
    for name, frame in erp.items():
        assert frame.schema == TABLE_SCHEMAS[name], name
    results = validate_tables(erp, today=date(2026, 10, 31))
    for name, res in results.items():
        assert res.report.rows_rejected == 0, (name, res.report.counts)
    assert erp["items"].height == 2016
    assert erp["items"]["item_id"].n_unique() == 2016


def test_window_and_sparsity_profile(erp: dict[str, pl.DataFrame]) -> None:
    d = erp["demand"]
    assert d["date"].min() >= date(2025, 11, 1) and d["date"].max() <= date(2026, 10, 31)
    share = _day_share(erp, 365)["share"]
    assert 0.85 <= float((share < 0.10).mean()) <= 0.95
    regular = share > 0.10
    assert 0.02 <= float(regular.mean()) <= 0.15
    assert int((share > 0.5).sum()) >= 10  # some very regular items
    assert 0.01 <= float((share == 0).mean()) <= 0.15  # some items without any demand
    # a spread among the sparse ones: many under 2%, some between 2% and 10%
    assert float((share > 0).mean()) > 0.8
    assert float(((share > 0.02) & (share < 0.10)).mean()) > 0.15
    assert float(((share > 0) & (share <= 0.02)).mean()) > 0.3


def test_lumpy_sizes_returns_and_weekly_pattern(erp: dict[str, pl.DataFrame]) -> None:
    d = erp["demand"]
    pos = d.filter(pl.col("quantity") > 0)["quantity"]
    assert pos.max() > 20 * pos.median()  # occasional big orders
    n_returns = int((d["quantity"] < 0).sum())
    assert 0 < n_returns < 0.02 * d.height
    wd = d.filter(pl.col("quantity") > 0).group_by(pl.col("date").dt.weekday().alias("wd")).len()
    counts = dict(zip(wd["wd"].to_list(), wd["len"].to_list(), strict=True))
    assert counts[1] > 1.5 * counts.get(7, 0)  # Mondays busier than Sundays
    assert set(erp["items"]["category"].unique()) >= {"bearings", "seals", "filters", "electrical"}
    assert erp["items"]["unit_cost"].min() > 0


def test_suppliers_pos_receipts(erp: dict[str, pl.DataFrame]) -> None:
    sup, pos, rec = erp["suppliers"], erp["purchase_orders"], erp["receipts"]
    assert 20 <= sup.height <= 40
    assert sup["quoted_lead_time_days"].n_unique() > 5
    assert pos["po_id"].n_unique() == pos.height
    assert pos["order_date"].min() < date(2025, 11, 1)  # history before the window
    assert pos["order_date"].max() <= date(2026, 10, 31)
    assert set(pos["supplier_id"].unique()) <= set(sup["supplier_id"])
    joined = rec.join(pos, on="po_id", suffix="_po")
    assert joined.height == rec.height
    assert (joined["receipt_date"] >= joined["order_date"]).all()  # no receipt before its order
    assert (joined["item_id"] == joined["item_id_po"]).all()
    assert rec["receipt_date"].max() <= date(2026, 10, 31)
    late = joined.filter(pl.col("receipt_date") > pl.col("promised_date"))
    assert 0.03 < late.height / rec.height < 0.6
    per_po = rec.group_by("po_id").agg(pl.len().alias("n"), pl.col("quantity").sum().alias("got"))
    assert per_po.filter(pl.col("n") == 2).height > 0.03 * pos.height  # partial deliveries
    status = pos.join(per_po, on="po_id", how="left").with_columns(pl.col("got").fill_null(0))
    assert (status["got"] <= status["quantity"]).all()
    open_pos = status.filter(pl.col("got") < pl.col("quantity"))
    assert open_pos.height > 0
    assert open_pos["order_date"].max() > date(2026, 9, 1)
    # each item has a main supplier: most of its POs go to one supplier
    top = (
        pos.group_by("item_id", "supplier_id")
        .len()
        .group_by("item_id")
        .agg((pl.col("len").max() / pl.col("len").sum()).alias("top"))
    )
    assert float(top["top"].mean()) > 0.8


def test_stock(erp: dict[str, pl.DataFrame]) -> None:
    st = erp["stock"]
    assert st.height == 2016
    assert (st["on_hand"] >= 0).all()
    assert (st["as_of"] == date(2026, 10, 31)).all()
    assert 0 < float((st["on_hand"] == 0).mean()) < 0.5


def test_small_and_other_end_date() -> None:
    t = generate_demo_erp(n_items=5, n_days=10, seed=3, end_date=date(2024, 2, 29))
    assert t["items"].height == 5
    assert t["demand"].height == 0 or t["demand"]["date"].max() <= date(2024, 2, 29)
    with pytest.raises(ValueError):
        generate_demo_erp(n_items=0)


@pytest.mark.slow
def test_large_generation_is_fast_and_sparse() -> None:
    import time

    t0 = time.perf_counter()
    t = generate_demo_erp(n_items=100_000, n_days=730, seed=1)
    elapsed = time.perf_counter() - t0
    assert elapsed < 15
    assert t["items"].height == 100_000
    assert 0.02 < t["demand"].height / (100_000 * 730) < 0.1
