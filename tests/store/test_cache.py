"""Forecast caches: keys, the in-process LRU (eviction, TTL, threads) and Redis (a real
redis-server of our own, stopped and restarted during the test)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from utils.servers import REDIS_URL, unreachable

from sparecast.config import StoreSettings
from sparecast.store import (
    CacheUnavailable,
    ForecastCache,
    LruCache,
    RedisCache,
    cache_key,
    make_cache,
)


class FakeClock:
    """A clock the test moves by hand (the LRU's TTL is checked against it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ keys


def test_cache_key_carries_model_version_item_horizon_and_levels() -> None:
    key = cache_key("0.1.0+ab12cd34.20261031.r7", "P-100", 28, [97.5, 90])
    assert key == "fc:0.1.0+ab12cd34.20261031.r7:P-100:h28:q90,97.5"
    assert cache_key("0.1.0+ab12cd34.20261031.r8", "P-100", 28, [90, 97.5]) != key
    assert cache_key("0.1.0+ab12cd34.20261031.r7", "P-101", 28, [90, 97.5]) != key
    assert cache_key("0.1.0+ab12cd34.20261031.r7", "P-100", 14, [90, 97.5]) != key
    assert cache_key("0.1.0+ab12cd34.20261031.r7", "P-100", 28, [90]) != key
    assert cache_key("m", "x", None, None) == "fc:m:x:hall:qall"
    assert cache_key("m", "x", None, []) == "fc:m:x:hall:qnone"
    assert cache_key("m", "x", 7, [90.0, 90]) == cache_key("m", "x", 7, [90])


@given(
    a=st.tuples(st.text(min_size=1), st.text(min_size=1)),
    b=st.tuples(st.text(min_size=1), st.text(min_size=1)),
)
def test_cache_keys_of_different_versions_or_items_never_collide(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    """Item ids and versions are escaped, so ':' or '%' in them cannot forge another key."""
    if a != b:
        assert cache_key(a[0], a[1], 28, [90]) != cache_key(b[0], b[1], 28, [90])


# ------------------------------------------------------------------------------- LRU


def test_lru_evicts_least_recently_used() -> None:
    cache = LruCache(max_items=3, ttl_s=60)
    for k in "abc":
        cache.set(k, k.encode())
    assert cache.get("a") == b"a"  # a is now the most recent
    cache.set("d", b"d")  # evicts b, the least recently used
    assert cache.get("b") is None
    assert cache.get_many(["a", "c", "d"]) == [b"a", b"c", b"d"]
    cache.set_many({"e": b"e", "f": b"f"})  # evicts a and c
    assert [k for k in "abcdef" if cache.get(k) is not None] == ["d", "e", "f"]
    assert len(cache) == 3


def test_lru_ttl_expiry_and_stats() -> None:
    clock = FakeClock()
    cache = LruCache(max_items=10, ttl_s=5, clock=clock)
    cache.set("a", b"1")
    cache.set("b", b"2", ttl_s=20)
    clock.now += 4.99
    assert cache.get("a") == b"1"
    clock.now += 0.01  # exactly ttl_s after the set: expired
    assert cache.get("a") is None
    assert cache.get("b") == b"2"
    clock.now += 15
    assert cache.get("b") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (2, 2, 0)
    assert stats.hit_ratio == 0.5 and stats.size == 0
    assert cache.ping() and cache.kind == "lru" and isinstance(cache, ForecastCache)


def test_lru_is_thread_safe() -> None:
    cache = LruCache(max_items=50, ttl_s=60)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(2000):
                key = f"k{(seed * 7 + i) % 120}"
                cache.set(key, key.encode())
                got = cache.get(key)
                assert got is None or got == key.encode()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 50
    stats = cache.stats()
    assert stats.hits + stats.misses == 8 * 2000


def test_lru_refuses_bad_settings() -> None:
    with pytest.raises(Exception, match="cache_max_items must be at least 1"):
        LruCache(max_items=0)
    with pytest.raises(Exception, match="cache_ttl_s must be positive"):
        LruCache(ttl_s=0)


def test_make_cache_follows_settings() -> None:
    lru = make_cache(StoreSettings(cache_max_items=7, cache_ttl_s=9))
    assert isinstance(lru, LruCache) and lru.max_items == 7 and lru.ttl_s == 9
    redis = make_cache(StoreSettings(cache_url="redis://127.0.0.1:6379/0", cache_prefix="x:"))
    assert isinstance(redis, RedisCache) and redis.prefix == "x:"


# ----------------------------------------------------------------------------- Redis


@pytest.mark.integration
def test_redis_get_set_many_ttl_and_prefix(redis_server) -> None:  # type: ignore[no-untyped-def]
    cache = RedisCache(redis_server.url, ttl_s=30, prefix="t1:")
    other = RedisCache(redis_server.url, ttl_s=30, prefix="t2:")
    assert cache.ping() and cache.kind == "redis" and isinstance(cache, ForecastCache)
    cache.set("a", b"\x00\xffbytes")
    cache.set_many({"b": b"2", "c": b"3"})
    other.set("a", b"other")
    assert cache.get("a") == b"\x00\xffbytes"
    assert cache.get_many(["b", "zz", "c"]) == [b"2", None, b"3"]
    assert other.get("a") == b"other"
    ttl_ms = cache._client.pttl("t1:b")
    assert 29_000 < ttl_ms <= 30_000
    cache.set("short", b"x", ttl_s=0.3)
    assert cache.get("short") == b"x"
    time.sleep(0.6)
    assert cache.get("short") is None  # expired by Redis itself
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (4, 2, 0)
    cache.clear()  # only this prefix
    assert cache.get("a") is None and other.get("a") == b"other"
    cache.close()
    other.close()


@pytest.mark.integration
def test_redis_stopped_then_restarted_recovers_without_restart(redis_server) -> None:  # type: ignore[no-untyped-def]
    cache = RedisCache(redis_server.url, ttl_s=60, socket_timeout_s=0.25, retry_after_s=0.5)
    cache.set("k", b"v")
    assert cache.get("k") == b"v"

    redis_server.stop()
    t0 = time.perf_counter()
    with pytest.raises(CacheUnavailable, match="failed while reading"):
        cache.get("k")
    assert time.perf_counter() - t0 < 1.0  # refused/timed out fast, no retries
    for _ in range(100):  # within retry_after_s: the open circuit answers, not the network
        with pytest.raises(
            CacheUnavailable, match=r"unavailable \(ConnectionError.*retrying after"
        ):
            cache.set("k", b"v2")
    assert cache.ping() is False
    assert cache.stats().errors >= 101

    redis_server.start()  # same port, empty (no persistence)
    assert cache.ping() is True  # ping closes the fail-fast window at once
    assert cache.get("k") is None  # a fresh server: a miss, not an error
    cache.set("k", b"v3")
    assert cache.get("k") == b"v3"
    assert cache.last_error == ""

    # without ping: the first call after retry_after_s goes to Redis again
    redis_server.stop()
    with pytest.raises(CacheUnavailable):
        cache.get("k")
    redis_server.start()
    time.sleep(0.6)
    cache.set("k", b"v4")
    assert cache.get("k") == b"v4"
    cache.close()


@pytest.mark.integration
def test_shared_redis_with_a_private_prefix() -> None:
    """The machine's Redis on 6379 (as configured in production), under a unique prefix that
    is removed afterwards."""
    cache = RedisCache(REDIS_URL, prefix=f"sparecast-test-{uuid.uuid4().hex}:")
    if not cache.ping():
        unreachable("Redis not reachable at 127.0.0.1:6379")
    try:
        cache.set_many({"a": b"1", "b": b"2"}, ttl_s=60)
        assert cache.get_many(["a", "b", "c"]) == [b"1", b"2", None]
    finally:
        cache.clear()
        assert cache._client.keys(cache.prefix + "*") == []
        cache.close()


@pytest.mark.integration
def test_redis_refusing_a_command_does_not_open_the_circuit(redis_server) -> None:  # type: ignore[no-untyped-def]
    """Out of memory (noeviction): writes are refused, reads go on; only a Redis that is
    gone or too slow is skipped for retry_after_s."""
    cache = RedisCache(redis_server.url, retry_after_s=60)
    cache.set("k", b"v")
    cache._client.config_set("maxmemory-policy", "noeviction")
    cache._client.config_set("maxmemory", 1)
    with pytest.raises(CacheUnavailable, match="Redis refused the command"):
        cache.set("k2", b"v2")
    assert cache.get("k") == b"v"  # not short-circuited
    assert cache.stats().errors == 1
    cache._client.config_set("maxmemory", 0)
    cache.set("k2", b"v2")
    assert cache.get("k2") == b"v2"
    cache.close()
