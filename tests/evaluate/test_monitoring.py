"""Monitoring scores on arrays, checked by hand: rolling windows, group aggregation, the
expectation, and the degradation rule (k periods in a row, min items, |rel_bias|)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from sparecast.errors import DataValidationError
from sparecast.evaluate.monitoring import degradations, expected_scores, rolling_scores

DATES = [date(2026, 11, 1) + timedelta(days=k) for k in range(4)]
NAN = float("nan")


def _row(frame: pl.DataFrame, period: int, grouping: str, group: str) -> dict[str, object]:
    rows = frame.filter(
        (pl.col("period") == period) & (pl.col("grouping") == grouping) & (pl.col("group") == group)
    ).to_dicts()
    assert len(rows) == 1
    return rows[0]


def _scores(window: int | None = None) -> pl.DataFrame:
    # item a: forecast 2, actuals 1, 3, 6 (errors +1, -1, -4); item b: forecast 1, actuals 0, 0,
    # 0 (errors +1 each); item c: actual of day 2 missing. Day 4 has no actuals yet.
    forecast = np.array([[2.0] * 4, [1.0] * 4, [1.0] * 4])
    actual = np.array([[1, 3, 6, NAN], [0, 0, 0, NAN], [1, NAN, 1, NAN]], dtype=float)
    return rolling_scores(
        forecast,
        actual,
        DATES,
        scale_mase=np.array([2.0, 0.5, 1.0]),
        scale_rmsse=np.array([4.0, 0.0, 1.0]),  # b: no variation, RMSSE undefined
        regular=np.array([True, False, True]),
        groups={"all": [], "tier": ["regular", "slow", "regular"]},
        window=window,
    )


def test_expanding_scores_by_hand() -> None:
    scores = _scores()
    assert scores["period"].unique().sort().to_list() == [1, 2, 3]  # day 4 has no actuals
    one = _row(scores, 1, "all", "all")
    assert one["ds"] == DATES[0] and one["n_items"] == 3
    assert one["mae"] == pytest.approx((1 + 1 + 0) / 3)
    assert one["mase"] == pytest.approx((1 / 2 + 1 / 0.5 + 0 / 1) / 3)
    assert one["rmsse"] == pytest.approx((np.sqrt(1 / 4) + 0) / 2)  # b's is undefined
    assert one["rel_bias"] == pytest.approx((1 + 1 + 0) / (1 + 0 + 1))
    assert one["mape"] == pytest.approx((1 / 1 + 0 / 1) / 2)  # regular items a and c only
    three = _row(scores, 3, "all", "all")
    assert three["n_items"] == 2  # c misses day 2: not scored on a window over it
    assert three["mae"] == pytest.approx(((1 + 1 + 4) / 3 + 1) / 2)
    assert three["rel_bias"] == pytest.approx((1 - 1 - 4 + 3) / (1 + 3 + 6 + 0))
    assert three["mape"] == pytest.approx((1 + 1 / 3 + 4 / 6) / 3)  # a's only
    slow = _row(scores, 3, "tier", "slow")
    assert slow["n_items"] == 1 and slow["mase"] == pytest.approx(1 / 0.5)
    assert slow["rmsse"] is None and slow["mape"] is None and slow["rel_bias"] is None


def test_rolling_window_of_one_period() -> None:
    scores = _scores(window=1)
    three = _row(scores, 3, "tier", "regular")
    assert three["n_items"] == 2  # c's day 3 is known: a window of one period scores it
    assert three["mae"] == pytest.approx((4 + 0) / 2)
    assert three["rmsse"] == pytest.approx((np.sqrt(16 / 4) + 0) / 2)


def test_expectation_per_group() -> None:
    expected = expected_scores(
        {
            "expected_mae": np.array([1.0, 3.0, NAN]),
            "expected_mase": np.array([0.5, 1.5, NAN]),
            "expected_rmsse": np.array([0.7, 0.9, NAN]),
            "expected_mape": np.array([0.4, 0.8, NAN]),
            "expected_error_sum": np.array([2.0, -6.0, NAN]),
            "expected_actual_sum": np.array([10.0, 10.0, NAN]),
        },
        regular=np.array([True, False, True]),
        groups={"all": [], "tier": ["regular", "slow", "regular"]},
    )
    rows = {(r["grouping"], r["group"]): r for r in expected.to_dicts()}
    assert rows["all", "all"]["n_items"] == 2
    assert rows["all", "all"]["mae"] == pytest.approx(2.0)
    assert rows["all", "all"]["rel_bias"] == pytest.approx(-4 / 20)
    assert rows["all", "all"]["mape"] == pytest.approx(0.4)  # regular items only
    assert rows["tier", "slow"]["mase"] == pytest.approx(1.5)


def _frames(values: list[float], n_items: int = 10) -> tuple[pl.DataFrame, pl.DataFrame]:
    scores = pl.DataFrame(
        {
            "period": list(range(1, len(values) + 1)),
            "ds": DATES[: len(values)],
            "grouping": ["tier"] * len(values),
            "group": ["regular"] * len(values),
            "n_items": [n_items] * len(values),
            "mae": values,
            "mase": values,
            "rmsse": values,
            "rel_bias": [-v for v in values],
            "mape": values,
        }
    )
    expected = pl.DataFrame(
        {
            "grouping": ["tier"],
            "group": ["regular"],
            "n_items": [n_items],
            "mae": [1.0],
            "mase": [1.0],
            "rmsse": [1.0],
            "rel_bias": [0.2],
            "mape": [1.0],
        }
    )
    return scores, expected


@pytest.mark.parametrize(
    ("values", "streak", "alert"),
    [
        ([1.0, 1.6, 1.6, 1.6], 3, True),  # 3 periods above 1 x 1.5
        ([1.6, 1.6, 1.0, 1.6], 1, False),  # the streak was broken
        ([1.6, 1.6, 1.5, 1.6], 1, False),  # equal to the limit is not worse
        ([1.6, 1.6, 1.6, 1.0], 0, False),
    ],
)
def test_degraded_after_k_periods_in_a_row(values: list[float], streak: int, alert: bool) -> None:
    scores, expected = _frames(values)
    state = degradations(scores, expected, watch={"mase": 0.5}, periods=3, min_items=5).to_dicts()
    assert len(state) == 1
    assert state[0]["streak"] == streak and state[0]["alert"] is alert
    assert state[0]["limit"] == pytest.approx(1.5) and state[0]["value"] == values[-1]


def test_small_groups_and_signed_bias() -> None:
    scores, expected = _frames([2.0, 2.0, 2.0], n_items=4)
    small = degradations(scores, expected, watch={"mae": 0.5}, periods=3, min_items=5)
    assert small["alert"].to_list() == [False]  # 4 items < min_items
    bias = degradations(scores, expected, watch={"rel_bias": 0.5}, periods=3, min_items=1)
    assert bias["alert"].to_list() == [True]  # |-2| > |0.2| + 0.5
    assert bias["value"].to_list() == [-2.0] and bias["limit"].to_list() == [pytest.approx(0.7)]
    other = degradations(
        scores, expected, watch={"mae": 0.5}, periods=1, min_items=1, groupings=["class"]
    )
    assert other.height == 0  # tier is not watched


def test_shapes_are_checked() -> None:
    with pytest.raises(DataValidationError, match="must both be"):
        rolling_scores(
            np.zeros((2, 3)),
            np.zeros((2, 2)),
            DATES[:3],
            scale_mase=np.ones(2),
            scale_rmsse=np.ones(2),
            regular=np.ones(2, bool),
            groups={"all": []},
        )
    with pytest.raises(DataValidationError, match="one per item"):
        rolling_scores(
            np.zeros((2, 3)),
            np.zeros((2, 3)),
            DATES[:3],
            scale_mase=np.ones(3),
            scale_rmsse=np.ones(2),
            regular=np.ones(2, bool),
            groups={"all": []},
        )


@pytest.mark.parametrize(
    ("watch", "problem"),
    [
        ({}, "at least one metric"),
        ({"smape": 0.5}, "unknown metric 'smape'"),
        ({"mase": 0.0}, "threshold of mase must be > 0"),
    ],
)
def test_watch_problem_is_the_one_check_of_config_and_mark_periods(
    watch: dict[str, float], problem: str
) -> None:
    """The setting and mark_periods refuse the same watch lists with the same reason."""
    from sparecast.config import MonitoringSettings
    from sparecast.evaluate.monitoring import mark_periods, watch_problem

    assert problem in (watch_problem(watch) or "")
    assert watch_problem({"mase": 0.5, "rel_bias": 0.3}) is None
    with pytest.raises(ValueError, match=problem):
        MonitoringSettings(watch=watch)
    with pytest.raises(DataValidationError, match=problem):
        mark_periods(pl.DataFrame(), pl.DataFrame(), watch=watch, min_items=1)
