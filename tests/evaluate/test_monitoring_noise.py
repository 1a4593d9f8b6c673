"""The noise-scaled degradation test of monitoring, checked by hand: a large relative deviation
of a small, noisy group is not degraded unless it is also significant (``z``), a real shift
is, and ``z = 0`` is the relative threshold alone."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from sparecast.errors import DataValidationError
from sparecast.evaluate.monitoring import (
    degradations,
    expected_scores,
    mark_periods,
    rolling_scores,
)

DATES = [date(2026, 11, 1) + timedelta(days=k) for k in range(3)]


def _expected(n: int, *, bias: float = 0.0, rmsse: float = 1.0) -> pl.DataFrame:
    return expected_scores(
        {
            "expected_mae": np.ones(n),
            "expected_mase": np.ones(n),
            "expected_rmsse": np.full(n, rmsse),
            "expected_mape": np.ones(n),
            "expected_error_sum": np.full(n, bias * 10.0),
            "expected_actual_sum": np.full(n, 10.0),
        },
        regular=np.ones(n, bool),
        groups={"all": [], "category": ["valves"] * n},
    )


def _scores(forecast: np.ndarray, actual: np.ndarray, scale_rmsse: np.ndarray) -> pl.DataFrame:
    n = forecast.shape[0]
    return rolling_scores(
        forecast,
        actual,
        DATES[: forecast.shape[1]],
        scale_mase=np.ones(n),
        scale_rmsse=scale_rmsse,
        regular=np.ones(n, bool),
        groups={"all": [], "category": ["valves"] * n},
    )


def _bias_state(scores: pl.DataFrame, expected: pl.DataFrame, z: float) -> dict[str, object]:
    state = degradations(
        scores,
        expected,
        watch={"rel_bias": 0.4},
        periods=3,
        min_items=5,
        groupings=["category"],
        z=z,
    )
    (row,) = state.to_dicts()
    return row


def test_a_noisy_small_group_with_a_large_relative_bias_is_not_degraded() -> None:
    # 6 items forecast 2 a day, demand variance 25 a day (scale_rmsse 50); over 3 days they
    # issued 18 instead of 36: rel_bias +1.0, far above 0.4, but the error of 18 is ~1 standard
    # deviation of the noise (sqrt(6 x 3 x 25) = 21.2)
    forecast = np.full((6, 3), 2.0)
    actual = np.array([[1.0, 1.0, 1.0]] * 6)
    scores = _scores(forecast, actual, np.full(6, 50.0))
    row = scores.filter((pl.col("period") == 3) & (pl.col("group") == "valves")).row(0, named=True)
    assert row["rel_bias"] == pytest.approx(1.0)
    assert row["error_sum"] == pytest.approx(18.0) and row["actual_sum"] == pytest.approx(18.0)
    # each item's error (3) over the sd of its error sum from the noise (sqrt(3 x 25))
    assert row["std_error_sum"] == pytest.approx(6 * 3.0 / np.sqrt(75.0))
    assert row["std_actual_sum"] == pytest.approx(6 * 3.0 / np.sqrt(75.0))
    assert row["std_items"] == 6
    noisy = _bias_state(scores, _expected(6), z=3.0)
    assert noisy["z"] == pytest.approx(18.0 / np.sqrt(450.0))
    assert noisy["streak"] == 0 and noisy["alert"] is False
    old = _bias_state(scores, _expected(6), z=0.0)  # the threshold alone: degraded every day
    assert old["streak"] == 3 and old["alert"] is True


def test_a_significant_shift_is_degraded() -> None:
    # the same group, demand variance 0.25 a day: the same halving is ~36 standard deviations
    forecast = np.full((6, 3), 2.0)
    actual = np.array([[1.0, 1.0, 1.0]] * 6)
    scores = _scores(forecast, actual, np.full(6, 0.5))
    state = _bias_state(scores, _expected(6), z=3.0)
    assert state["z"] == pytest.approx(18.0 / np.sqrt(6 * 3 * 0.25))
    assert state["streak"] == 3 and state["alert"] is True


def test_the_bias_score_is_the_excess_over_the_expected_bias() -> None:
    forecast = np.full((6, 3), 2.0)
    actual = np.array([[1.0, 1.0, 1.0]] * 6)
    scores = _scores(forecast, actual, np.full(6, 0.5))
    # the backtest was already 50 % over: 18 - 0.5 x 18 = 9 of excess error
    state = _bias_state(scores, _expected(6, bias=0.5), z=3.0)
    assert state["z"] == pytest.approx((18.0 - 0.5 * 18.0) / np.sqrt(4.5))
    assert state["limit"] == pytest.approx(0.9) and state["value"] == pytest.approx(1.0)
    # the first day's excess, 3 / sqrt(1.5) = 2.4, is not significant yet; days 2 and 3 are
    assert state["streak"] == 2 and state["alert"] is False


def test_accuracy_metrics_are_judged_by_the_spread_over_the_items() -> None:
    # rmsse per item: |error| / sqrt(scale) on one day; mean 2.0 against an expectation of 1.0
    forecast = np.zeros((6, 1))
    spread = rolling_scores(
        forecast,
        np.array([[0.5], [0.5], [0.5], [0.5], [0.5], [9.5]]),
        DATES[:1],
        scale_mase=np.ones(6),
        scale_rmsse=np.ones(6),
        regular=np.ones(6, bool),
        groups={"all": []},
    )
    even = rolling_scores(
        forecast,
        np.full((6, 1), 2.0),
        DATES[:1],
        scale_mase=np.ones(6),
        scale_rmsse=np.ones(6),
        regular=np.ones(6, bool),
        groups={"all": []},
    )
    se = np.std([0.5] * 5 + [9.5], ddof=1) / np.sqrt(6)
    assert spread["rmsse"][0] == pytest.approx(2.0) and spread["rmsse_se"][0] == pytest.approx(se)
    assert even["rmsse_se"][0] == pytest.approx(0.0)
    expected = _expected(6).filter(pl.col("grouping") == "all")
    marks = {
        name: mark_periods(
            frame, expected, watch={"rmsse": 0.5}, min_items=5, groupings=["all"], z=3.0
        ).row(0, named=True)
        for name, frame in (("spread", spread), ("even", even))
    }
    assert marks["spread"]["z"] == pytest.approx(1.0 / se) and marks["spread"]["worse"] is False
    assert marks["even"]["worse"] is True  # every item is twice as bad: no doubt


def test_z_zero_is_the_relative_threshold_alone() -> None:
    # frames without the noise columns (scores from before the test) are judged as before
    scores = pl.DataFrame(
        {
            "period": [1],
            "ds": DATES[:1],
            "grouping": ["tier"],
            "group": ["regular"],
            "n_items": [10],
            "mae": [1.6],
            "mase": [1.6],
            "rmsse": [1.6],
            "rel_bias": [-1.0],
            "mape": [1.6],
        }
    )
    expected = scores.drop("period", "ds").with_columns(
        pl.lit(1.0).alias(m) for m in ("mae", "mase", "rmsse", "mape")
    )
    expected = expected.with_columns(pl.lit(0.0).alias("rel_bias"))
    marked = mark_periods(scores, expected, watch={"rmsse": 0.5, "rel_bias": 0.4}, min_items=5)
    assert marked["worse"].to_list() == [True, True] and marked["z"].null_count() == 2
    with pytest.raises(DataValidationError, match="lack"):
        mark_periods(scores, expected, watch={"rmsse": 0.5}, min_items=5, z=3.0)
    with pytest.raises(DataValidationError, match="z must be >= 0"):
        mark_periods(scores, expected, watch={"rmsse": 0.5}, min_items=5, z=-1.0)


def test_one_spiky_item_does_not_hide_a_shift_of_the_others() -> None:
    # 10 items with demand variance 0.25 a day under-forecast (forecast 0.5, demand 2),
    # beside one item whose history is very lumpy (variance 10,000 a day) and forecast right.
    # Pooled, that one item's noise (sqrt(3 x 10,000) = 173) would swamp the others' error of
    # 45 (rel_bias -0.6); each item standardised by its own noise, the shift stands out:
    # every item counts alike, whatever its scale
    forecast = np.vstack([np.full((10, 3), 0.5), np.full((1, 3), 5.0)])
    actual = np.vstack([np.full((10, 3), 2.0), np.full((1, 3), 5.0)])
    scale = np.append(np.full(10, 0.5), 20_000.0)
    scores = _scores(forecast, actual, scale)
    state = _bias_state(scores, _expected(11), z=3.0)
    pooled = 45.0 / np.sqrt(10 * 3 * 0.25 + 3 * 10_000.0)
    assert pooled < 1.0  # what a pooled noise would say
    sd = np.sqrt(3 * 0.25)
    assert state["value"] == pytest.approx(-0.6)
    assert state["z"] == pytest.approx(10 * 4.5 / sd / np.sqrt(11))
    assert state["streak"] == 3 and state["alert"] is True
