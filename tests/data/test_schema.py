from __future__ import annotations

import json
from datetime import date

import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparecast.data.schema import (
    DEMAND_REASONS,
    validate_demand,
    validate_long,
    validate_table,
    validate_tables,
)
from sparecast.errors import DataValidationError


def _demand(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"item_id": pl.String, "date": pl.String, "quantity": pl.String}, orient="row"
    )


def _one_reason(row: tuple, **kwargs) -> str | None:
    res = validate_demand(_demand([row]), **kwargs)
    assert res.valid.height + res.rejected.height == 1
    return res.rejected["reason"][0] if res.rejected.height else None


@pytest.mark.parametrize(
    ("row", "kwargs", "reason"),
    [
        ((None, "2024-01-02", "1"), {}, "missing_item"),
        (("  ", "2024-01-02", "1"), {}, "missing_item"),
        (("Z9", "2024-01-02", "1"), {"known_items": ["A"]}, "unknown_item"),
        (("A", None, "1"), {}, "missing_date"),
        (("A", "", "1"), {}, "missing_date"),
        (("A", "yesterday", "1"), {}, "bad_date"),
        (("A", "2024-02-30", "1"), {}, "bad_date"),
        (("A", "2030-01-01", "1"), {"today": date(2025, 1, 1)}, "future_date"),
        (("A", "2020-01-01", "1"), {"window_start": "2023-01-01"}, "outside_window"),
        (("A", "2024-06-01", "1"), {"window_end": date(2024, 5, 31)}, "outside_window"),
        (("A", "2024-01-02", None), {}, "missing_quantity"),
        (("A", "2024-01-02", " "), {}, "missing_quantity"),
        (("A", "2024-01-02", "ten"), {}, "non_numeric_quantity"),
        (("A", "2024-01-02", "nan"), {}, "non_numeric_quantity"),
        (("A", "2024-01-02", "inf"), {}, "non_numeric_quantity"),
        (("A", "2024-01-02", "1"), {"known_items": ["A"], "today": "2024-01-02"}, None),
    ],
)
def test_each_reason(row: tuple, kwargs: dict, reason: str | None) -> None:
    assert _one_reason(row, **kwargs) == reason


def test_lenient_parsing_and_canonical_types() -> None:
    df = _demand(
        [
            (" A ", "2024-1-3", " 2.5 "),
            ("A", "2024-01-04 13:45:00", "1e1"),
            ("A", "2024/01/05", "-1"),
            ("A", "20240106", "0"),
            ("A", "07.01.2024", "3"),
            ("A", "2024-01-08T08:00:00Z", "4"),
        ]
    )
    res = validate_demand(df)
    assert res.rejected.height == 0
    assert res.valid.schema == {"item_id": pl.String, "date": pl.Date, "quantity": pl.Float64}
    assert res.valid["item_id"].to_list() == ["A"] * 6
    assert res.valid["date"].to_list() == [date(2024, 1, d) for d in range(3, 9)]
    assert res.valid["quantity"].to_list() == [2.5, 10.0, -1.0, 0.0, 3.0, 4.0]
    assert res.report.returns == 1


def test_typed_input_and_pandas() -> None:
    pdf = pd.DataFrame(
        {
            "item_id": ["A", "B"],
            "date": pd.to_datetime(["2024-01-02 00:00", "2024-01-03 10:00"]),
            "quantity": [1, 2],
        }
    )
    res = validate_demand(pdf)
    assert res.valid["date"].to_list() == [date(2024, 1, 2), date(2024, 1, 3)]
    assert res.valid["quantity"].dtype == pl.Float64


def test_duplicates_exact_rule_and_line_id() -> None:
    rows = [("A", "2024-01-02", "1"), ("A", "2024-01-02", "1.0"), ("A", "2024-01-02", "2")]
    res = validate_demand(_demand(rows))
    # the same item/date/quantity (after parsing) is a duplicate; a different quantity is not
    assert res.rejected["reason"].to_list() == ["duplicate"]
    assert res.rejected["input_row"].to_list() == [1]
    assert res.valid.height == 2
    # with line ids, two identical issues on one day are both kept; a repeated line id is not
    with_lines = _demand(rows + [("A", "2024-01-09", "5")]).with_columns(
        line_id=pl.Series(["L1", "L2", "L3", "L1"])
    )
    res = validate_demand(with_lines)
    assert res.valid.height == 3
    assert res.rejected["reason"].to_list() == ["duplicate"]
    assert res.rejected["input_row"].to_list() == [3]
    assert res.valid.columns == ["item_id", "date", "quantity"]


def test_duplicate_of_a_rejected_row_is_not_counted_twice() -> None:
    rows = [("A", "bad", "1"), ("A", "bad", "1")]
    res = validate_demand(_demand(rows))
    assert res.rejected["reason"].to_list() == ["bad_date", "bad_date"]


def test_rejected_rows_are_as_they_came_and_report() -> None:
    rows = [("A", "2024-01-02", "1")] + [("A", "2024-99-01", str(i)) for i in range(5)]
    rows += [("X", "2024-01-03", "-2"), ("A", "2024-01-04", "-3")]
    res = validate_demand(_demand(rows), known_items=pl.DataFrame({"item_id": ["A"]}))
    assert res.rejected.columns == ["input_row", "item_id", "date", "quantity", "reason"]
    assert (
        res.rejected.filter(pl.col("reason") == "bad_date")["date"].to_list() == ["2024-99-01"] * 5
    )
    rep = res.report
    assert (rep.rows_in, rep.rows_kept, rep.rows_rejected) == (8, 2, 6)
    assert rep.counts == {"unknown_item": 1, "bad_date": 5}
    assert len(rep.examples["bad_date"]) == 3
    assert rep.returns == 1
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["counts"]["bad_date"] == 5 and d["date_min"] == "2024-01-02"
    lines = rep.summary_lines()
    assert lines[0].startswith("demand: 8 rows in, 2 kept, 6 rejected")
    assert any("bad_date: 5" in line and "2024-99-01" in line for line in lines)
    with pytest.raises(DataValidationError, match=r"6 of 8 rows rejected.*unknown_item 1.*'X'"):
        rep.raise_if_rejected()


def test_clean_input_does_not_raise() -> None:
    res = validate_demand(_demand([("A", "2024-01-02", "1")]))
    res.report.raise_if_rejected()
    assert res.report.ok


def test_missing_columns_named() -> None:
    with pytest.raises(
        DataValidationError, match=r"demand lacks required column\(s\) \['quantity'\]"
    ):
        validate_demand(pl.DataFrame({"item_id": ["A"], "date": ["2024-01-01"]}))
    with pytest.raises(DataValidationError, match=r"\['y'\]"):
        validate_long(pl.DataFrame({"unique_id": ["A"], "ds": ["2024-01-01"]}))


def test_validate_long_maps_to_canonical() -> None:
    df = pl.DataFrame(
        {"unique_id": ["a", "a", "b"], "ds": ["2024-01-01", "x", "2024-01-02"], "y": [1, 2, 3]}
    )
    res = validate_long(df, known_items=["a", "b"])
    assert res.valid.columns == ["item_id", "date", "quantity"]
    assert res.valid.height == 2
    assert res.rejected.columns == ["input_row", "unique_id", "ds", "y", "reason"]
    assert res.rejected["reason"].to_list() == ["bad_date"]


def test_other_tables_required_columns_and_null_keys() -> None:
    with pytest.raises(
        DataValidationError,
        match=r"purchase_orders lacks required column\(s\) \['supplier_id', 'order_date'\]",
    ):
        validate_table(
            "purchase_orders", pl.DataFrame({"po_id": ["1"], "item_id": ["A"], "quantity": [1]})
        )
    pos = pl.DataFrame(
        {
            "po_id": ["PO1", None, "PO3", "PO4"],
            "item_id": ["A", "A", "A", "A"],
            "supplier_id": ["S1", "S1", "S1", "S1"],
            "order_date": ["2024-01-01", "2024-01-01", "soon", "2024-01-03"],
            "quantity": ["5", "5", "5", "5"],
        }
    )
    res = validate_table("purchase_orders", pos)
    assert res.report.counts == {"missing_po_id": 1, "bad_order_date": 1}
    assert res.valid.height + res.rejected.height == 4
    assert res.valid.schema["order_date"] == pl.Date
    assert res.valid.schema["promised_date"] == pl.Date  # optional column added as nulls

    items = pl.DataFrame(
        {"item_id": ["A", "A", "B"], "unit_cost": ["1.5", "2", "x"], "plant": [1, 2, 3]}
    )
    res = validate_table("items", items)
    assert res.report.counts == {"duplicate": 1}
    assert res.valid["active"].to_list() == [True, True]
    assert res.valid["unit_cost"].to_list() == [1.5, None]  # bad non-key value -> null
    assert "plant" in res.valid.columns


def test_validate_tables_checks_demand_against_items() -> None:
    out = validate_tables(
        {
            "items": pl.DataFrame({"item_id": ["A"]}),
            "demand": _demand([("A", "2024-01-01", "1"), ("B", "2024-01-01", "1")]),
        }
    )
    assert out["demand"].report.counts == {"unknown_item": 1}


_ITEMS = st.sampled_from(["A", "B", "C", "", " ", None, "Z"])
_DATES = st.sampled_from(
    [
        "2024-01-01",
        "2024-01-02",
        "2024-1-3",
        "2030-01-01",
        "2019-12-31",
        "bad",
        "",
        None,
        "2024-02-30",
    ]
)
_QTYS = st.sampled_from(["1", "1.0", "2", "-1", "0", "x", "", None, "nan", " 3 "])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(_ITEMS, _DATES, _QTYS), max_size=40),
    use_known=st.booleans(),
    use_window=st.booleans(),
    use_lines=st.booleans(),
)
def test_no_row_is_lost(
    rows: list[tuple], use_known: bool, use_window: bool, use_lines: bool
) -> None:
    df = _demand(rows)
    if use_lines:
        df = df.with_columns(
            line_id=pl.Series([str(i % 7) for i in range(len(rows))], dtype=pl.String)
        )
    kwargs: dict = {"today": date(2025, 1, 1)}
    if use_known:
        kwargs["known_items"] = ["A", "B", "C"]
    if use_window:
        kwargs["window_start"] = date(2024, 1, 1)
    res = validate_demand(df, **kwargs)
    rep = res.report
    assert res.valid.height + res.rejected.height == len(rows) == rep.rows_in
    assert rep.rows_kept == res.valid.height and rep.rows_rejected == res.rejected.height
    assert sum(rep.counts.values()) == rep.rows_rejected
    assert set(rep.counts) <= set(DEMAND_REASONS)
    assert sorted(res.rejected["input_row"].to_list()) == sorted(
        set(res.rejected["input_row"].to_list())
    )
    assert res.valid.null_count().row(0) == (0, 0, 0)
    if not use_lines:
        assert not res.valid.is_duplicated().any()
