"""Extreme demand quantities: the rule (sparecast.data.outliers), the three actions in
validation, the accounting of rows, and the effect on a forecast."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparecast
from sparecast.data.outliers import DEFAULT_OUTLIER_ACTION, extreme_thresholds
from sparecast.data.panel import DemandPanel
from sparecast.data.schema import validate_demand, validate_long
from sparecast.errors import DataValidationError

# Item A: positive quantities 2,3,1,2,4,2,3,1 and 1e12 -> median 2; the only item with a known
# median, so the overall typical size is 2 too; threshold 100 * 2 = 200.
_A = [2, 0, 3, 1, 2, 0, 4, 2, 3, 1]


def _frame(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["item_id", "date", "quantity"], orient="row")


def _a_with_spike() -> pl.DataFrame:
    rows = [("A", f"2024-01-{d:02d}", float(q)) for d, q in zip(range(1, 11), _A, strict=True)]
    return _frame(rows + [("A", "2024-01-11", 1e12)])


def test_default_action_is_reject() -> None:
    assert DEFAULT_OUTLIER_ACTION == "reject"
    assert sparecast.Settings().data.outlier_action == "reject"
    assert sparecast.Settings().data.outlier_factor == 100.0


def test_thresholds_hand_computed() -> None:
    thr = extreme_thresholds(_a_with_spike(), factor=100.0)
    assert thr.to_list() == [200.0] * 11


def test_1e12_row_rejected_by_default() -> None:
    res = validate_demand(_a_with_spike())
    assert res.valid.height == 10
    assert res.valid["quantity"].max() == 4.0
    assert res.rejected["reason"].to_list() == ["extreme_quantity"]
    assert res.rejected["quantity"].to_list() == ["1000000000000.0"]
    assert res.report.rows_rejected == 1 and res.report.rows_flagged == 0
    assert res.report.counts == {"extreme_quantity": 1}
    assert res.report.examples["extreme_quantity"][0]["threshold"] == 200.0
    with pytest.raises(DataValidationError, match="extreme_quantity 1"):
        res.report.raise_if_rejected()  # --strict


def test_1e12_row_capped() -> None:
    res = validate_demand(_a_with_spike(), outlier_action="cap")
    assert res.valid.height == 11
    assert res.valid["quantity"].to_list()[-1] == 200.0
    assert res.rejected["reason"].to_list() == ["extreme_quantity_capped"]
    assert res.rejected["quantity"].to_list() == ["1000000000000.0"]  # the original value
    assert res.report.rows_rejected == 0 and res.report.rows_flagged == 1
    assert "1 flagged (kept)" in res.report.summary_lines()[0]
    res.report.raise_if_rejected()  # kept rows do not fail --strict


def test_1e12_row_reported() -> None:
    res = validate_demand(_a_with_spike(), outlier_action="report")
    assert res.valid.height == 11
    assert res.valid["quantity"].to_list()[-1] == 1e12
    assert res.rejected["reason"].to_list() == ["extreme_quantity_reported"]
    assert res.report.rows_flagged == 1 and res.report.rows_rejected == 0
    assert res.report.to_dict()["rows_flagged"] == 1


def test_lumpy_but_plausible_rows_kept() -> None:
    # 40 and 60 times the item's median, 1000-unit orders of an item that orders in hundreds.
    rows = [("L", f"2024-01-{d:02d}", q) for d, q in enumerate([1, 1, 1, 40, 0, 1, 60], 1)]
    rows += [("H", f"2024-01-{d:02d}", q) for d, q in enumerate([200, 300, 1000, 250], 1)]
    res = validate_demand(_frame([(i, d, float(q)) for i, d, q in rows]))
    assert res.report.ok and res.report.rows_flagged == 0
    assert res.valid.height == len(rows)


def test_one_demand_judged_by_its_category() -> None:
    rows = []
    for item, size in (("B1", 1), ("B2", 2), ("B3", 3), ("E1", 100), ("E2", 200), ("E3", 300)):
        rows += [(item, f"2024-01-0{d}", float(size)) for d in (1, 2, 3)]
    # One demand each (no median of their own): 500 bolts is extreme, 500 engines parts not.
    rows += [("B4", "2024-01-05", 500.0), ("E4", "2024-01-05", 500.0)]
    cats = {f"B{i}": "bolts" for i in range(1, 5)} | {f"E{i}": "engines" for i in range(1, 5)}
    res = validate_demand(_frame(rows), categories=cats)
    assert res.rejected["item_id"].to_list() == ["B4"]
    thr = dict(
        zip(
            res.rejected["item_id"],
            [e["threshold"] for e in res.report.examples["extreme_quantity"]],
            strict=True,
        )
    )
    assert thr == {"B4": 300.0}  # 100 x the 0.9 quantile (nearest) of medians 1, 2, 3
    # The items frame works as well as a mapping.
    items = pl.DataFrame({"item_id": list(cats), "category": list(cats.values())})
    assert validate_demand(_frame(rows), categories=items).rejected["item_id"].to_list() == ["B4"]


def test_long_format_and_bad_action() -> None:
    long = _a_with_spike().rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    res = validate_long(long, outlier_action="cap", outlier_factor=10.0)
    assert res.valid["quantity"].max() == 20.0
    with pytest.raises(DataValidationError, match="outlier_action"):
        validate_long(long, outlier_action="drop")


_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(1, 28),
        st.one_of(
            st.floats(-5, 50, allow_nan=False),
            st.sampled_from([0.0, 1e12, 5000.0, 1.0]),
        ),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows, st.floats(1.5, 200))
def test_no_row_lost_and_cap_never_raises(rows: list, factor: float) -> None:
    df = _frame([(i, f"2024-02-{d:02d}", q) for i, d, q in rows])
    results = {
        a: validate_demand(df, outlier_action=a, outlier_factor=factor)
        for a in ("report", "cap", "reject")
    }
    for res in results.values():
        rep = res.report
        assert res.valid.height + rep.rows_rejected == rep.rows_in == len(rows)
        assert res.rejected.height == rep.rows_rejected + rep.rows_flagged
    reported, capped = results["report"].valid, results["cap"].valid
    assert capped.height == reported.height
    # capping never raises a quantity's size (returns are judged by |q|: -1 may become -0.5)
    assert (capped["quantity"].abs() <= reported["quantity"].abs()).all()


def _daily_rows(with_spike: bool) -> pl.DataFrame:
    """An item with 2 units every 4th day for 120 days; the spike is a second row on a day
    that already has demand, so rejecting it gives back exactly the clean history."""
    start = date(2024, 1, 1)
    rows = [("X", str(start + timedelta(days=d)), 2.0) for d in range(0, 120, 4)]
    if with_spike:
        rows.append(("X", str(start + timedelta(days=60)), 1e12))
    return _frame(rows)


def _sba(rows: pl.DataFrame, **kwargs: object) -> np.ndarray:
    valid = validate_demand(rows, **kwargs).valid  # type: ignore[arg-type]
    panel = DemandPanel.from_long(
        valid.rename({"item_id": "unique_id", "date": "ds", "quantity": "y"}), freq="D"
    )
    out = sparecast.forecast(panel, 7, methods=["sba"], output="polars")
    return out["sba"].to_numpy()


def test_1e12_row_does_not_reach_the_forecast() -> None:
    clean = _sba(_daily_rows(False))
    assert 0.3 < clean[0] < 0.7  # 2 units every 4 days: about 0.5 a day
    np.testing.assert_allclose(_sba(_daily_rows(True)), clean)
    assert _sba(_daily_rows(True), outlier_action="report")[0] > 1e6  # the case guarded against


def test_a_category_of_very_sparse_items_still_catches_a_typo() -> None:
    """No item has three demands (so no item median of its own): the category's typical size
    comes from the items' one or two demands, and a 1e12 row is still extreme."""
    rows = [(f"S{i}", f"2024-01-0{d}", 1.0) for i in range(20) for d in (1, 5)]
    rows += [("TYPO", "2024-01-02", 1.0), ("TYPO", "2024-01-06", 1e12)]
    res = validate_demand(_frame(rows))
    assert res.rejected["item_id"].to_list() == ["TYPO"]
    assert res.rejected["reason"].to_list() == ["extreme_quantity"]
    assert res.valid.height == len(rows) - 1


def test_a_huge_return_is_extreme_and_capped_by_its_size() -> None:
    rows = [("A", f"2024-01-0{d}", q) for d, q in enumerate([2.0, 3.0, 2.0, -1.0, -1e12], 1)]
    res = validate_demand(_frame(rows))
    assert res.rejected["reason"].to_list() == ["extreme_quantity"]  # the -1e12 row only
    assert sorted(res.valid["quantity"].to_list()) == [-1.0, 2.0, 2.0, 3.0]
    capped = validate_demand(_frame(rows), outlier_action="cap")
    # median of the positive rows 2, factor 100: the return is cut to -200
    assert sorted(capped.valid["quantity"].to_list()) == [-200.0, -1.0, 2.0, 2.0, 3.0]
