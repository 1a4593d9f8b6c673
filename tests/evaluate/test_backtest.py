"""Rolling-origin backtest: hand-checked windows, no leakage, selection, summary, errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from utils.panels import make_panel, method_score, two_method_panel

from sparecast import methods as registry
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError, SparecastError
from sparecast.evaluate import metrics as M
from sparecast.evaluate.backtest import (
    PanelTooShortError,
    backtest,
    backtest_origins,
    method_label,
    windows_that_fit,
)
from sparecast.methods import Method, forecast_matrix
from sparecast.pipeline.console import format_summary_lines


# ---------------------------------------------------------------------------- windows
def test_origins_by_hand() -> None:
    # T=20, h=3, 3 windows 2 apart: the last window ends at period 20
    assert backtest_origins(20, 3, 3, 2) == [13, 15, 17]
    assert backtest_origins(20, 3, 1, 3) == [17]


def test_naive_mae_by_hand() -> None:
    #           0  1  2  3  4  5  6  7  8  9 10 11
    y = np.array([0, 2, 0, 4, 1, 0, 3, 5, 0, 6, 2, 0], dtype=float)
    # h=2, 2 windows, step 2 -> origins 8 and 10
    res = backtest(make_panel(y), h=2, n_windows=2, methods=["naive"], seasonality=1)
    assert res.origins == [8, 10]
    assert res.cutoffs == [np.datetime64("2024-01-08"), np.datetime64("2024-01-10")]
    # window 1: naive = y[7] = 5, actual (0, 6): errors (5, -1)
    # window 2: naive = y[9] = 6, actual (2, 0): errors (4, 6)
    assert method_score(res, "item0", "naive", "mae") == pytest.approx(
        ((5 + 1) / 2 + (4 + 6) / 2) / 2
    )
    assert method_score(res, "item0", "naive", "me") == pytest.approx(
        ((5 - 1) / 2 + (4 + 6) / 2) / 2
    )
    assert method_score(res, "item0", "naive", "rmse") == pytest.approx(
        (np.sqrt((25 + 1) / 2) + np.sqrt((16 + 36) / 2)) / 2
    )
    # PIS: cumulative errors (5, 4) -> 9 and (4, 10) -> 14
    assert method_score(res, "item0", "naive", "pis") == pytest.approx((9 + 14) / 2)
    # MASE scale: mean |y_t - y_{t-1}| over each training part
    s1 = np.abs(np.diff(y[:8])).mean()  # 2,2,4,3,1,3,2 -> 17/7
    s2 = np.abs(np.diff(y[:10])).mean()  # + 5,6 -> 28/9
    assert s1 == pytest.approx(17 / 7) and s2 == pytest.approx(28 / 9)
    assert method_score(res, "item0", "naive", "mase") == pytest.approx((3 / s1 + 5 / s2) / 2)
    q1 = np.square(np.diff(y[:8])).mean()
    q2 = np.square(np.diff(y[:10])).mean()
    assert method_score(res, "item0", "naive", "rmsse") == pytest.approx(
        (np.sqrt(13 / q1) + np.sqrt(26 / q2)) / 2
    )
    assert method_score(res, "item0", "naive", "abs_error_sum") == pytest.approx(16.0)
    assert method_score(res, "item0", "naive", "actual_sum") == pytest.approx(8.0)


def test_scores_equal_metric_functions_per_window() -> None:
    rng = np.random.default_rng(3)
    y = (rng.poisson(1.5, (25, 120)) * (rng.random((25, 120)) < 0.3)).astype(np.float32)
    y[0] = 0.0  # no demand at all: scaled errors undefined
    res = backtest(make_panel(y), h=10, n_windows=3, step=7, methods=["naive", "ma"], seasonality=7)
    for name in ("naive", "ma"):
        per_window = {k: [] for k in ("mae", "rmse", "mase", "rmsse", "me", "pis")}
        for origin in res.origins:
            train, actual = y[:, :origin], y[:, origin : origin + 10]
            fc = forecast_matrix(train, 10, name)
            for k in per_window:
                per_window[k].append(M.METRICS[k](actual, fc, train, seasonality=7))
        got = res.scores.filter(pl.col("method") == name)
        for k, values in per_window.items():
            expected = M.nanmean_count(np.vstack(values), axis=0)[0]
            ours = got[k].to_numpy().astype(np.float64)  # null -> NaN
            np.testing.assert_allclose(ours, expected, rtol=1e-9, equal_nan=True, err_msg=k)
    assert method_score(res, "item0", "naive", "mase") is None
    assert method_score(res, "item0", "naive", "n_windows_scaled") == 0


# ---------------------------------------------------------------------------- leakage
def test_naive_ignores_spikes_after_origin() -> None:
    y = np.ones(60)
    h, n_windows = 5, 3
    origins = backtest_origins(60, h, n_windows, h)
    for o in origins:
        y[o:] += 1000.0 * (np.arange(60 - o) == 0)  # spike at every origin
    res = backtest(make_panel(y), h=h, n_windows=n_windows, methods=["naive"], keep_errors=True)
    assert res.errors is not None
    actual = np.stack([y[o : o + h] for o in origins])
    forecasts = res.errors["naive"][:, 0, :] + actual
    # naive always forecasts the last training value, never the spike
    np.testing.assert_allclose(forecasts, np.stack([np.full(h, y[o - 1]) for o in origins]))
    assert (forecasts < 1000).all()


def test_kernel_sees_only_the_training_part(monkeypatch: pytest.MonkeyPatch) -> None:
    y = np.arange(2 * 50, dtype=np.float32).reshape(2, 50)
    seen: list[tuple[int, float]] = []

    def spy(train: np.ndarray, h: int) -> np.ndarray:
        seen.append((train.shape[1], float(np.max(train))))
        return np.zeros((train.shape[0], h))

    monkeypatch.setitem(registry.METHODS, "spy", Method("spy", spy, "records what it sees"))
    res = backtest(make_panel(y), h=4, n_windows=3, step=3, methods=["spy"])
    assert [s[0] for s in seen] == res.origins == [40, 43, 46]
    # the largest value a kernel sees is the last training value of the second row
    assert [s[1] for s in seen] == [float(y[1, o - 1]) for o in res.origins]


def test_panel_method_sees_only_the_training_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    y = np.arange(2 * 50, dtype=np.float32).reshape(2, 50)
    seen: list[tuple[int, np.datetime64]] = []

    def spy(panel: DemandPanel, h: int) -> np.ndarray:
        seen.append((panel.n_periods, panel.end))
        return np.full((panel.n_items, h), -1.0)  # negative: clipped to zero

    monkeypatch.setitem(
        registry.METHODS, "pspy", Method("pspy", spy, "records the panel", needs_panel=True)
    )
    res = backtest(make_panel(y), h=4, n_windows=3, step=3, methods=["pspy"], keep_errors=True)
    assert [s[0] for s in seen] == res.origins == [40, 43, 46]
    assert [s[1] for s in seen] == list(res.cutoffs)
    assert res.errors is not None
    actual = np.stack([y[:, o : o + 4] for o in res.origins])
    np.testing.assert_allclose(res.errors["pspy"] + actual, 0.0)  # forecasts were 0, not -1


def test_asym_by_hand() -> None:
    # One item, h=2, one window: forecast (naive) 2, actuals 4 and 1 -> errors -2 (under), +1.
    y = np.array([1.0, 3.0, 2.0, 4.0, 1.0])
    res = backtest(make_panel(y), h=2, n_windows=1, methods=["naive"], stockout_weight=3.0)
    scale2 = np.mean(np.diff(y[:3]) ** 2)  # in-sample naive MSE: (4 + 1) / 2
    expected = (3.0 * 4.0 + 1.0) / 2 / scale2
    assert method_score(res, "item0", "naive", "asym") == pytest.approx(expected)
    res1 = backtest(make_panel(y), h=2, n_windows=1, methods=["naive"], stockout_weight=1.0)
    assert method_score(res1, "item0", "naive", "asym") == pytest.approx(
        method_score(res1, "item0", "naive", "rmsse") ** 2
    )
    with pytest.raises(SparecastError, match="stockout_weight"):
        backtest(make_panel(y), h=2, n_windows=1, methods=["naive"], stockout_weight=0.0)


# ---------------------------------------------------------------------------- summary
def test_summary_and_lines() -> None:
    panel, classes = two_method_panel()
    res = backtest(panel, h=7, n_windows=3, methods=["naive", "ma"], seasonality=1)
    summ = res.summary(classes, metric="mase")
    assert set(summ["sb_class"]) == {"smooth", "erratic", "no_demand", "all"}
    allrows = summ.filter(pl.col("sb_class") == "all")
    assert allrows["method"].to_list() == ["naive", "ma", "zero"]  # the reference last
    assert allrows["n_items"].to_list() == [3, 3, 3]
    assert allrows["n_scored"].to_list() == [2, 2, 2]  # item2 has no defined MASE
    naive_mase = np.mean([method_score(res, i, "naive", "mase") for i in ("item0", "item1")])
    ma_mase = np.mean([method_score(res, i, "ma", "mase") for i in ("item0", "item1")])
    ma_row = allrows.filter(pl.col("method") == "ma").row(0, named=True)
    assert ma_row["mase"] == pytest.approx(ma_mase)
    assert ma_row["mase_vs_naive_pct"] == pytest.approx((naive_mase - ma_mase) / naive_mase * 100)
    assert ma_row["mase_vs_ma_pct"] == pytest.approx(0.0)
    assert ma_row["label"] == "MA(28)"
    # class WAPE is a ratio of sums over the class
    sums = res.scores.filter(pl.col("method") == "ma")
    assert ma_row["wape"] == pytest.approx(sums["abs_error_sum"].sum() / sums["actual_sum"].sum())
    # one chosen method per class with a defined metric, none for no_demand
    chosen = summ.filter(pl.col("chosen"))
    assert sorted(chosen["sb_class"]) == ["all", "erratic", "smooth"]
    assert chosen.filter(pl.col("sb_class") == "smooth")["method"][0] == "naive"

    # the table: a header, per class the chosen method (*) then the zero row
    lines = format_summary_lines(summ)
    assert lines[0].split() == [
        "group", "items", "method", "RMSSE", "median", "MAE", "bias", "%", "vs", "zero", "%"
    ]  # fmt: skip
    assert lines[1].split()[:4] == ["smooth", "1", "naive", "*"]
    assert lines[2].split()[0] == "zero"
    assert lines[-2].split()[:4] == ["all", "3", "naive", "*"] and lines[-1].split()[0] == "zero"
    assert max(len(line) for line in lines) <= 96


def test_method_labels() -> None:
    assert method_label("ma") == "MA(28)"
    assert method_label("ma", {"window": 7}) == "MA(7)"
    assert method_label("sba") == "SBA"
    assert method_label("naive") == "naive"


# ---------------------------------------------------------------------------- errors, options
def test_too_short_panel_raises() -> None:
    panel = make_panel(np.ones(40))
    with pytest.raises(PanelTooShortError, match="needs at least") as info:
        backtest(panel, h=28, n_windows=3, methods=["naive"])
    assert isinstance(info.value, SparecastError)
    assert "40 periods" in str(info.value)


def test_bad_parameters_raise() -> None:
    panel = make_panel(np.ones(100))
    with pytest.raises(SparecastError, match="h must be"):
        backtest(panel, h=0, methods=["naive"])
    with pytest.raises(MethodError, match="not backtested"):
        backtest(panel, h=5, methods=["naive"], params={"ma": {"window": 3}})


def test_params_reach_the_kernel_and_progress_is_reported() -> None:
    y = np.arange(60, dtype=float)
    calls: list[tuple[int, int, str]] = []
    res = backtest(
        make_panel(y),
        h=5,
        n_windows=2,
        methods=["ma", "naive"],
        params={"ma": {"window": 2}},
        progress=lambda d, t, label: calls.append((d, t, label)),
        keep_errors=True,
    )
    # two windows of ma, naive and the reference zero
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5, 6] and {c[1] for c in calls} == {6}
    assert calls[-1][2] == "zero window 2/2"
    assert calls[0][2] == "ma window 1/2"
    assert res.labels["ma"] == "MA(2)"
    # MA(2) at origin 50: mean(48, 49) = 48.5; actuals 50..54
    assert res.errors is not None
    np.testing.assert_allclose(res.errors["ma"][0, 0], 48.5 - np.arange(50, 55))
    assert set(res.timings) >= {"kernels", "scoring", "total"}


def test_scores_frame_layout() -> None:
    panel, _ = two_method_panel()
    res = backtest(panel, h=7, n_windows=2, methods=["naive", "ma"])
    assert res.scores.height == 9  # 3 items x (naive, ma and the reference zero)
    assert res.scores.columns[:8] == [
        "unique_id",
        "method",
        "mae",
        "rmse",
        "mase",
        "rmsse",
        "me",
        "pis",
    ]
    assert "error_sum" in res.scores.columns and "abs_error_sum" in res.scores.columns
    assert res.methods == ["naive", "ma", "zero"] and res.references == ("zero",)
    # no reference: only the methods asked for; zero asked for is a method, not a reference
    assert backtest(panel, h=7, n_windows=2, methods=["naive"], references=()).methods == ["naive"]
    asked = backtest(panel, h=7, n_windows=2, methods=["zero", "naive"])
    assert asked.methods == ["zero", "naive"] and asked.references == ()


# ---------------------------------------------------------------------------- MAPE/WAPE, tiers
def test_mape_and_wape_only_for_regular_items() -> None:
    regular = [2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4]
    sparse = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0]
    res = backtest(
        make_panel([regular, sparse]), h=2, n_windows=2, methods=["naive"], seasonality=1
    )
    # origins 8 and 10; naive of the regular item: 4 then 4, actuals (2, 4) and (2, 4)
    # APE: |4-2|/2 = 1, 0 in both windows -> MAPE 0.5; WAPE: (2 + 2) / (6 + 6) = 1/3
    assert method_score(res, "item0", "naive", "mape") == pytest.approx(0.5)
    assert method_score(res, "item0", "naive", "wape") == pytest.approx(4 / 12)
    # the intermittent item (demand on 1 of 12 periods) gets no percentage error at all
    assert method_score(res, "item1", "naive", "mape") is None
    assert method_score(res, "item1", "naive", "wape") is None
    # an explicit mask overrides the tiers
    forced = backtest(
        make_panel([regular, sparse]),
        h=2,
        n_windows=2,
        methods=["naive"],
        seasonality=1,
        percentage_items=np.array([False, False]),
    )
    assert method_score(forced, "item0", "naive", "mape") is None


def test_summary_by_tier() -> None:
    rng = np.random.default_rng(1)
    dense = rng.integers(1, 5, (3, 60))
    sparse = (rng.random((5, 60)) < 0.05) * rng.integers(1, 9, (5, 60))
    panel = make_panel(np.vstack([dense, sparse]))
    res = backtest(panel, h=7, n_windows=2, methods=["naive", "ma"], seasonality=1)
    by_tier = res.summary(by="tier")
    assert by_tier.columns[0] == "tier"
    groups = set(by_tier["tier"].to_list())
    assert "high_volume" in groups and "all" in groups
    assert by_tier["tier"][0] == "high_volume" and by_tier["tier"][-1] == "all"  # tier order
    assert by_tier.filter(pl.col("tier") == "high_volume")["n_items"].to_list() == [3, 3, 3]
    lines = format_summary_lines(by_tier)
    assert any(line.split()[:2] == ["high_volume", "3"] for line in lines)


def test_windows_that_fit_match_what_the_backtest_accepts() -> None:
    # h=7, seasonality=1: a window needs 7 forecast and 2 training periods
    assert windows_that_fit(8, 7, 3) == 0
    assert windows_that_fit(9, 7, 3) == 1
    assert windows_that_fit(16, 7, 3) == 2
    assert windows_that_fit(100, 7, 3) == 3
    assert windows_that_fit(16, 7, 3, step=1) == 3
    y = np.ones((1, 16))
    n = windows_that_fit(16, 7, 5, step=3)
    backtest(make_panel(y), h=7, n_windows=n, step=3, methods=["naive"])
    with pytest.raises(PanelTooShortError):
        backtest(make_panel(y), h=7, n_windows=n + 1, step=3, methods=["naive"])


# ---------------------------------------------------------------------------- zero, bias
def test_zero_reference_and_relative_bias_by_hand() -> None:
    #            0  1  2  3  4  5  6  7  8  9 10 11
    y0 = np.array([0, 2, 0, 4, 1, 0, 3, 5, 0, 6, 2, 0], dtype=float)
    y1 = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=float)  # constant: no RMSSE scale
    y2 = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    res = backtest(make_panel([y0, y1, y2]), h=2, n_windows=2, methods=["naive"], seasonality=1)
    assert res.methods == ["naive", "zero"] and res.references == ("zero",)
    # origins 8 and 10. item0: naive 5 vs (0, 6), 6 vs (2, 0): errors 5, -1, 4, 6
    assert method_score(res, "item0", "naive", "error_sum") == pytest.approx(14.0)
    assert method_score(res, "item0", "naive", "actual_sum") == pytest.approx(8.0)
    assert method_score(res, "item0", "zero", "error_sum") == pytest.approx(-8.0)
    # item1: naive is exact; item2: naive 1 vs (0, 1), 1 vs (0, 1): errors 1, 0, 1, 0
    assert method_score(res, "item1", "naive", "error_sum") == pytest.approx(0.0)
    assert method_score(res, "item2", "naive", "error_sum") == pytest.approx(2.0)
    # the zero forecast's RMSSE: sqrt(mean(actual^2) / in-sample naive MSE) per window
    q1 = np.square(np.diff(y0[:8])).mean()  # 4,4,16,9,1,9,4 -> 47/7
    q2 = np.square(np.diff(y0[:10])).mean()  # + 25, 36 -> 108/9
    assert (q1, q2) == (pytest.approx(47 / 7), pytest.approx(12.0))
    zero0 = (np.sqrt((0 + 36) / 2 / q1) + np.sqrt((4 + 0) / 2 / q2)) / 2
    assert method_score(res, "item0", "zero", "rmsse") == pytest.approx(zero0)
    zero2 = np.sqrt((0 + 1) / 2 / 1.0)  # item2's in-sample naive MSE is 1 in both windows
    assert method_score(res, "item2", "zero", "rmsse") == pytest.approx(zero2)
    assert method_score(res, "item1", "zero", "rmsse") is None

    classes = pl.DataFrame(
        {"unique_id": ["item0", "item1", "item2"], "sb_class": ["lumpy", "smooth", "lumpy"]}
    )
    summ = res.summary(classes, metric="rmsse")
    assert {
        "rmsse_median",
        "rel_bias",
        "mase_vs_zero_pct",
        "rmsse_vs_zero_pct",
        "wape",
    } <= set(summ.columns)

    def row(group: str, method: str) -> dict:
        return summ.filter((pl.col("sb_class") == group) & (pl.col("method") == method)).row(
            0, named=True
        )

    # relative bias: sum of errors over sum of actuals of the group (item1's actuals count)
    assert row("lumpy", "naive")["rel_bias"] == pytest.approx((14 + 2) / (8 + 2))
    assert row("all", "naive")["rel_bias"] == pytest.approx((14 + 0 + 2) / (8 + 4 + 2))
    assert row("all", "zero")["rel_bias"] == pytest.approx(-1.0)
    assert row("smooth", "naive")["rel_bias"] == pytest.approx(0.0)
    # RMSSE vs zero and the median over items (item1 has none)
    naive_rmsse = [method_score(res, i, "naive", "rmsse") for i in ("item0", "item2")]
    assert row("all", "zero")["rmsse"] == pytest.approx((zero0 + zero2) / 2)
    assert row("all", "naive")["rmsse_median"] == pytest.approx(np.median(naive_rmsse))
    want = ((zero0 + zero2) / 2 - np.mean(naive_rmsse)) / ((zero0 + zero2) / 2) * 100
    assert row("all", "naive")["rmsse_vs_zero_pct"] == pytest.approx(want)
    assert row("all", "zero")["rmsse_vs_zero_pct"] == pytest.approx(0.0)
    # zero beats naive here, but a reference is never the chosen method
    assert want < 0
    assert summ.filter(pl.col("chosen"))["method"].unique().to_list() == ["naive"]


def test_relative_bias_is_null_without_demand() -> None:
    res = backtest(make_panel(np.zeros(12)), h=2, n_windows=2, methods=["naive"])
    summ = res.summary(pl.DataFrame({"unique_id": ["item0"], "sb_class": ["no_demand"]}))
    assert summ["rel_bias"].null_count() == summ.height
    assert summ["rmsse_median"].null_count() == summ.height


# ---------------------------------------------------------------------------- one fit per run
def _one_fit_method(fits: list[int]) -> Method:
    """A panel method whose "model" is each item's mean over the history it is fitted on and
    whose forecast from an origin adds the last value before that origin; ``fits`` records the
    number of periods of every fit (per window through the kernel, once through the hook)."""

    def fit(panel: DemandPanel) -> np.ndarray:
        fits.append(panel.n_periods)
        return panel.y.mean(axis=1)

    def kernel(panel: DemandPanel, h: int) -> np.ndarray:
        level = fit(panel)
        return np.repeat((level + panel.y[:, -1])[:, None], h, axis=1)

    def once(panel: DemandPanel, h: int, origins: list[int]) -> list[np.ndarray]:
        level = fit(panel.slice_periods(min(origins)))
        return [np.repeat((level + panel.y[:, o - 1])[:, None], h, axis=1) for o in origins]

    return Method("onefit", kernel, "one fit", needs_panel=True, backtest_kernel=once)


def test_backtest_kernel_fits_once_and_matches_the_per_window_path_on_its_first_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    y = rng.poisson(3.0, (4, 60)).astype(np.float32)
    fits: list[int] = []
    monkeypatch.setitem(registry.METHODS, "onefit", _one_fit_method(fits))
    kw = {"h": 5, "n_windows": 3, "methods": ["onefit"], "keep_errors": True}
    shared = backtest(make_panel(y), **kw)
    assert fits == [shared.origins[0]]  # one fit, on the periods before the earliest origin
    fits.clear()
    per_window = backtest(make_panel(y), reuse_fits=False, **kw)
    assert fits == per_window.origins == shared.origins  # one fit per window
    assert shared.errors is not None and per_window.errors is not None
    # the first window's training part is the same: the same forecasts
    np.testing.assert_array_equal(shared.errors["onefit"][0], per_window.errors["onefit"][0])
    # later windows: the older model (its level from fewer periods), the origin's last value
    actual = np.stack([y[:, o : o + 5] for o in shared.origins])
    level = y[:, : shared.origins[0]].mean(axis=1)
    for w, o in enumerate(shared.origins):
        expected = np.repeat((level + y[:, o - 1])[:, None], 5, axis=1)
        np.testing.assert_allclose(shared.errors["onefit"][w] + actual[w], expected, rtol=1e-6)

    # one window: both paths are the same backtest
    one = backtest(make_panel(y), h=5, n_windows=1, methods=["onefit"])
    assert one.scores.equals(
        backtest(make_panel(y), h=5, n_windows=1, methods=["onefit"], reuse_fits=False).scores
    )


def test_backtest_kernel_must_return_one_forecast_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def short(panel: DemandPanel, h: int, origins: list[int]) -> list[np.ndarray]:
        return [np.zeros((panel.n_items, h))]

    def bug(panel: DemandPanel, h: int, origins: list[int]) -> list[np.ndarray]:
        raise ValueError("boom")

    panel = make_panel(np.ones((2, 40)))
    for name, hook in (("short", short), ("bug", bug)):
        method = Method(
            name, lambda p, h: np.zeros((p.n_items, h)), "", needs_panel=True, backtest_kernel=hook
        )
        monkeypatch.setitem(registry.METHODS, name, method)
    with pytest.raises(MethodError, match="returned 1 backtest forecasts for 3 origins"):
        backtest(panel, h=4, n_windows=3, methods=["short"])
    with pytest.raises(MethodError, match=r"'bug' failed in the backtest \(one fit.*boom"):
        backtest(panel, h=4, n_windows=3, methods=["bug"])
