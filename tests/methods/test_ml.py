"""Global ML models: training rows, objectives, asymmetric loss, strategies (their features are
tested in test_features.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy.optimize import minimize_scalar
from sklearn.base import clone
from utils.panels import weekday_panel

from sparecast import backtest, forecast
from sparecast.classify import REGULAR_TIERS, TierThresholds, classify
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.evaluate.backtest import backtest_origins
from sparecast.methods import METHODS, forecast_panel, ml
from sparecast.methods.features import target_calendar
from sparecast.methods.ml import (
    OBJECTIVES,
    STRATEGIES,
    GlobalLightGBM,
    XGBoostRegular,
    apply_level,
    asymmetric_grad_hess,
    asymmetric_loss,
    level_calibration,
    lightgbm_backtest,
    lightgbm_forecast,
    xgboost_backtest,
    xgboost_forecast,
)

FAST = {"n_estimators": 30, "learning_rate": 0.2}
LGB_FAST = {**FAST, "min_data_in_leaf": 20}


# ---------------------------------------------------------------------------- training rows
def test_zero_window_downsampling_keeps_the_weighted_count() -> None:
    panel = weekday_panel(n_items=200, n_periods=150, seed=4)
    counts = {}
    for keep in (1.0, 0.25):
        model = GlobalLightGBM(zero_keep=keep, strategy="recursive", stride=1, windows=[7])
        model._prepare(panel, 7)
        cutoffs = model._cutoffs(panel.y, 7)
        cal = target_calendar(panel.start, panel.n_periods + 7, "D")
        X, target, weight = model._rows(panel.y, model.static_.matrix(panel), cutoffs, 7, cal)
        counts[keep] = (target.size, weight.sum(), float((weight * target).sum()))
    assert counts[0.25][0] < 0.8 * counts[1.0][0]  # rows were dropped
    assert counts[0.25][1] == pytest.approx(counts[1.0][1], rel=0.03)  # weights correct it
    assert counts[0.25][2] == pytest.approx(counts[1.0][2])  # no demand was dropped


def test_max_rows_thins_the_cutoffs() -> None:
    panel = weekday_panel(n_items=50, n_periods=200)
    model = GlobalLightGBM(max_rows=1000, strategy="recursive", stride=1, zero_keep=1.0)
    model._prepare(panel, 7)
    cutoffs = model._cutoffs(panel.y, 7)
    assert len(cutoffs) * 50 <= 1000 and cutoffs[0] == 199


# ---------------------------------------------------------------------------- forecasts
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lightgbm_forecasts_shape_nonnegative_deterministic(strategy: str) -> None:
    panel = weekday_panel()
    a = GlobalLightGBM(strategy=strategy, **LGB_FAST).fit(panel, 10).predict()
    b = GlobalLightGBM(strategy=strategy, **LGB_FAST).fit(panel, 10).predict()
    assert a.shape == (40, 10) and a.dtype == np.float64
    assert (a >= 0).all() and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0  # not a constant
    if strategy == "mean":
        assert (a == a[:, :1]).all()


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_runs_lightgbm_and_xgboost(objective: str) -> None:
    panel = weekday_panel(n_items=60, n_periods=150, seed=2)
    for model in (
        GlobalLightGBM(objective=objective, alpha=0.8, **LGB_FAST),
        XGBoostRegular(objective=objective, alpha=0.8, **FAST),
    ):
        fc = model.fit(panel, 7).predict()
        assert fc.shape == (60, 7) and (fc >= 0).all() and np.isfinite(fc).all()
        # forecasts follow the item's level: the busiest items get the highest forecasts (for
        # XGBoost: among the regular items it is trained on)
        rows = getattr(model, "regular_items_", np.arange(60))
        level = panel.y[rows].mean(axis=1)
        assert np.corrcoef(level, fc[rows].mean(axis=1))[0, 1] > 0.8


def test_lightgbm_beats_moving_average_on_a_weekly_pattern() -> None:
    panel = weekday_panel(n_items=80, n_periods=210, seed=7)
    result = backtest(
        panel,
        h=14,
        n_windows=2,
        methods=["ma", "lightgbm"],
        params={"lightgbm": {"n_estimators": 60, "learning_rate": 0.1, "min_data_in_leaf": 20}},
    )
    means = result.scores.group_by("method").agg(pl.col("mase", "asym").mean())
    score = dict(zip(means["method"], means["mase"], strict=True))
    assert score["lightgbm"] < 0.9 * score["ma"]


def test_registered_methods_work_in_forecast_and_backtest() -> None:
    panel = weekday_panel(n_items=20, n_periods=100)
    assert METHODS["lightgbm"].needs_panel and METHODS["xgboost"].needs_panel
    fc = forecast(panel, 7, methods=["lightgbm", "xgboost", "ma"], output="polars")
    assert fc.height == 20 * 7 and (fc["lightgbm"] >= 0).all() and (fc["xgboost"] >= 0).all()
    result = backtest(panel, h=7, n_windows=2, methods=["lightgbm", "ma"])
    assert set(result.scores["method"]) == {"lightgbm", "ma", "zero"}  # zero: the reference
    assert result.scores.filter(pl.col("method") == "lightgbm")["mase"].null_count() < 20


def test_scaled_weights_run_and_change_the_model() -> None:
    panel = weekday_panel(n_items=40, n_periods=120, seed=3)
    a = GlobalLightGBM(**LGB_FAST).fit(panel, 7).predict()
    b = GlobalLightGBM(scaled=True, **LGB_FAST).fit(panel, 7).predict()
    assert b.shape == a.shape and (b >= 0).all() and not np.allclose(a, b)


@pytest.mark.parametrize("freq", ["W", "M"])
def test_weekly_and_monthly_panels(freq: str) -> None:
    daily = weekday_panel(n_items=30, n_periods=3 * 365, seed=6)
    panel = daily.bucket(freq, complete_only=True)  # type: ignore[arg-type]
    model = GlobalLightGBM(**LGB_FAST).fit(panel, 4)
    fc = model.predict()
    assert fc.shape == (30, 4) and np.isfinite(fc).all() and (fc >= 0).all()
    assert ("week" in model.feature_names_) == (freq == "W")
    assert ("season_mean" in model.feature_names_) == (freq == "M")
    level = panel.y.mean(axis=1)
    assert np.corrcoef(level, fc.mean(axis=1))[0, 1] > 0.8


def test_attributes_none_works() -> None:
    panel = weekday_panel(attributes=False)
    model = GlobalLightGBM(**LGB_FAST).fit(panel, 5)
    assert "category" not in model.feature_names_
    assert model.predict().shape == (40, 5)


def test_short_history_falls_back_to_missing_lags_and_fails_clearly_without_history() -> None:
    panel = weekday_panel(n_items=30, n_periods=10)  # fewer periods than the 21 default lags
    fc = forecast_panel(panel, 5, "lightgbm", {"n_estimators": 10})
    assert fc.shape == (30, 5) and np.isfinite(fc).all()
    fc = forecast_panel(panel, 5, "xgboost", {"n_estimators": 10})
    assert fc.shape == (30, 5) and np.isfinite(fc).all()
    with pytest.raises(MethodError, match="at least 2 periods"):
        forecast_panel(panel.slice_periods(1), 5, "lightgbm")
    with pytest.raises(MethodError, match="no training row"):
        GlobalLightGBM(strategy="mean").fit(panel, 12)


def test_all_zero_panel_forecasts_zero() -> None:
    panel = weekday_panel(n_items=5, n_periods=30)
    zero = DemandPanel(np.zeros_like(panel.y), panel.item_ids, panel.start, "D")
    assert (GlobalLightGBM().fit(zero, 3).predict() == 0).all()


def test_bad_parameters_name_the_parameter() -> None:
    # scikit-learn estimators: the constructor only stores, fit checks
    panel = weekday_panel(n_items=10, n_periods=60)
    with pytest.raises(MethodError, match="objective"):
        GlobalLightGBM(objective="huber").fit(panel, 5)
    with pytest.raises(MethodError, match="strategy"):
        GlobalLightGBM(strategy="magic").fit(panel, 5)
    with pytest.raises(MethodError, match="zero_keep"):
        GlobalLightGBM(zero_keep=0.0).fit(panel, 5)
    with pytest.raises(MethodError, match="mode"):
        XGBoostRegular(mode="each").fit(panel, 5)
    model = GlobalLightGBM(**LGB_FAST).fit(panel, 5)
    with pytest.raises(MethodError, match="h <= 5"):
        model.predict(h=6)
    with pytest.raises(MethodError, match="not fitted"):
        GlobalLightGBM().predict()


def test_recursive_predicts_beyond_the_fitted_horizon() -> None:
    panel = weekday_panel(n_items=20, n_periods=80)
    model = GlobalLightGBM(strategy="recursive", **LGB_FAST).fit(panel, 3)
    assert model.predict(h=9).shape == (20, 9)


def test_xgboost_per_item_and_pooled() -> None:
    panel = weekday_panel(n_items=30, n_periods=100, seed=5)
    tiers = classify(panel)["tier"].to_numpy()
    regular = np.isin(tiers, ("high_volume", "regular"))
    assert 0 < regular.sum() < 30
    pooled = XGBoostRegular(mode="pooled", **FAST).fit(panel, 7)
    per_item = XGBoostRegular(mode="per_item", per_item_estimators=20, **FAST).fit(panel, 7)
    a, b = pooled.predict(), per_item.predict()
    assert set(per_item.item_models_) == set(np.flatnonzero(regular).tolist())
    np.testing.assert_array_equal(a[~regular], b[~regular])  # others: the same pooled model
    assert not np.allclose(a[regular], b[regular])
    assert (b >= 0).all() and b.shape == (30, 7)


def test_xgboost_tiers_decide_the_regular_items() -> None:
    panel = weekday_panel(n_items=30, n_periods=100, seed=5)
    default = XGBoostRegular(**FAST).fit(panel, 7)
    regular = np.isin(classify(panel)["tier"].to_numpy(), REGULAR_TIERS)
    np.testing.assert_array_equal(default.regular_items_, np.flatnonzero(regular))
    # every item with demand in at least 2% of the periods counts as regular
    loose = TierThresholds(high_volume=0.04, regular=0.02, intermittent=0.01)
    wide = XGBoostRegular(tiers=loose, **FAST).fit(panel, 7)
    wanted = np.isin(classify(panel, thresholds=loose)["tier"].to_numpy(), REGULAR_TIERS)
    np.testing.assert_array_equal(wide.regular_items_, np.flatnonzero(wanted))
    assert wide.regular_items_.size > default.regular_items_.size
    assert clone(wide).get_params()["tiers"] == loose


# ---------------------------------------------------------------------------- asymmetric loss
def test_asymmetric_gradient_and_hessian_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    y = rng.poisson(2.0, 500).astype(float)
    pred = rng.normal(2.0, 1.5, 500)
    pred = np.where(np.abs(pred - y) < 1e-3, pred + 0.01, pred)  # away from the kink
    for w in (1.0, 3.0, 9.0):
        grad, hess = asymmetric_grad_hess(y, pred, w)
        eps = 1e-6
        fd = (asymmetric_loss(y, pred + eps, w) - asymmetric_loss(y, pred - eps, w)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
        g_hi, _ = asymmetric_grad_hess(y, pred + eps, w)
        g_lo, _ = asymmetric_grad_hess(y, pred - eps, w)
        np.testing.assert_allclose(hess, (g_hi - g_lo) / (2 * eps), rtol=1e-5)
        assert (np.where(pred < y, hess == 2 * w, hess == 2)).all()
        # log link: the raw score is log(forecast); the hessian is Gauss-Newton's 2 c mu^2
        f = np.log(np.abs(pred) + 0.1)
        grad, hess = asymmetric_grad_hess(y, f, w, "log")
        fd = (asymmetric_loss(y, np.exp(f + eps), w) - asymmetric_loss(y, np.exp(f - eps), w)) / (
            2 * eps
        )
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
        mu = np.exp(f)
        np.testing.assert_allclose(hess, 2 * np.where(mu < y, w, 1.0) * mu**2)


def test_asymmetric_loss_minimiser_is_the_expectile_not_the_quantile() -> None:
    rng = np.random.default_rng(1)
    y = rng.gamma(0.5, 4.0, 20000)  # right-skewed like demand
    for w in (1.0, 3.0, 9.0):
        best = minimize_scalar(
            lambda q: asymmetric_loss(y, np.full(y.size, q), w).mean(),  # noqa: B023
            bounds=(0, 50),
            method="bounded",
        ).x
        tau = w / (w + 1)
        # the tau-expectile solves tau E[(Y-e)+] = (1-tau) E[(e-Y)+]
        lo, hi = 0.0, 50.0
        for _ in range(100):
            e = (lo + hi) / 2
            gap = tau * np.maximum(y - e, 0).mean() - (1 - tau) * np.maximum(e - y, 0).mean()
            lo, hi = (e, hi) if gap > 0 else (lo, e)
        assert best == pytest.approx(e, rel=1e-3)
        if w > 1:
            assert abs(best - np.quantile(y, tau)) > 0.05 * best
    # intermittent demand: the 75% quantile is 0, the minimiser (75% expectile) is well above
    # the mean
    y = np.where(rng.random(20000) < 0.1, rng.poisson(3.0, 20000) + 1, 0).astype(float)
    best = minimize_scalar(
        lambda q: asymmetric_loss(y, np.full(y.size, q), 3.0).mean(),
        bounds=(0, 50),
        method="bounded",
    ).x
    assert np.quantile(y, 0.75) == 0 and best > 2 * y.mean()


@pytest.mark.parametrize("model_cls", [GlobalLightGBM, XGBoostRegular])
def test_larger_stockout_weight_raises_the_forecasts(model_cls: type) -> None:
    panel = weekday_panel(n_items=40, n_periods=100, seed=9)
    extra = {"min_data_in_leaf": 20} if model_cls is GlobalLightGBM else {}
    means = []
    for w in (1.0, 9.0):
        model = model_cls(objective="asymmetric", stockout_weight=w, **FAST, **extra)
        fc = model.fit(panel, 7).predict()
        rows = getattr(model, "regular_items_", np.arange(40))  # XGBoost: its items
        means.append(fc[rows].mean())
    assert means[1] > 1.1 * means[0]


@pytest.mark.parametrize("model_cls", [GlobalLightGBM, XGBoostRegular])
def test_estimators_clone_and_round_trip_their_parameters(model_cls: type) -> None:
    est = model_cls(objective="asymmetric", lags=(1, 7), stride=2, n_estimators=10)
    params = est.get_params()
    assert params["lags"] == (1, 7) and params["n_estimators"] == 10
    assert type(est)(**params).get_params() == params
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    # fitting sets fitted attributes only and leaves the parameters as given
    est.fit(weekday_panel(n_items=10, n_periods=60), 5)
    assert est.get_params() == params
    assert not hasattr(twin, "model_") and hasattr(est, "model_")
    assert est.set_params(n_estimators=20) is est and est.n_estimators == 20


# ---------------------------------------------------------------------------- level calibration
def test_level_calibration_by_hand() -> None:
    pred = np.array([1.0, 1.0, 2.0, 2.0])
    # one factor: sum(target) / sum(pred) = 12 / 6
    knots, factors = level_calibration(pred, np.array([2.0, 2.0, 2.0, 6.0]), bins=1)
    np.testing.assert_allclose(apply_level(pred, knots, factors), 2 * pred)
    # two groups by level: 2 / 2 at knot 1, 8 / 4 at knot 2; already mean-preserving
    knots, factors = level_calibration(pred, np.array([1.0, 1.0, 2.0, 6.0]), bins=2, min_rows=1)
    np.testing.assert_allclose(knots, [1.0, 2.0])
    np.testing.assert_allclose(factors, [1.0, 2.0])
    np.testing.assert_allclose(
        apply_level(np.array([1.0, 1.5, 2.0, 3.0]), knots, factors), [1, 2.25, 4, 6]
    )
    # weights count: rows weighted 3 weigh as three rows
    w = np.array([3.0, 1.0])
    knots, factors = level_calibration(np.array([1.0, 1.0]), np.array([2.0, 0.0]), w, bins=1)
    assert factors[0] == pytest.approx(6 / 4)
    # nothing to learn: no correction
    knots, factors = level_calibration(np.zeros(3), np.ones(3))
    np.testing.assert_allclose(apply_level(np.array([0.0, 5.0]), knots, factors), [0.0, 5.0])


def test_level_calibration_is_mean_preserving_with_interpolation_and_clipping() -> None:
    rng = np.random.default_rng(1)
    pred = rng.gamma(0.5, 2.0, 5000)
    target = rng.poisson(pred * np.where(pred > 1, 1.6, 0.7)).astype(float)
    weight = rng.choice([1.0, 5.0], 5000)
    knots, factors = level_calibration(pred, target, weight, bins=10, clip=1.5)
    assert knots.size == 5 and (np.diff(knots) > 0).all()  # 5000 rows / 1000 a group
    fitted = apply_level(pred, knots, factors)
    assert (weight * fitted).sum() == pytest.approx((weight * target).sum(), rel=1e-9)
    assert factors[-1] > factors[0]  # the busy rows were under-forecast, the quiet ones over


def _lumpy_panel(n_items: int = 150, n_periods: int = 120, seed: int = 2) -> DemandPanel:
    """Intermittent demand with rare large orders, a panel Tweedie (p = 1.8) under-forecasts."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.02, 0.3, (n_items, 1))
    size = rng.lognormal(1.0, 1.2, (n_items, n_periods)).round() + 1
    y = np.where(rng.random((n_items, n_periods)) < rate, size, 0.0)
    ids = np.array([f"i{i}" for i in range(n_items)])
    return DemandPanel(y, ids, np.datetime64("2026-01-05"), "W")


def test_lightgbm_calibration_is_mean_preserving_on_its_training_rows() -> None:
    panel, h = _lumpy_panel(), 4
    raw = GlobalLightGBM(calibrate=False, **LGB_FAST).fit(panel, h)
    model = GlobalLightGBM(**LGB_FAST).fit(panel, h)
    cal = target_calendar(panel.start, panel.n_periods + h, "W")
    X, target, weight = model._rows(
        panel.y, model.static_.matrix(panel), model._cutoffs(panel.y, h), h, cal
    )
    before = model._predict_raw(model.model_, X)
    np.testing.assert_allclose(before, raw._predict_raw(raw.model_, X))  # the same booster
    after = model._level(model.model_, before)
    total = (weight * target).sum()
    assert (weight * before).sum() < 0.95 * total  # the raw model is biased low
    assert (weight * after).sum() == pytest.approx(total, rel=1e-6)  # the correction is not
    # the forecasts are the raw ones times the factor at their level
    np.testing.assert_allclose(model.predict(), apply_level(raw.predict(), *model.level_))
    assert model.predict().sum() > raw.predict().sum()


def test_calibration_leaves_quantile_and_asymmetric_objectives_alone() -> None:
    panel = _lumpy_panel(n_items=40, n_periods=60)
    for objective in ("quantile", "asymmetric"):
        a = GlobalLightGBM(objective=objective, **LGB_FAST).fit(panel, 3)
        b = GlobalLightGBM(objective=objective, calibrate=False, **LGB_FAST).fit(panel, 3)
        np.testing.assert_array_equal(a.predict(), b.predict())
    with pytest.raises(MethodError, match="calibration_bins"):
        GlobalLightGBM(calibration_bins=0).fit(panel, 3)


# ---------------------------------------------------------------------------- one fit per backtest
@pytest.fixture
def lgb_fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts LightGBM fits: the number of training rows of every ``lightgbm.train`` call."""
    import lightgbm

    fits: list[int] = []
    train = lightgbm.train

    def counting(params: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        booster = train(params, data, *args, **kwargs)
        fits.append(int(data.num_data()))
        return booster

    monkeypatch.setattr(lightgbm, "train", counting)
    return fits


def test_lightgbm_backtest_fits_once_before_the_earliest_origin(lgb_fits: list[int]) -> None:
    panel, h = weekday_panel(n_items=40, n_periods=130, seed=4), 7
    origins = backtest_origins(panel.n_periods, h, 3, h)
    shared = lightgbm_backtest(panel, h, origins, **LGB_FAST)
    assert len(lgb_fits) == 1
    # the same fit as the first window's own, and from it the forecast of every window
    model = GlobalLightGBM(**LGB_FAST).fit(panel.slice_periods(origins[0]), h)
    assert lgb_fits[1] == lgb_fits[0] and len(lgb_fits) == 2
    for o, fc in zip(origins, shared, strict=True):
        np.testing.assert_array_equal(fc, model.predict(panel.slice_periods(o), h))
    # the first window: equal to the per-window path (a fit on the same training part)
    per_window = lightgbm_forecast(panel.slice_periods(origins[0]), h, **LGB_FAST)
    np.testing.assert_array_equal(shared[0], per_window)


@pytest.mark.parametrize(
    ("kernel", "params"),
    [
        (lightgbm_backtest, LGB_FAST),
        (lightgbm_backtest, {**LGB_FAST, "calibrate": False, "strategy": "recursive"}),
        (xgboost_backtest, FAST),
    ],
)
def test_backtest_kernels_do_not_leak(kernel: Any, params: dict[str, Any]) -> None:
    """Changing the actuals at and after an origin changes no forecast from that origin or an
    earlier one (the level calibration included); later origins do see them."""
    panel, h = weekday_panel(n_items=40, n_periods=130, seed=5), 7
    origins = backtest_origins(panel.n_periods, h, 3, h)
    base = kernel(panel, h, origins, **params)
    rng = np.random.default_rng(0)
    for k, o in enumerate(origins):
        y = panel.y.copy()
        y[:, o:] = rng.poisson(20.0, y[:, o:].shape)
        changed = kernel(
            DemandPanel(y, panel.item_ids, panel.start, panel.freq, panel.attributes),
            h,
            origins,
            **params,
        )
        for j in range(len(origins)):
            if j <= k:
                np.testing.assert_array_equal(changed[j], base[j])
            else:  # the test can see a leak: later origins' features include the change
                assert not np.array_equal(changed[j], base[j])


def test_level_calibration_of_the_shared_fit_uses_its_training_rows_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The calibration is learned once, in the one fit, from rows whose targets end before the
    earliest origin: the same knots and factors as a fit on that history alone."""
    levels: list[tuple[np.ndarray, np.ndarray]] = []

    def spy(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        levels.append(level_calibration(*args, **kwargs))
        return levels[-1]

    monkeypatch.setattr(ml, "level_calibration", spy)
    panel, h = _lumpy_panel(n_items=60, n_periods=90), 4
    origins = backtest_origins(panel.n_periods, h, 3, h)
    lightgbm_backtest(panel, h, origins, **LGB_FAST)
    GlobalLightGBM(**LGB_FAST).fit(panel.slice_periods(origins[0]), h)
    assert len(levels) == 2
    for a, b in zip(levels[0], levels[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(levels[0][1], np.ones(1))  # a real correction


def test_xgboost_per_item_backtest_fits_every_window() -> None:
    panel, h = weekday_panel(n_items=12, n_periods=100, seed=1), 5
    origins = backtest_origins(panel.n_periods, h, 2, h)
    params = {**FAST, "mode": "per_item", "per_item_estimators": 10}
    fcs = xgboost_backtest(panel, h, origins, **params)
    for o, fc in zip(origins, fcs, strict=True):
        np.testing.assert_array_equal(fc, xgboost_forecast(panel.slice_periods(o), h, **params))


def test_backtest_counts_one_lightgbm_fit_for_all_windows(lgb_fits: list[int]) -> None:
    panel = weekday_panel(n_items=30, n_periods=120, seed=6)
    kw: dict[str, Any] = {
        "h": 7,
        "n_windows": 3,
        "methods": ["lightgbm", "ma"],
        "params": {"lightgbm": LGB_FAST},
    }
    shared = backtest(panel, **kw)
    assert len(lgb_fits) == 1
    per_window = backtest(panel, reuse_fits=False, **kw)
    assert len(lgb_fits) == 4
    # the same scores for the other methods, and a comparable score for LightGBM
    lgb = pl.col("method") == "lightgbm"
    assert shared.scores.filter(~lgb).equals(per_window.scores.filter(~lgb))
    assert shared.scores.filter(lgb)["mase"].mean() == pytest.approx(
        per_window.scores.filter(lgb)["mase"].mean(), rel=0.25
    )
