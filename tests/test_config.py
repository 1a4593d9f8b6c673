from pathlib import Path

import pytest

from sparecast.classify import TierThresholds
from sparecast.config import load_settings
from sparecast.errors import ConfigError
from sparecast.selection.router import DEFAULT_METRIC, DEFAULT_TOP_K, ROUTER_METRICS


def test_defaults() -> None:
    s = load_settings()
    assert s.horizon == 28
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
    assert s.horizon == 28 and s.router.metric == "mase+asym" and s.router.mode == "auto"
    assert s.data.erp_mapping["demand"]["table"] == "MTL_ISSUES"


def test_the_readme_router_example_loads(tmp_path: Path) -> None:
    readme = (
        Path(__file__).resolve().parents[1] / "docs" / "guides" / "forecasting.md"
    ).read_text()
    start = readme.index("```toml\n", readme.index("## Hybrid router")) + len("```toml\n")
    cfg = tmp_path / "router.toml"
    cfg.write_text(readme[start : readme.index("```", start)])
    s = load_settings(cfg)
    assert s.router.select_by == "item" and s.router.top_k == 2
    assert s.router.rules["intermittent"] == "tsb" and s.router.rules["regular"] == "xgboost"


def test_tier_settings_default_to_classify_and_convert() -> None:
    s = load_settings()
    assert s.tiers.thresholds() == TierThresholds()
    custom = load_settings(tiers={"high_volume": 0.6, "regular": 0.2, "intermittent": 0.05})
    assert custom.tiers.thresholds() == TierThresholds(0.6, 0.2, 0.05)


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
