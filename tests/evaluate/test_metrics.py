"""Metrics on arrays against utilsforecast.losses on the same data (long frames), to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from utilsforecast import losses as ufl

from sparecast.errors import DataValidationError
from sparecast.evaluate import metrics as M
from sparecast.evaluate.backtest import SCORE_METRICS
from sparecast.methods.ml import asymmetric_loss
from sparecast.selection.router import ROUTER_METRICS

N_ITEMS, H, T = 12, 9, 40


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    y_train = rng.poisson(2.0, (N_ITEMS, T)) * (rng.random((N_ITEMS, T)) < 0.5)
    y_true = rng.poisson(2.0, (N_ITEMS, H)) * (rng.random((N_ITEMS, H)) < 0.5)
    y_true[0] = rng.uniform(1, 5, H)  # one item with no zero actuals
    y_true[1] = 0.0  # all-zero actuals
    y_pred = rng.uniform(0, 3, (N_ITEMS, H))
    y_train = y_train.astype(np.float64)
    y_train[2] = 3.0  # constant training part: scale 0
    return {"y_true": y_true.astype(np.float64), "y_pred": y_pred, "y_train": y_train}


def _long(data: dict[str, np.ndarray], lib: str) -> tuple[object, object]:
    ids_h = np.repeat([f"i{i:02d}" for i in range(N_ITEMS)], H)
    ids_t = np.repeat([f"i{i:02d}" for i in range(N_ITEMS)], T)
    ds_h = np.tile(np.arange(T, T + H), N_ITEMS)
    ds_t = np.tile(np.arange(T), N_ITEMS)
    df = {
        "unique_id": ids_h,
        "ds": ds_h,
        "y": data["y_true"].ravel(),
        "model": data["y_pred"].ravel(),
    }
    train = {"unique_id": ids_t, "ds": ds_t, "y": data["y_train"].ravel()}
    if lib == "pandas":
        return pd.DataFrame(df), pd.DataFrame(train)
    return pl.DataFrame(df), pl.DataFrame(train)


def _values(res: object) -> np.ndarray:
    frame = res if isinstance(res, pl.DataFrame) else pl.from_pandas(res)
    return frame.sort("unique_id")["model"].to_numpy().astype(np.float64)


def _check(ours: np.ndarray, ref: np.ndarray, defined: np.ndarray | None = None) -> None:
    if defined is None:
        defined = np.ones(ours.shape, dtype=bool)
    np.testing.assert_allclose(ours[defined], ref[defined], rtol=1e-9, atol=1e-12)
    assert np.isnan(ours[~defined]).all()
    assert ours.dtype == np.float64 and ours.shape == (N_ITEMS,)


@pytest.mark.parametrize("lib", ["pandas", "polars"])
@pytest.mark.parametrize(
    ("name", "ref_fn"),
    [("mae", ufl.mae), ("rmse", ufl.rmse), ("me", ufl.bias)],
)
def test_unscaled_match_utilsforecast(data: dict, lib: str, name: str, ref_fn) -> None:
    df, _ = _long(data, lib)
    ours = M.METRICS[name](data["y_true"], data["y_pred"])
    _check(ours, _values(ref_fn(df, models=["model"])))


@pytest.mark.parametrize("lib", ["pandas", "polars"])
@pytest.mark.parametrize("seasonality", [1, 7])
@pytest.mark.parametrize(("name", "ref_fn"), [("mase", ufl.mase), ("rmsse", ufl.rmsse)])
def test_scaled_match_utilsforecast(
    data: dict, lib: str, seasonality: int, name: str, ref_fn
) -> None:
    df, train = _long(data, lib)
    ours = M.METRICS[name](data["y_true"], data["y_pred"], data["y_train"], seasonality=seasonality)
    ref = _values(ref_fn(df, models=["model"], seasonality=seasonality, train_df=train))
    defined = np.ones(N_ITEMS, dtype=bool)
    defined[2] = False  # constant training part: scale 0 -> NaN here (inf/NaN in utilsforecast)
    _check(ours, ref, defined)


def test_scale_argument_skips_recomputation(data: dict) -> None:
    s1 = M.seasonal_naive_scale(data["y_train"], 7)
    s2 = M.seasonal_naive_scale(data["y_train"], 7, power=2)
    a = M.mase(data["y_true"], data["y_pred"], data["y_train"], seasonality=7)
    b = M.mase(data["y_true"], data["y_pred"], scale=s1)
    np.testing.assert_array_equal(a, b)
    a = M.rmsse(data["y_true"], data["y_pred"], data["y_train"], seasonality=7)
    b = M.rmsse(data["y_true"], data["y_pred"], scale=s2)
    np.testing.assert_array_equal(a, b)


def test_scaled_need_training_data(data: dict) -> None:
    with pytest.raises(DataValidationError, match="y_train"):
        M.mase(data["y_true"], data["y_pred"])


def test_wape_matches_utilsforecast(data: dict) -> None:
    df, _ = _long(data, "pandas")
    ours = M.wape(data["y_true"], data["y_pred"])
    defined = np.ones(N_ITEMS, dtype=bool)
    defined[1] = False  # zero actuals
    _check(ours, _values(ufl.wape(df, models=["model"])), defined)


def test_mape_matches_utilsforecast_pandas(data: dict) -> None:
    # utilsforecast sets zero-actual periods to NaN; pandas' mean skips them, as we do.
    df, _ = _long(data, "pandas")
    ours = M.mape(data["y_true"], data["y_pred"])
    defined = np.ones(N_ITEMS, dtype=bool)
    defined[1] = False
    _check(ours, _values(ufl.mape(df, models=["model"])), defined)


def test_mape_matches_utilsforecast_polars_without_zeros(data: dict) -> None:
    d = dict(data)
    d["y_true"] = data["y_true"] + 1.0
    df, _ = _long(d, "polars")
    _check(M.mape(d["y_true"], d["y_pred"]), _values(ufl.mape(df, models=["model"])))


@pytest.mark.parametrize("lib", ["pandas", "polars"])
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_pinball_matches_quantile_loss(data: dict, lib: str, q: float) -> None:
    df, _ = _long(data, lib)
    ref = _values(ufl.quantile_loss(df, models={"model": "model"}, q=q))
    _check(M.pinball(data["y_true"], data["y_pred"], quantile=q), ref)


def test_bias_sign_is_forecast_minus_actual() -> None:
    assert M.me(np.array([[1.0, 1.0]]), np.array([[3.0, 2.0]]))[0] == pytest.approx(1.5)


def test_stockout_weighted_se_by_hand() -> None:
    y_true = np.array([[2.0, 2.0, 2.0]])
    y_pred = np.array([[1.0, 2.0, 4.0]])  # under by 1, exact, over by 2
    assert M.stockout_weighted_se(y_true, y_pred)[0] == pytest.approx((3.0 * 1 + 0 + 4) / 3)
    assert M.stockout_weighted_se(y_true, y_pred, stockout_weight=1.0)[0] == pytest.approx(5 / 3)


def test_uniform_signature_for_every_metric(data: dict) -> None:
    for name, fn in M.METRICS.items():
        out = fn(data["y_true"], data["y_pred"], data["y_train"], seasonality=7)
        assert out.shape == (N_ITEMS,), name
        assert out.dtype == np.float64, name


def test_scale_zero_gives_nan_not_inf() -> None:
    y_train = np.zeros((1, 10))
    out = M.mase(np.ones((1, 3)), np.zeros((1, 3)), y_train)
    assert np.isnan(out[0])


def test_nanmean_count() -> None:
    mean, count = M.nanmean_count(np.array([1.0, np.nan, 3.0]))
    assert mean == pytest.approx(2.0) and count == 2
    mean, count = M.nanmean_count(np.array([np.nan]))
    assert np.isnan(mean) and count == 0


def test_shape_mismatch_raises() -> None:
    with pytest.raises(DataValidationError, match="shape"):
        M.mae(np.zeros((2, 3)), np.zeros((2, 4)))


def test_seasonal_naive_scales_equal_single_scale() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((30, 60)) * (rng.random((30, 60)) < 0.4)).astype(np.float32)
    stops = [50, 30, 30, 8]
    s_abs, s_sq = M.seasonal_naive_scales(y, 7, stops, chunk_items=7)
    for k, stop in enumerate(stops):
        np.testing.assert_allclose(s_abs[k], M.seasonal_naive_scale(y[:, :stop], 7), rtol=1e-12)
        np.testing.assert_allclose(
            s_sq[k], M.seasonal_naive_scale(y[:, :stop], 7, power=2), rtol=1e-12
        )
    s_abs, _ = M.seasonal_naive_scales(y, 7, [7, 50])
    assert np.isnan(s_abs[0]).all() and not np.isnan(s_abs[1]).any()


def test_pis_is_signed_cumulative_periods_in_stock() -> None:
    # forecast 2 every period, actuals 0, 3, 5: errors +2, -1, -3; cumulative +2, +1, -2 -> 1
    assert M.pis(np.array([[0.0, 3.0, 5.0]]), np.array([[2.0, 2.0, 2.0]]))[0] == pytest.approx(1.0)
    # a forecast of zero against demand accumulates shortage: -(1 + 1 + 2) = -4
    assert M.pis(np.array([[1.0, 0.0, 1.0]]), np.zeros((1, 3)))[0] == pytest.approx(-4.0)


def test_registry_carries_the_metric_lists() -> None:
    assert SCORE_METRICS == ("mae", "rmse", "mase", "rmsse", "me", "pis", "asym")
    assert M.metric_names(signed=True) == ("me", "pis")
    assert set(ROUTER_METRICS) == {"mase", "rmsse", "mae", "rmse", "asym", "mase+asym"}
    assert M.METRICS["asym"].options == ("stockout_weight",)


def test_stockout_weighted_se_is_the_mean_of_the_ml_asymmetric_loss(data: dict) -> None:
    for w in (1.0, 3.0, 7.5):
        want = asymmetric_loss(data["y_true"], data["y_pred"], w).mean(axis=1)
        got = M.stockout_weighted_se(data["y_true"], data["y_pred"], stockout_weight=w)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_ratio_parts_pool_over_windows(data: dict) -> None:
    yt, yp = data["y_true"], data["y_pred"]
    for name in ("mape", "wape"):
        parts = M.METRICS[name].parts
        assert parts is not None
        num, den = parts(yt, yp)
        np.testing.assert_allclose(M.ratio_of_sums(num, den), M.METRICS[name](yt, yp), rtol=1e-12)
        # two halves of the horizon pooled = the whole horizon
        half = yt.shape[1] // 2
        a, b = parts(yt[:, :half], yp[:, :half]), parts(yt[:, half:], yp[:, half:])
        pooled = M.ratio_of_sums(a[0] + b[0], a[1] + b[1])
        np.testing.assert_allclose(pooled, M.METRICS[name](yt, yp), rtol=1e-12)
