"""The error hierarchy: every error sparecast raises on purpose is a SparecastError (one except
clause catches them all, nothing else), store outages are StoreErrors, the cache is apart, and
errors raised through the public API keep their message."""

from __future__ import annotations

import numpy as np
import pytest

import sparecast
from sparecast import errors
from sparecast.data.sources import open_source
from sparecast.errors import (
    CacheUnavailable,
    ConfigError,
    DataValidationError,
    LoopManagedError,
    MethodError,
    OutputError,
    SourceError,
    SparecastError,
    StoreError,
    StoreUnavailable,
)
from sparecast.store import ForecastStore

SUBCLASSES = [
    DataValidationError,
    SourceError,
    ConfigError,
    MethodError,
    OutputError,
    StoreError,
    StoreUnavailable,
    CacheUnavailable,
    LoopManagedError,
]


def test_all_lists_exactly_the_error_classes() -> None:
    assert sorted(errors.__all__) == sorted(cls.__name__ for cls in [SparecastError, *SUBCLASSES])
    assert SparecastError.__bases__ == (Exception,)


@pytest.mark.parametrize("cls", SUBCLASSES)
def test_catching_sparecast_error_catches_every_subclass(cls: type[SparecastError]) -> None:
    with pytest.raises(SparecastError) as info:
        raise cls("what is wrong; how to fix it")
    assert type(info.value) is cls
    assert str(info.value) == "what is wrong; how to fix it"


def test_store_unavailable_is_a_store_error_and_the_cache_is_not() -> None:
    assert issubclass(StoreUnavailable, StoreError)
    assert not issubclass(CacheUnavailable, StoreError)
    siblings = [c for c in SUBCLASSES if c not in (StoreUnavailable,)]
    for a in siblings:  # apart from StoreUnavailable the subclasses are unrelated
        assert [b for b in siblings if b is not a and issubclass(a, b)] == []


def test_builtin_errors_are_not_sparecast_errors() -> None:
    for exc in (ValueError("x"), KeyError("x"), OSError("x")):
        assert not isinstance(exc, SparecastError)


def test_the_public_api_exports_the_hierarchy() -> None:
    for name in ("SparecastError", "DataValidationError", "SourceError", "ConfigError"):
        assert getattr(sparecast, name) is getattr(errors, name)
    assert sparecast.MethodError is MethodError


def test_errors_raised_through_the_api_name_what_is_wrong() -> None:
    panel = sparecast.DemandPanel(
        y=np.ones((1, 10), dtype=np.float32),
        item_ids=np.array(["a"], dtype=object),
        start=np.datetime64("2024-01-01"),
    )
    known = "unknown method 'nope'; known methods: zero, naive"
    with pytest.raises(SparecastError, match=known) as m:
        sparecast.forecast(panel, 3, methods=["nope"])
    assert type(m.value) is MethodError
    with pytest.raises(SparecastError, match="horizon") as c:
        sparecast.load_settings(horizon=0)
    assert type(c.value) is ConfigError
    with pytest.raises(SparecastError, match="cannot tell what kind of source 'erp.xlsx'") as s:
        open_source("erp.xlsx")
    assert type(s.value) is SourceError


def test_an_unreachable_store_raises_store_unavailable(unused_port: int) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{unused_port}/history"
    store = ForecastStore(url)
    try:
        with pytest.raises(
            StoreError, match=f"127.0.0.1:{unused_port}/history is unreachable"
        ) as e:
            store.latest_run()
    finally:
        store.dispose()
    assert type(e.value) is StoreUnavailable
