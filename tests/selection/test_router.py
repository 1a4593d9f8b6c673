"""Hybrid router: rules, auto choice against an independent computation, fallbacks, top-k means,
per-item choice, the nested backtest without leakage, configuration and the pipeline."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone

from sparecast import forecast
from sparecast.classify import TierThresholds, classify
from sparecast.config import load_settings
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError, MethodError, SparecastError
from sparecast.evaluate import metrics as M
from sparecast.evaluate.backtest import backtest, backtest_origins
from sparecast.methods import forecast_matrix
from sparecast.methods.combine import combination_members
from sparecast.pipeline.core import make_router, run_core
from sparecast.selection.choose import select
from sparecast.selection.combinations import with_combinations
from sparecast.selection.router import DEFAULT_RULES, HybridRouter


def _panel(y: np.ndarray, ids: list[str] | None = None) -> DemandPanel:
    y = np.asarray(y, dtype=np.float32)
    ids = ids or [f"item{i:02d}" for i in range(y.shape[0])]
    return DemandPanel(y=y, item_ids=np.array(ids, dtype=object), start=np.datetime64("2024-01-01"))


TIER_RULES = {
    "high_volume": "naive",
    "regular": "ma",
    "intermittent": "sba",
    "very_intermittent": "ma_nonzero",
}
"""A different method for each tier of ``_tiered_panel``."""


def _tiered_panel(t: int = 120) -> DemandPanel:
    """Three items per frequency tier: demand on every period (high_volume), every 4th
    (regular), every 20th (intermittent) and once (very_intermittent); sizes 1-5."""
    rows = []
    for every in (1, 4, 20, t):
        for k in range(3):
            row = np.zeros(t)
            row[k::every] = 1 + (np.arange(t)[k::every] + k) % 5
            rows.append(row)
    return _panel(np.vstack(rows))


def _trend_and_noise_panel(seed: int = 1, t: int = 150) -> DemandPanel:
    """Six items rising steadily (the last value is the best forecast: naive wins) and six
    noisy flat items (a long mean wins): every item has demand every day."""
    rng = np.random.default_rng(seed)
    trend = [5 + 0.5 * np.arange(t) + rng.normal(0, 0.3, t) for _ in range(6)]
    flat = [20 + rng.normal(0, 6, t) for _ in range(6)]
    return _panel(np.clip(np.vstack(trend + flat), 0.1, None))


def test_predict_on_another_panel_uses_the_fitted_choice_and_the_fallback() -> None:
    panel = _tiered_panel()
    rules = TIER_RULES
    router = HybridRouter("rules", rules=rules, fallback="ses").fit(panel, 7)
    full = router.predict(panel, 7)
    assert router.notes_ == []
    # items reversed, one item dropped and one new item: fitted items keep their method
    order = np.arange(panel.n_items)[::-1][:-1]
    other = _panel(
        np.vstack([panel.y[order], np.arange(120) % 3]),
        [str(panel.item_ids[i]) for i in order] + ["new-item"],
    )
    fc = router.predict(other, 7)
    np.testing.assert_allclose(fc[:-1], full[order])
    np.testing.assert_allclose(fc[-1], forecast_matrix(other.y[-1:], 7, "ses")[0])
    assert router.notes_ == ["router: 1 item(s) the router was not fitted on get the fallback ses"]


# ---------------------------------------------------------------------------- rules
def test_rules_map_tiers_to_methods_and_forecast_with_them() -> None:
    panel = _tiered_panel()
    rules = TIER_RULES
    router = HybridRouter("rules", rules=rules).fit(panel, 7)
    tiers = classify(panel)["tier"].to_list()
    assert (
        tiers
        == ["high_volume"] * 3 + ["regular"] * 3 + ["intermittent"] * 3 + ["very_intermittent"] * 3
    )
    sel = router.selection_
    assert sel.columns == ["unique_id", "method", "reason"]
    assert sel["method"].to_list() == [rules[t] for t in tiers]
    assert sel["reason"][0] == "rule: tier high_volume -> naive"
    fc = router.predict(panel, 7)
    for i, t in enumerate(tiers):
        expected = forecast_matrix(
            panel.y[i : i + 1], 7, rules[t], {"window": 28} if rules[t] == "ma" else None
        )
        np.testing.assert_allclose(fc[i], expected[0])


def test_rules_missing_tiers_keep_the_defaults() -> None:
    assert DEFAULT_RULES == {
        "high_volume": "xgboost",
        "regular": "xgboost",
        "intermittent": "lightgbm",
        "very_intermittent": "ma_nonzero",
    }
    rules = {"regular": "tsb", "intermittent": "sba", "high_volume": "ses"}
    assert HybridRouter("rules", rules=rules).rule_map() == {
        **rules,
        "very_intermittent": "ma_nonzero",
    }
    with pytest.raises(ConfigError, match="unknown tier"):
        HybridRouter("rules", rules={"lumpy": "sba"}).rule_map()
    with pytest.raises(MethodError, match="unknown method 'nope'"):
        HybridRouter("rules", rules={**rules, "regular": "nope"}).rule_map()


def test_custom_rules_from_a_toml_file(tmp_path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text(
        '[router]\nmode = "rules"\n[router.rules]\nhigh_volume = "ses"\nregular = "tsb"\n'
        'intermittent = "croston"\nvery_intermittent = "ma_nonzero"\n'
    )
    settings = load_settings(cfg, horizon=7)
    panel = _tiered_panel()
    result = run_core(panel, settings)
    methods = result.selection["method"].to_list()
    assert methods == ["ses"] * 3 + ["tsb"] * 3 + ["croston"] * 3 + ["ma_nonzero"] * 3
    assert result.selection["reason"][3] == "rule: tier regular -> tsb"
    fc = result.forecasts
    assert fc is not None
    first = fc.filter(pl.col("unique_id") == "item03")
    np.testing.assert_allclose(first["forecast"].to_numpy(), first["tsb"].to_numpy())
    assert set(first["method"]) == {"tsb"}
    # naive and ma are backtested beside the rules' methods for the summary
    assert result.backtest is not None and {"naive", "ma", "ses"} <= set(result.backtest.methods)


# ---------------------------------------------------------------------------- auto
def test_auto_picks_the_method_that_is_truly_best() -> None:
    panel = _trend_and_noise_panel()
    h, n_windows = 7, 3
    router = HybridRouter(
        "auto",
        candidates=["ma", "naive", "ses"],
        metric="mase",
        select_by="item",
        min_history=1,
        n_windows=3,
        top_k=1,
        default=None,
    ).fit(panel, h)
    # independent computation: forecasts of each method on each window's training part
    y = panel.y.astype(np.float64)
    origins = backtest_origins(panel.n_periods, h, n_windows, h)
    mean_mase = {}
    for m in ("ma", "naive", "ses"):
        per_window = [
            M.mase(
                y[:, o : o + h],
                forecast_matrix(y[:, :o], h, m, {"window": 28} if m == "ma" else None),
                y[:, :o],
            )
            for o in origins
        ]
        mean_mase[m] = np.mean(per_window, axis=0)
    best = [min(mean_mase, key=lambda m, i=i: mean_mase[m][i]) for i in range(panel.n_items)]
    assert router.selection_["method"].to_list() == best
    assert best[:6] == ["naive"] * 6 and set(best[6:]) <= {"ma", "ses"}
    assert router.selection_["reason"][0].startswith("best mase of the item")
    np.testing.assert_allclose(
        router.predict(panel, h)[0], forecast_matrix(panel.y[:1], h, "naive")[0]
    )


def test_auto_by_class_uses_the_class_mean() -> None:
    panel = _trend_and_noise_panel()
    router = HybridRouter(
        "auto", candidates=["ma", "naive"], metric="mase", select_by="class", top_k=1
    ).fit(panel, 7)
    bt = router.backtest_
    assert bt is not None
    classes = router.classification_.select("unique_id", "sb_class")
    means = (
        bt.scores.join(classes, on="unique_id")
        .group_by("sb_class", "method")
        .agg(pl.col("mase").mean())
    )
    for sb_class in classes["sb_class"].unique():
        part = means.filter(pl.col("sb_class") == sb_class).sort("mase")
        ids = classes.filter(pl.col("sb_class") == sb_class)["unique_id"]
        chosen = router.selection_.filter(pl.col("unique_id").is_in(ids.to_list()))[
            "method"
        ].unique()
        assert chosen.to_list() == [part["method"][0]]


def test_fallback_when_the_history_is_too_short() -> None:
    panel = _panel(np.ones((2, 8)))  # 8 periods cannot hold a 7-period window + 2 to scale
    router = HybridRouter("auto", candidates=["sba", "naive"], fallback="ses").fit(panel, 7)
    assert router.backtest_ is None
    assert set(router.selection_["method"]) == {"ses"}
    assert "too short to backtest" in router.selection_["reason"][0]
    assert router.methods_ == ["ses"]
    # an item without any demand before the origins falls back with its own reason
    y = np.vstack([np.arange(60) % 3, np.zeros(60)])
    router = HybridRouter("auto", candidates=["sba", "naive"], select_by="item").fit(_panel(y), 7)
    assert router.selection_.row(1) == ("item01", "robust", "fallback robust: no history")


def test_top_k_mean_equals_the_mean_of_the_members() -> None:
    panel = _trend_and_noise_panel()
    router = HybridRouter(
        "auto",
        candidates=["ma", "naive", "ses", "sba"],
        metric="mase",
        top_k=2,
        select_by="item",
        min_history=1,
        default=None,
        fallback="ma",
    ).fit(panel, 7)
    fc = router.predict(panel, 7)
    bt = router.backtest_
    assert bt is not None
    for i, name in enumerate(router.selection_["method"]):
        members = combination_members(name)
        assert len(members) == 2 and name.startswith("mean(")
        # members are the item's two lowest MASE, best first
        item = bt.scores.filter(pl.col("unique_id") == panel.item_ids[i]).sort("mase")
        assert members == item["method"].head(2).to_list()
        expected = np.mean(
            [
                forecast_matrix(panel.y[i : i + 1], 7, m, {"window": 28} if m == "ma" else None)[0]
                for m in members
            ],
            axis=0,
        )
        np.testing.assert_allclose(fc[i], expected)
    # the combination's backtest score is the score of the mean forecast, window by window
    name = router.selection_["method"][0]
    combo = with_combinations(bt, [name])
    a, b = combination_members(name)
    errors = bt.errors
    assert errors is not None
    y = panel.y.astype(np.float64)
    maes = [np.abs((errors[a][w, 0] + errors[b][w, 0]) / 2).mean() for w in range(3)]
    got = combo.scores.filter((pl.col("method") == name) & (pl.col("unique_id") == "item00"))
    assert got["mae"][0] == pytest.approx(np.mean(maes), rel=1e-5)
    assert got["actual_sum"][0] == pytest.approx(
        sum(y[0, o : o + 7].sum() for o in bt.origins), rel=1e-6
    )


def test_own_choice_only_for_items_with_enough_history() -> None:
    rng = np.random.default_rng(3)
    t = 140
    rich = np.where(rng.random(t) < 0.6, rng.integers(1, 9, t), 0)  # ~60 demand periods
    poor = np.zeros(t)
    poor[[5, 40, 80]] = [2, 3, 1]  # 3 demand periods before the origins
    panel = _panel(np.vstack([rich, poor, rich[::-1]]))
    router = HybridRouter(
        "auto",
        candidates=["ma", "naive", "sba", "tsb"],
        metric="mase",
        select_by="item",
        min_history=10,
        default=None,
    ).fit(panel, 7)
    reasons = router.selection_["reason"].to_list()
    assert reasons[0].startswith("best mase of the item")
    assert reasons[2].startswith("best mase of the item")
    assert "the item has 3 demand periods < min_history 10" in reasons[1]
    assert reasons[1].startswith("best mase in class")


# ---------------------------------------------------------------------------- as a method
def test_hybrid_is_a_method_of_forecast() -> None:
    panel = _trend_and_noise_panel()
    fc = forecast(
        panel,
        7,
        methods=["hybrid", "naive"],
        params={
            "hybrid": {
                "candidates": ["ma", "naive"],
                "select_by": "item",
                "min_history": 1,
                "top_k": 1,
            }
        },
        output="polars",
    )
    item0 = fc.filter(pl.col("unique_id") == "item00")
    np.testing.assert_allclose(item0["hybrid"].to_numpy(), item0["naive"].to_numpy())
    with pytest.raises(SparecastError, match="hybrid"):
        forecast(panel, 7, methods=["hybrid"], params={"hybrid": {"candidates": ["hybrid"]}})


def test_hybrid_backtest_does_not_see_the_window_actuals() -> None:
    # The training part favours naive (a trend); after the origin the series turns flat, which
    # would favour ma if the choice could see the window's actuals.
    rng = np.random.default_rng(5)
    t, h = 120, 7
    base = np.vstack([10 + 0.5 * np.arange(t) + rng.normal(0, 0.2, t) for _ in range(4)])
    changed = base.copy()
    changed[:, t - h :] = 200.0  # only the last window's actuals differ
    params = {
        "hybrid": {"candidates": ["ma", "naive"], "select_by": "item", "min_history": 1, "top_k": 1}
    }
    results = []
    for y in (base, changed):
        res = backtest(
            _panel(y),
            h=h,
            methods=["hybrid", "naive"],
            n_windows=1,
            params=params,
            keep_errors=True,
        )
        assert res.errors is not None
        actual = y[:, t - h :]
        results.append((res.errors["hybrid"][0] + actual, res.errors["naive"][0] + actual))
    # the hybrid's forecasts are the same whatever the window's actuals are ...
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    # ... and they are naive's, the method the training part favours
    np.testing.assert_allclose(results[0][0], results[0][1], rtol=1e-5)


# ---------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[router]\nmode = "magic"', "router.mode"),
        ('[router]\nmetric = "me"', "router.metric"),
        ('[router]\nselect_by = "lump"', "router.select_by"),
        ("[router]\ntop_k = 0", "router.top_k"),
        ("[router]\nmin_history = -1", "router.min_history"),
        ('[router]\ncandidates = ["sba", "nope"]', "router.candidates: unknown method"),
        ("[router]\ncandidates = []", "must not be empty"),
        ('[router]\nfallback = "nope"', "router.fallback: unknown method"),
        ('[router.rules]\nlumpy = "sba"', "unknown tier"),
        ('[router]\nmode = "rules"\n[router.rules]\nregular = "nope"', "router.rules"),
        ('[router]\ncandidates = ["hybrid"]', "unknown method"),
    ],
)
def test_bad_router_config_names_the_key(tmp_path, text: str, needle: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(cfg)


def test_old_backtest_keys_move_to_the_router(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[backtest]\nn_windows = 2\nmetric = "rmse"\nselect_by = "item"\nfallback = "naive"\n'
    )
    s = load_settings(cfg)
    assert (s.router.metric, s.router.select_by, s.router.fallback) == ("rmse", "item", "naive")
    assert s.backtest.n_windows == 2
    cfg.write_text('[backtest]\nmetric = "rmse"\n[router]\nmetric = "mae"\n')
    assert load_settings(cfg).router.metric == "mae"  # [router] wins


def test_make_router_takes_methods_as_candidates() -> None:
    s = load_settings(methods=["sba", "tsb"], router={"top_k": 2})
    router = make_router(s)
    assert router.candidate_names() == ["sba", "tsb"] and router.top_k == 2
    s = load_settings(methods=["sba", "tsb"], router={"candidates": ["ma"]})
    assert make_router(s).candidate_names() == ["ma"]


def test_config_default_rules_are_the_routers() -> None:
    assert load_settings().router.rules == DEFAULT_RULES
    partial = load_settings(router={"rules": {"regular": "tsb"}}).router.rules
    assert partial == {**DEFAULT_RULES, "regular": "tsb"}


def test_balanced_metric_adds_mase_and_asym_relative_to_the_best() -> None:
    panel = _trend_and_noise_panel()
    router = HybridRouter(
        "auto",
        candidates=["ma", "naive", "ses", "sba"],
        metric="mase+asym",
        select_by="item",
        min_history=1,
        top_k=1,
    ).fit(panel, 7)
    bt = router.backtest_
    assert bt is not None
    for uid, method in router.selection_.select("unique_id", "method").iter_rows():
        s = bt.scores.filter(pl.col("unique_id") == uid)
        score = s["mase"] / s["mase"].min() + s["asym"] / s["asym"].min()
        assert method == s["method"][int(np.argmin(score.to_numpy()))]
    assert router.selection_["reason"][0].startswith("best mase+asym of the item")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "magic"}, "router mode"),
        ({"metric": "me"}, "router metric"),
        ({"select_by": "lump"}, "router select_by"),
        ({"top_k": 0}, "router top_k"),
        ({"min_history": -1}, "router min_history"),
        ({"candidates": ["hybrid"]}, "cannot contain 'hybrid'"),
        ({"candidates": ["nope"]}, "unknown method 'nope'"),
        ({"fallback": "nope"}, "unknown method 'nope'"),
    ],
)
def test_router_parameters_are_checked_in_fit(kwargs: dict, needle: str) -> None:
    panel = _trend_and_noise_panel()
    router = HybridRouter(**kwargs)  # the constructor only stores
    with pytest.raises(SparecastError, match=needle):
        router.fit(panel, 7)
    with pytest.raises(MethodError, match="not fitted"):
        router.predict(panel, 7)


def test_balanced_metric_prefers_a_perfect_method() -> None:
    """An item whose demand stopped: naive and ma forecast 0 and score 0. The relative score
    must rank them first (a zero best score once turned every ratio into NaN or inf)."""
    y = np.zeros((2, 80))
    y[0, :40] = np.arange(40) % 3 + 1  # demand only in the first half
    y[1] = np.arange(80) % 4 + 1
    bt = backtest(_panel(y), h=7, methods=["naive", "ma", "sba", "tsb"], n_windows=2)
    sel = select(bt, classify(_panel(y)), by="item", metric="mase+asym", top_k=2)
    first = sel.row(0, named=True)
    assert first["method"].startswith("mean(naive,"), first  # naive alone is exactly right
    assert "inf" not in first["reason"] and "nan" not in first["reason"]


def test_router_clones_and_round_trips_its_parameters() -> None:
    router = HybridRouter(
        "auto",
        candidates=["sba", "naive"],
        rules={"regular": "sba"},
        top_k=1,
        tiers=TierThresholds(0.6, 0.2, 0.05),
    )
    params = router.get_params()
    assert params["mode"] == "auto" and params["candidates"] == ["sba", "naive"]
    assert type(router)(**params).get_params() == params
    twin = clone(router)
    assert twin is not router and twin.get_params() == params
    router.fit(_trend_and_noise_panel(), 7)
    assert router.get_params() == params  # fit leaves the parameters as given
    assert not hasattr(twin, "selection_")
    notes = router.fit(_panel(np.ones((2, 5))), 7).notes_
    assert len(notes) == 1 and router.fit(_panel(np.ones((2, 5))), 7).notes_ == notes
