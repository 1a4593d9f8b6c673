"""The [store] section of the settings: defaults, environment variables, validation and
passwords kept out of run.json."""

from __future__ import annotations

import pytest

from sparecast.config import StoreSettings, load_settings, redact_url
from sparecast.errors import ConfigError


def test_defaults() -> None:
    store = load_settings().store
    assert store == StoreSettings()
    assert store.url is None and store.cache_url is None and store.write_runs
    assert (store.cache_ttl_s, store.cache_max_items, store.actuals_periods) == (
        3600.0,
        100_000,
        None,
    )


def test_environment_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
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
def test_bad_values_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(store=values)


def test_redact_url() -> None:
    assert redact_url("postgresql+psycopg://u:p@h:5432/d") == "postgresql+psycopg://u:***@h:5432/d"
    assert redact_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"
