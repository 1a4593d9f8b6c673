"""Features of the global ML models: by hand on tiny panels, class and tier codes as classify
computes them, no leakage from the future, growing histories, static attributes, calendars."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from utils.panels import weekday_panel

from sparecast.classify import SB_CLASSES, TIERS, classify
from sparecast.data.panel import DemandPanel
from sparecast.methods.features import (
    FeatureSpec,
    History,
    StaticFeatures,
    cutoff_features,
    default_spec,
    feature_names,
    target_calendar,
)


def test_features_by_hand() -> None:
    y = np.array([[0, 2, 0, 0, 3, 1], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    spec = FeatureSpec(lags=(1, 2), windows=(3,), season=2)
    start = np.datetime64("2026-11-02")  # Monday
    cal = target_calendar(start, 8, "D")
    hist = History(y[:, :5])
    x = cutoff_features(hist, 5, spec, cal, np.array([1, 1]), with_step=True)
    names = feature_names(spec, "D", with_step=True)
    row = dict(zip(names, x[0].tolist(), strict=True))
    # cutoff 5 sees y[:5] = 0 2 0 0 3; the target is period 5, a Saturday (2026-11-07)
    assert row["lag_1"] == 3 and row["lag_2"] == 0
    assert row["mean_3"] == pytest.approx(1.0) and row["max_3"] == 3
    assert row["nzrate_3"] == pytest.approx(1 / 3)
    assert row["season_mean"] == pytest.approx(1.0)  # periods 3 and 1: (0 + 2) / 2
    assert row["n_demands"] == 2 and row["mean_size"] == pytest.approx(2.5)
    assert row["mean_interval"] == pytest.approx(2.0)  # 4 periods since the first / 2 demands
    assert row["since_last"] == 1 and row["since_first"] == 4
    assert row["demand_rate"] == pytest.approx(0.4)
    assert row["cv2"] == pytest.approx(0.25 / 6.25)
    assert SB_CLASSES[int(row["sb_class"])] == "intermittent"
    assert TIERS[int(row["tier"])] == "regular"
    assert (row["dow"], row["dom"], row["month"], row["step"]) == (5, 7, 11, 1)
    empty = dict(zip(names, x[1].tolist(), strict=True))
    assert empty["n_demands"] == 0 and np.isnan(empty["mean_size"])
    assert np.isnan(empty["since_last"]) and np.isnan(empty["cv2"])
    assert SB_CLASSES[int(empty["sb_class"])] == "no_demand"
    assert TIERS[int(empty["tier"])] == "very_intermittent"
    # two steps ahead: target period 6 (Sunday), season values from periods 4, 2, 0
    x2 = cutoff_features(hist, 5, spec, cal, np.array([2, 2]), with_step=True)
    row2 = dict(zip(names, x2[0].tolist(), strict=True))
    assert row2["season_mean"] == pytest.approx(1.0) and row2["dow"] == 6 and row2["step"] == 2
    # three steps ahead: period 7, seasons back at 5 (not observed), 3 and 1: (0 + 2) / 2
    x3 = cutoff_features(hist, 5, spec, cal, np.array([3, 3]), with_step=True)
    assert x3[0, names.index("season_mean")] == pytest.approx(1.0)
    x3b = cutoff_features(History(y[:, :4]), 4, spec, cal, np.array([2, 2]), with_step=True)
    assert x3b[0, names.index("season_mean")] == pytest.approx(1.0)  # periods 3, 1: (0 + 2)/2
    # before the series start: lags are missing
    x0 = cutoff_features(hist, 1, spec, cal, np.array([1, 1]), with_step=False)
    assert x0[0, 0] == 0 and np.isnan(x0[0, 1])


def test_class_and_tier_codes_match_classify() -> None:
    panel = weekday_panel(n_items=60, n_periods=90, seed=3)
    spec = default_spec("D")
    hist = History(panel.y)
    cal = target_calendar(panel.start, panel.n_periods + 1, "D")
    x = cutoff_features(hist, panel.n_periods, spec, cal, np.ones(60, int), with_step=False)
    names = feature_names(spec, "D", with_step=False)
    ref = classify(panel)
    sb = [SB_CLASSES[int(v)] for v in x[:, names.index("sb_class")]]
    tier = [TIERS[int(v)] for v in x[:, names.index("tier")]]
    assert sb == ref["sb_class"].to_list()
    assert tier == ref["tier"].to_list()
    np.testing.assert_allclose(x[:, names.index("mean_interval")], ref["adi"].to_numpy(), rtol=1e-6)


def test_no_leakage_changing_the_future_keeps_the_features() -> None:
    panel = weekday_panel(n_items=30, n_periods=100, seed=1)
    spec = default_spec("D")
    cal = target_calendar(panel.start, 130, "D")
    rng = np.random.default_rng(5)
    for t in (1, 5, 40, 99):
        other = panel.y.copy()
        other[:, t:] = rng.poisson(5.0, other[:, t:].shape)
        steps = rng.integers(1, 28, 30)
        a = cutoff_features(History(panel.y), t, spec, cal, steps, with_step=True)
        b = cutoff_features(History(other), t, spec, cal, steps, with_step=True)
        np.testing.assert_array_equal(a, b)
        # and the future did change something that a later cutoff sees
        c = cutoff_features(History(other), min(t + 7, 100), spec, cal, steps, with_step=True)
        assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(c))


def test_history_append_equals_a_longer_history() -> None:
    panel = weekday_panel(n_items=20, n_periods=60, seed=2)
    spec = default_spec("D")
    cal = target_calendar(panel.start, 60, "D")
    grown = History(panel.y[:, :50], extra=10)
    for t in range(50, 60):
        grown.append(panel.y[:, t])
    ones = np.ones(20, int)
    np.testing.assert_array_equal(
        cutoff_features(grown, 59, spec, cal, ones, with_step=False),
        cutoff_features(History(panel.y), 59, spec, cal, ones, with_step=False),
    )


def test_history_scale_is_the_mean_squared_difference() -> None:
    y = np.array([[1, 3, 3, 0, 2]], dtype=np.float32)
    hist = History(y[:, :3], extra=2)
    assert hist.scale(3, np.array([0]))[0] == pytest.approx((4 + 0) / 2)
    hist.append(y[:, 3])
    hist.append(y[:, 4])
    assert hist.scale(5, np.array([0]))[0] == pytest.approx((4 + 0 + 9 + 4) / 4)
    assert History(y).scale(5, np.array([0]))[0] == pytest.approx(17 / 4)
    assert History(y).scale(1, np.array([0]))[0] == 0


def test_static_features_unknown_category_is_nan() -> None:
    panel = weekday_panel(n_items=6, n_periods=20)
    enc = StaticFeatures.learn(panel.attributes)
    assert enc.names == ["category", "unit_cost"] and enc.categories == ("a", "b", "c")
    assert panel.attributes is not None
    other = panel.attributes.with_columns(pl.lit("zzz").alias("category"))
    m = enc.matrix(DemandPanel(panel.y, panel.item_ids, panel.start, "D", other))
    assert np.isnan(m[:, 0]).all() and (m[:, 1] > 0).all()
    assert StaticFeatures.learn(None).names == []


def test_target_calendar_weekly_and_monthly() -> None:
    weeks = target_calendar(np.datetime64("2026-01-05"), 3, "W")  # Mondays 5, 12, 19 January
    np.testing.assert_array_equal(weeks, [[1, 1], [2, 1], [3, 1]])
    months = target_calendar(np.datetime64("2026-11-01"), 3, "M")
    np.testing.assert_array_equal(months[:, 0], [11, 12, 1])


def test_obsolescence_features_by_hand() -> None:
    # item 0: demands at 0, 1, 2 and 5, then four quiet periods; item 1: one demand; item 2: none
    y = np.array(
        [[1, 1, 1, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 4, 0, 0, 0], [0] * 10],
        dtype=np.float32,
    )
    spec = FeatureSpec(lags=(1,), windows=(4, 8), season=0)
    cal = target_calendar(np.datetime64("2026-01-05"), 11, "W")
    x = cutoff_features(History(y), 10, spec, cal, np.ones(3, int), with_step=False)
    names = feature_names(spec, "W", with_step=False)
    assert names.index("last_interval_ratio") == names.index("cv2") + 1
    rows = [dict(zip(names, r.tolist(), strict=True)) for r in x]
    a = rows[0]
    # mean interval between demands (5 - 0) / 3; the last one (2 -> 5) is 3 periods
    assert a["last_interval_ratio"] == pytest.approx(3 / (5 / 3))
    assert a["overdue"] == pytest.approx(5 / (5 / 3))  # 5 periods since the last demand
    # share with demand since the first demand: 4 / 10; last 4 periods: 0; last 8: 2 / 8
    assert a["nzrate_ratio_4"] == 0.0
    assert a["nzrate_ratio_8"] == pytest.approx(0.25 / 0.4)
    b = rows[1]  # one demand at 6: no interval yet; its life is 4 periods with 1 demand
    assert np.isnan(b["last_interval_ratio"]) and np.isnan(b["overdue"])
    assert b["nzrate_ratio_4"] == pytest.approx(1.0) and b["nzrate_ratio_8"] == pytest.approx(0.5)
    c = rows[2]
    assert all(np.isnan(c[k]) for k in ("last_interval_ratio", "overdue", "nzrate_ratio_4"))
    # the same values one period at a time (the recursive strategy's History.append)
    hist = History(y[:, :3], extra=7)
    for t in range(3, 10):
        hist.append(y[:, t])
    np.testing.assert_array_equal(
        cutoff_features(hist, 10, spec, cal, np.ones(3, int), with_step=False), x
    )


def test_obsolescence_features_can_be_left_out() -> None:
    y = np.array([[0, 2, 0, 0, 3, 1]], dtype=np.float32)
    full = default_spec("W")
    plain = default_spec("W", obsolescence=False)
    cal = target_calendar(np.datetime64("2026-01-05"), 7, "W")
    names = feature_names(full, "W", with_step=False)
    kept = feature_names(plain, "W", with_step=False)
    assert set(names) - set(kept) == {
        "last_interval_ratio",
        "overdue",
        "nzrate_ratio_4",
        "nzrate_ratio_13",
        "nzrate_ratio_52",
    }
    x = cutoff_features(History(y), 6, full, cal, np.ones(1, int), with_step=False)
    x_plain = cutoff_features(History(y), 6, plain, cal, np.ones(1, int), with_step=False)
    assert x_plain.shape[1] == len(kept)
    np.testing.assert_array_equal(x[:, [names.index(n) for n in kept]], x_plain)
