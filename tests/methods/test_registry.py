"""The method registry (sparecast.methods): registering panel methods from a layer above."""

from __future__ import annotations

import numpy as np
import pytest

import sparecast
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.methods import (
    METHODS,
    Method,
    backtest_forecasts,
    baseline,
    forecast_matrix,
    forecast_panel,
    get_method,
    register_method,
)
from sparecast.selection.router import hybrid_forecast


def test_hybrid_is_registered_by_the_selection_package() -> None:
    m = get_method("hybrid")
    assert m.kernel is hybrid_forecast and m.needs_panel


def test_register_method_adds_and_refuses_a_taken_name() -> None:
    extra = Method("_test_extra", baseline.naive, "naive under another name")
    try:
        register_method(extra)
        register_method(extra)  # the same method again: no error
        assert get_method("_test_extra") is extra
        with pytest.raises(MethodError, match="already registered"):
            register_method(Method("_test_extra", baseline.ses, "another one"))
    finally:
        METHODS.pop("_test_extra", None)


def test_ma_default_window_is_the_kernels() -> None:
    assert get_method("ma").defaults == {"window": baseline.MA_WINDOW}
    y = np.arange(40, dtype=float)[None, :]
    np.testing.assert_allclose(baseline.moving_average(y, 1), y[:, -baseline.MA_WINDOW :].mean())


# ---------------------------------------------------------------------------- kernel parameters
def _small_panel() -> DemandPanel:
    y = np.array([[0, 2, 0, 3, 1, 0, 4, 2], [1, 1, 0, 0, 2, 1, 0, 1]], dtype=np.float64)
    return DemandPanel(y, np.array(["A", "B"]), np.datetime64("2026-01-01"), "D")


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("ma", {"window": 0}, r"method 'ma': parameter window must be an integer >= 1, got 0"),
        ("ma", {"window": 2.5}, r"method 'ma': parameter window must be an integer >= 1"),
        ("ma_nonzero", {"window": -1}, r"method 'ma_nonzero': parameter window must be"),
        (
            "seasonal_naive",
            {"season_length": 0},
            r"method 'seasonal_naive': parameter season_length must be an integer >= 1, got 0",
        ),
        ("ses", {"alpha": 0.0}, r"method 'ses': parameter alpha must be in \(0, 1\], got 0.0"),
        ("croston", {"alpha": 1.5}, r"method 'croston': parameter alpha must be in \(0, 1\]"),
        ("sba", {"alpha": 2}, r"method 'sba': parameter alpha must be in \(0, 1\], got 2"),
        ("tsb", {"alpha_d": 0.0}, r"method 'tsb': parameter alpha_d must be in \(0, 1\]"),
        ("tsb", {"alpha_p": 1.1}, r"method 'tsb': parameter alpha_p must be in \(0, 1\]"),
        ("ma", {"windw": 3}, r"bad parameters .* for method 'ma'"),
    ],
)
def test_bad_kernel_parameters_raise_method_error_through_the_public_api(
    method: str, params: dict, needle: str
) -> None:
    with pytest.raises(MethodError, match=needle):
        sparecast.forecast(_small_panel(), 2, [method], {method: params})


def test_both_entry_points_check_the_horizon_the_same_way() -> None:
    panel = _small_panel()
    for call in (
        lambda: forecast_matrix(panel.y, 0, "ma"),
        lambda: forecast_panel(panel, 0, "ma"),
        lambda: forecast_panel(panel, 0, "lightgbm"),
    ):
        with pytest.raises(MethodError, match="horizon h must be >= 1, got 0"):
            call()


# ---------------------------------------------------------------------------- backtest kernels
def test_backtest_forecasts_use_the_hook_or_one_forecast_per_origin() -> None:
    """Without a hook: the kernel on each origin's history; with one: the hook's forecasts,
    clipped at zero, its parameters merged over the defaults and checked."""
    panel = _small_panel()
    origins = [5, 6, 7]
    naive = backtest_forecasts(panel, 2, origins, "naive")
    for o, fc in zip(origins, naive, strict=True):
        np.testing.assert_array_equal(fc, np.repeat(panel.y[:, o - 1 : o], 2, axis=1))
    seen: list[tuple[list[int], dict]] = []

    def hook(p: DemandPanel, h: int, origins: list[int], level: float) -> list[np.ndarray]:
        seen.append((origins, {"level": level}))
        return [np.full((p.n_items, h), level - o) for o in origins]

    m = Method(
        "_hooked",
        lambda p, h, level: np.zeros((p.n_items, h)),
        "",
        {"level": 6.0},
        needs_panel=True,
        backtest_kernel=hook,
    )
    out = backtest_forecasts(panel, 2, origins, m)
    assert seen == [(origins, {"level": 6.0})]
    assert [float(fc[0, 0]) for fc in out] == [1.0, 0.0, 0.0]  # 6 - 7 clipped at zero
    assert [fc.shape for fc in out] == [(2, 2)] * 3
    # reuse_fits=False: the kernel on each origin's history
    assert all((fc == 0).all() for fc in backtest_forecasts(panel, 2, origins, m, reuse_fits=False))
    with pytest.raises(MethodError, match="bad parameters .* for method '_hooked'"):
        backtest_forecasts(panel, 2, origins, m, {"levl": 1.0})
    with pytest.raises(MethodError, match="horizon h must be >= 1"):
        backtest_forecasts(panel, 0, origins, m)


def test_the_global_models_have_backtest_kernels() -> None:
    assert get_method("lightgbm").backtest_kernel is not None
    assert get_method("xgboost").backtest_kernel is not None
    assert get_method("hybrid").backtest_kernel is None  # it runs once per window
