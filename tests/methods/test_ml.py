"""Global ML models: training rows, objectives, asymmetric loss, strategies (their features are
tested in test_features.py)."""

from __future__ import annotations

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
from sparecast.methods import METHODS, forecast_panel
from sparecast.methods.features import target_calendar
from sparecast.methods.ml import (
    OBJECTIVES,
    STRATEGIES,
    GlobalLightGBM,
    XGBoostRegular,
    asymmetric_grad_hess,
    asymmetric_loss,
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
