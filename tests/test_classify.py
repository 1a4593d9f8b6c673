"""classify: hand-computed ADI / CV² / classes / tiers, and a loop reference on random panels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparecast.classify import TierThresholds, classify
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError, SparecastError


def _panel(rows: list[list[float]]) -> DemandPanel:
    y = np.asarray(rows, dtype=np.float32)
    ids = np.array([f"item{i}" for i in range(y.shape[0])], dtype=object)
    return DemandPanel(y=y, item_ids=ids, start=np.datetime64("2024-01-01"))


ROWS = {
    # T = 10 periods each
    "intermittent": [0, 0, 3, 0, 0, 3, 0, 0, 3, 0],
    "smooth": [1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
    "erratic": [1, 10, 1, 10, 1, 10, 1, 10, 1, 10],
    "lumpy": [0, 1, 0, 0, 10, 0, 0, 1, 0, 10],
    "no_demand": [0] * 10,
    "single": [0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
    "returns": [0, -2, 4, 0, 0, 0, 6, 0, -1, 0],
}


@pytest.fixture(scope="module")
def table() -> dict[str, dict]:
    out = classify(_panel(list(ROWS.values())))
    return dict(zip(ROWS, out.iter_rows(named=True), strict=True))


def test_columns_and_types() -> None:
    out = classify(_panel(list(ROWS.values())))
    assert out.columns == [
        "unique_id",
        "n_periods",
        "n_demands",
        "demand_frequency",
        "adi",
        "cv2",
        "sb_class",
        "tier",
    ]
    assert out.schema["unique_id"] == pl.Utf8
    assert out.schema["n_periods"] == pl.Int64
    assert out["unique_id"].to_list() == [f"item{i}" for i in range(len(ROWS))]


def test_intermittent_by_hand(table: dict) -> None:
    r = table["intermittent"]
    # demands at periods 2, 5, 8: 8 periods (2..9) for 3 demands
    assert r["n_demands"] == 3
    assert r["n_periods"] == 8  # periods 2..9
    assert r["demand_frequency"] == pytest.approx(0.3)
    assert r["adi"] == pytest.approx(8 / 3)
    assert r["cv2"] == pytest.approx(0.0)
    assert r["sb_class"] == "intermittent"
    assert r["tier"] == "regular"


def test_smooth_by_hand(table: dict) -> None:
    r = table["smooth"]
    # sizes 1,2,...: mean 1.5, population variance 0.25 -> cv2 = 0.25 / 2.25
    assert r["adi"] == pytest.approx(1.0)
    assert r["cv2"] == pytest.approx(0.25 / 2.25)
    assert r["sb_class"] == "smooth"
    assert r["tier"] == "high_volume"
    assert r["n_periods"] == 10


def test_erratic_by_hand(table: dict) -> None:
    r = table["erratic"]
    # sizes 1,10,...: mean 5.5, variance 20.25 -> cv2 = 20.25 / 30.25
    assert r["adi"] == pytest.approx(1.0)
    assert r["cv2"] == pytest.approx(20.25 / 30.25)
    assert r["sb_class"] == "erratic"


def test_lumpy_by_hand(table: dict) -> None:
    r = table["lumpy"]
    # demands at 1, 4, 7, 9 -> 9 periods for 4 demands; sizes 1,10,1,10 -> cv2 20.25/30.25
    assert r["n_demands"] == 4
    assert r["n_periods"] == 9
    assert r["adi"] == pytest.approx(9 / 4)
    assert r["cv2"] == pytest.approx(20.25 / 30.25)
    assert r["sb_class"] == "lumpy"
    assert r["tier"] == "regular"


def test_no_demand(table: dict) -> None:
    r = table["no_demand"]
    assert r["n_demands"] == 0
    assert r["n_periods"] == 0
    assert r["demand_frequency"] == 0.0
    assert r["adi"] is None and r["cv2"] is None
    assert r["sb_class"] == "no_demand"
    assert r["tier"] == "very_intermittent"


def test_single_demand_gets_panel_length_as_adi(table: dict) -> None:
    r = table["single"]
    assert r["n_demands"] == 1
    assert r["n_periods"] == 1
    assert r["adi"] == pytest.approx(10.0)  # documented: T for a single demand
    assert r["cv2"] == 0.0
    assert r["sb_class"] == "intermittent"


def test_dormant_tail_is_not_smooth() -> None:
    # two demands on consecutive days, then nothing: periods per demand, not the mean gap of 1
    out = classify(_panel([[0, 4, 5, 0, 0, 0, 0, 0, 0, 0]]))
    assert out["adi"][0] == pytest.approx(9 / 2)
    assert out["sb_class"][0] == "intermittent"


def test_returns_are_not_demand(table: dict) -> None:
    r = table["returns"]
    # positive demand at 2 and 6 only
    assert r["n_demands"] == 2
    assert r["n_periods"] == 8
    assert r["adi"] == pytest.approx(4.0)
    assert r["cv2"] == pytest.approx(1.0 / 25.0)  # sizes 4, 6: var 1, mean 5


def test_cutoffs_are_parameters(table: dict) -> None:
    out = classify(_panel([ROWS["intermittent"]]), adi_cutoff=3.5)
    assert out["sb_class"][0] == "smooth"  # adi 2.67 < 3.5
    out = classify(_panel([ROWS["smooth"]]), cv2_cutoff=0.1)
    assert out["sb_class"][0] == "erratic"  # cv2 0.111 >= 0.1


def test_tier_boundaries_default_and_custom() -> None:
    t = 100
    rows = []
    for n in (50, 49, 10, 9, 2, 1):
        row = [0.0] * t
        for k in range(n):
            row[k * (t // n)] = 1.0
        rows.append(row)
    out = classify(_panel(rows))
    assert out["demand_frequency"].to_list() == pytest.approx([0.5, 0.49, 0.1, 0.09, 0.02, 0.01])
    assert out["tier"].to_list() == [
        "high_volume",
        "regular",
        "regular",
        "intermittent",
        "intermittent",
        "very_intermittent",
    ]
    custom = classify(
        _panel(rows), thresholds=TierThresholds(high_volume=0.4, regular=0.05, intermittent=0.01)
    )
    assert custom["tier"].to_list() == [
        "high_volume",
        "high_volume",
        "regular",
        "regular",
        "intermittent",
        "intermittent",
    ]


@pytest.mark.parametrize(
    "values",
    [(0.1, 0.5, 0.02), (0.5, 0.5, 0.02), (1.5, 0.1, 0.02), (0.5, 0.1, 0.0), (0.5, 0.1, -0.1)],
)
def test_thresholds_validated(values: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError):
        TierThresholds(*values)
    assert issubclass(ConfigError, SparecastError)


def test_thresholds_frozen() -> None:
    th = TierThresholds()
    with pytest.raises(AttributeError):
        th.regular = 0.2  # type: ignore[misc]


def _reference(row: np.ndarray) -> tuple[int, int, float | None, float | None]:
    idx = [i for i, v in enumerate(row) if v > 0]
    if not idx:
        return 0, 0, None, None
    sizes = np.array([row[i] for i in idx], dtype=np.float64)
    if len(idx) == 1:
        adi = float(len(row))
    else:
        adi = (len(row) - idx[0]) / len(idx)
    cv2 = float(sizes.var() / sizes.mean() ** 2)
    return len(row) - idx[0], len(idx), adi, cv2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.5, 7.0, -1.0, 120.0]), min_size=8, max_size=8
        ),
        min_size=1,
        max_size=6,
    )
)
def test_matches_loop_reference(rows: list[list[float]]) -> None:
    out = classify(_panel(rows))
    for row, rec in zip(rows, out.iter_rows(named=True), strict=True):
        n_periods, n_demands, adi, cv2 = _reference(np.asarray(row, dtype=np.float32))
        assert rec["n_periods"] == n_periods
        assert rec["n_demands"] == n_demands
        if adi is None:
            assert rec["adi"] is None and rec["cv2"] is None
        else:
            assert rec["adi"] == pytest.approx(adi)
            assert rec["cv2"] == pytest.approx(cv2, abs=1e-12)
