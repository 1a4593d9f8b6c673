import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparecast.classify import TierThresholds
from sparecast.cli import app
from sparecast.config import StoreSettings, load_settings
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError
from sparecast.selection.router import DEFAULT_METRIC, DEFAULT_TOP_K, ROUTER_METRICS
from sparecast.store.cache import RedisCache

runner = CliRunner()


def test_defaults() -> None:
    s = load_settings()
    assert s.horizon is None  # the data's frequency decides: 28 days, 13 weeks, 6 months
    assert s.backtest.n_windows == 3
    assert s.tiers.regular == 0.1


def test_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'horizon = 14\nmethods = ["ma", "sba"]\n[backtest]\nn_windows = 2\nmetric = "mae"\n'
        "[method_params.ma]\nwindow = 7\n"
    )
    monkeypatch.setenv("SPARECAST_BACKTEST__METRIC", "mase")
    s = load_settings(cfg, horizon=7)
    assert s.horizon == 7  # keyword override beats the file
    assert s.router.metric == "mase"  # environment beats the file ([backtest] metric moved)
    assert s.backtest.n_windows == 2  # file beats defaults
    assert s.methods == ["ma", "sba"]
    assert s.method_params == {"ma": {"window": 7}}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bogus = 1", "bogus"),
        ('methods = ["nope"]', "nope"),
        ("[tiers]\nregular = 0.9", "high_volume > regular"),
        ("horizon = 0", "horizon"),
        ("horizon = ", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(cfg)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/sparecast.toml")


def test_the_readme_config_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    start = readme.index("```toml\n", readme.index("## Configuration")) + len("```toml\n")
    cfg = tmp_path / "readme.toml"
    cfg.write_text(readme[start : readme.index("```", start)])
    s = load_settings(cfg)
    assert s.horizon is None and s.router.metric == "rmsse" and s.router.mode == "auto"
    assert s.data.erp_mapping["demand"]["table"] == "MTL_ISSUES"


def test_the_readme_router_example_loads(tmp_path: Path) -> None:
    readme = (
        Path(__file__).resolve().parents[1] / "docs" / "guides" / "forecasting.md"
    ).read_text()
    start = readme.index("```toml\n", readme.index("## Hybrid router")) + len("```toml\n")
    cfg = tmp_path / "router.toml"
    cfg.write_text(readme[start : readme.index("```", start)])
    s = load_settings(cfg)
    assert s.router.select_by == "item" and s.router.default == "robust" and s.router.margin == 0.02
    assert s.router.rules["intermittent"] == "tsb" and s.router.rules["regular"] == "xgboost"


def test_tier_settings_default_to_classify_and_convert() -> None:
    s = load_settings()
    assert s.tiers.thresholds() == TierThresholds()
    custom = load_settings(tiers={"high_volume": 0.6, "regular": 0.2, "intermittent": 0.05})
    assert custom.tiers.thresholds() == TierThresholds(0.6, 0.2, 0.05)


# --------------------------------------------------------------------------- issue 10
def test_outlier_settings() -> None:
    s = load_settings(data={"outlier_factor": 20, "outlier_action": "cap"})
    assert s.data.outlier_factor == 20.0 and s.data.outlier_action == "cap"
    with pytest.raises(ConfigError, match="data.outlier_action"):
        load_settings(data={"outlier_action": "drop"})
    with pytest.raises(ConfigError, match="data.outlier_factor"):
        load_settings(data={"outlier_factor": 1})


def test_horizon_bound_names_both_values_and_how_to_raise_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(horizon=100_000_000)
    msg = str(info.value)
    assert "horizon 100000000 exceeds max_horizon 3660" in msg
    assert "SPARECAST_MAX_HORIZON" in msg and "Value error" not in msg
    assert load_settings(horizon=5000, max_horizon=5000).horizon == 5000


def test_cli_refuses_an_absurd_horizon_at_once(tmp_path: Path) -> None:
    csv = tmp_path / "one.csv"
    csv.write_text("unique_id,ds,y\nA,2024-01-01,1\nA,2024-01-02,0\nA,2024-01-03,2\n")
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = runner.invoke(
        app, ["run", "--source", str(csv), "--output", str(out), "--horizon", "100000000"]
    )
    assert r.exit_code == 2, r.output
    assert time.perf_counter() - t0 < 10
    assert "max_horizon 3660" in r.output and "SPARECAST_MAX_HORIZON" in r.output
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("env", "url", "needle"),
    [
        ("SPARECAST_STORE__URL", "postgresql+psycopg://u:hunter2pw@h:abc/db", "store.url"),
        ("SPARECAST_STORE__URL", "postgresql+psycopg://u:hunter2pw@h:99999/db", "store.url"),
        ("SPARECAST_STORE__CACHE_URL", "redis://:hunter2pw@h:abc/0", "store.cache_url"),
        ("SPARECAST_STORE__CACHE_URL", "redis://:hunter2pw@[::1/0", "store.cache_url"),
    ],
)
def test_malformed_store_urls_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, url: str, needle: str
) -> None:
    monkeypatch.setenv(env, url)
    with pytest.raises(ConfigError, match=needle) as info:
        load_settings()
    assert "hunter2pw" not in str(info.value)
    csv = tmp_path / "one.csv"
    csv.write_text("unique_id,ds,y\nA,2024-01-01,1\n")
    for args in (
        ["run", "--source", str(csv), "--output", str(tmp_path / "out")],
        ["store", "runs"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert needle in r.output and "hunter2pw" not in r.output
        assert "Traceback" not in r.output and not isinstance(r.exception, ValueError)


def test_redis_cache_refuses_a_malformed_url() -> None:
    with pytest.raises(ConfigError, match="not a valid Redis URL") as info:
        RedisCache("redis://:hunter2pw@h:abc/0")
    assert "hunter2pw" not in str(info.value)


# --- [store]: defaults, environment variables, validation, passwords kept out of run.json


def test_store_defaults() -> None:
    store = load_settings().store
    assert store == StoreSettings()
    assert store.url is None and store.cache_url is None and store.write_runs
    assert (store.cache_ttl_s, store.cache_max_items, store.actuals_periods) == (
        3600.0,
        100_000,
        None,
    )


def test_store_environment_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("SPARECAST_STORE__URL", "postgresql+psycopg://app:s3cret@db:5432/fc")
    monkeypatch.setenv("SPARECAST_STORE__CACHE_URL", "redis://cache:6379/2")
    path = tmp_path / "c.toml"  # type: ignore[operator]
    path.write_text("[store]\ncache_ttl_s = 60\nactuals_periods = 90\n")
    settings = load_settings(path)
    assert settings.store.url == "postgresql+psycopg://app:s3cret@db:5432/fc"  # real value
    assert settings.store.cache_url == "redis://cache:6379/2"
    assert settings.store.cache_ttl_s == 60 and settings.store.actuals_periods == 90
    dumped = settings.to_dict()["store"]  # what run.json and the store's config column get
    assert dumped["url"] == "postgresql+psycopg://app:***@db:5432/fc"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cache_url": "http://x"}, "cache_url must start with redis://"),
        ({"cache_ttl_s": 0}, "store.cache_ttl_s"),
        ({"cache_max_items": 0}, "store.cache_max_items"),
        ({"urll": "x"}, "store.urll"),
    ],
)
def test_bad_store_values_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(store=values)


def test_router_metric_is_checked_against_the_router_metrics() -> None:
    s = load_settings()
    assert s.router.metric == DEFAULT_METRIC and s.router.top_k == DEFAULT_TOP_K
    for metric in ROUTER_METRICS:
        assert load_settings(router={"metric": metric}).router.metric == metric
    with pytest.raises(ConfigError, match=r"router.metric.*one of: mae, rmse"):
        load_settings(router={"metric": "pis"})


def test_quantile_levels_are_checked_by_the_methods_check() -> None:
    assert load_settings(quantiles=[0.9, 0.5, 0.9]).quantiles == [0.5, 0.9]
    assert load_settings(quantiles=[]).quantiles == []
    with pytest.raises(ConfigError, match=r"quantile levels must be a 1-D list in \(0, 1\)"):
        load_settings(quantiles=[0.5, 1.0])


def test_the_router_robust_default_settings() -> None:
    s = load_settings(router={"default": "", "margin": 0.05, "alpha": 0.01})
    assert s.router.default is None and s.router.margin == 0.05 and s.router.alpha == 0.01
    assert load_settings().router.default == "robust"
    with pytest.raises(ConfigError, match="router.default: unknown method"):
        load_settings(router={"default": "nope"})
    with pytest.raises(ConfigError, match="margin"):
        load_settings(router={"margin": 1.5})


# --------------------------------------------------------------------------- issue 11
def test_horizon_as_periods_or_a_duration_from_file_env_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('horizon = "13w"\n[service]\ndefault_horizon = "2w"\n')
    s = load_settings(cfg)
    assert s.horizon == "13w" and s.service.default_horizon == "2w"
    assert load_settings(cfg, horizon="6 Months").horizon == "6mo"  # normalised
    monkeypatch.setenv("SPARECAST_HORIZON", "90d")
    assert load_settings(cfg).horizon == "90d"  # environment beats the file
    monkeypatch.setenv("SPARECAST_HORIZON", "12")
    assert load_settings().horizon == 12  # a number from the environment is periods, an int
    monkeypatch.setenv("SPARECAST_HORIZON", "soon")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "invalid settings: horizon: horizon must be a number of periods or a duration like "
        "90d, 13w, 6mo, 1y, got 'soon'"
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("6m", "months are mo: 6mo"),
        ("1.5y", "duration like 90d"),
        ("-3", "duration like 90d"),
        ("0d", "at least 1 period"),
        (0, "at least 1 period"),
        (True, "duration like 90d"),
    ],
)
def test_bad_horizons_say_what_a_horizon_is(value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(horizon=value)
    with pytest.raises(ConfigError, match="service.default_horizon: .*" + needle):
        load_settings(service={"default_horizon": value})


def test_a_duration_is_bounded_by_max_horizon_once_the_frequency_is_known() -> None:
    s = load_settings(horizon="2y", max_horizon=400)  # valid until converted
    daily = DemandPanel(np.zeros((1, 10), np.float32), np.array(["a"]), np.datetime64("2026-01-01"))
    monthly = DemandPanel(
        np.zeros((1, 10), np.float32), np.array(["a"]), np.datetime64("2026-01-01"), "M"
    )
    assert s.horizon_for(monthly) == 24
    with pytest.raises(ConfigError, match=r"horizon h='2y' = 730 exceeds max_horizon=400"):
        s.horizon_for(daily)  # 2026-01-11 + 2 years: 730 days
    assert load_settings().horizon_for(daily) == 28
    assert load_settings().horizon_for(monthly) == 6


def test_inventory_service_mode_settings() -> None:
    s = load_settings(
        inventory={"service_mode": "aggregate", "min_fill_rates": {"high_volume": 0.9}}
    )
    assert s.inventory.service_mode == "aggregate" and s.inventory.aggregate_target == 0.98
    assert (
        s.inventory.level == "adaptive"
        and s.inventory.obsolete_intervals == 6.0
        and s.inventory.level_window_days == 365
        and s.inventory.sparse_threshold == 0.02
    )
    with pytest.raises(ConfigError, match="unknown tier"):
        load_settings(inventory={"min_fill_rates": {"fast": 0.5}})
    with pytest.raises(ConfigError, match="minimum fill rates"):
        load_settings(inventory={"min_fill_rates": {"regular": 1.0}})
    with pytest.raises(ConfigError, match="service_mode"):
        load_settings(inventory={"service_mode": "portfolio"})
