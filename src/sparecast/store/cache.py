"""Forecast cache: an in-process LRU (embedded default) or Redis (production).

Keys carry the model version (``cache_key``), so a new run never serves an old run's forecast.
``RedisCache`` fails fast when Redis is down (short socket timeouts, then no socket at all for
``retry_after_s``) and recovers by itself when Redis is back: callers catch ``CacheUnavailable``
and answer from the store.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from sparecast.config import StoreSettings
from sparecast.errors import CacheUnavailable, ConfigError
from sparecast.urls import redact_url

__all__ = [
    "ForecastCache",
    "CacheStats",
    "LruCache",
    "RedisCache",
    "cache_key",
    "make_cache",
]


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was created: hits, misses, errors (Redis unreachable)."""

    hits: int
    misses: int
    errors: int
    size: int | None = None  # entries held (LRU); None when not known cheaply (Redis)

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses); 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


@runtime_checkable
class ForecastCache(Protocol):
    """What the service needs of a cache: bytes in, bytes out, with a TTL."""

    kind: str  # "lru" or "redis"

    def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of ``keys`` (None where absent), in one round trip."""
        ...

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (None: the cache's TTL)."""
        ...

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Store several values with one TTL, in one round trip."""
        ...

    def ping(self) -> bool:
        """True when the cache can be used now; never raises."""
        ...

    def stats(self) -> CacheStats:
        """Hits, misses and errors counted by this process."""
        ...

    def clear(self) -> None:
        """Remove this cache's entries."""
        ...


def _level_text(levels: Sequence[float] | None) -> str:
    if levels is None:
        return "all"
    unique = sorted({float(q) for q in levels})
    return ",".join(f"{q:g}" for q in unique) if unique else "none"


def cache_key(
    model_version: str,
    item_id: str,
    horizon: int | None,
    quantiles: Sequence[float] | None,
    override_revision: int | None = None,
) -> str:
    """Key of one item's forecast answer: model version, item (percent-escaped), horizon
    (``all`` for None) and sorted quantile levels (``all`` for None, ``none`` for []); with
    ``override_revision`` (the item's planner override applies) ``:o{revision}`` is appended,
    so a changed or removed override never meets an answer cached before it."""
    key = (
        f"fc:{quote(model_version, safe='+')}:{quote(str(item_id), safe='')}"
        f":h{'all' if horizon is None else int(horizon)}:q{_level_text(quantiles)}"
    )
    return key if override_revision is None else f"{key}:o{int(override_revision)}"


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def count(self, hits: int = 0, misses: int = 0, errors: int = 0) -> None:
        with self.lock:
            self.hits += hits
            self.misses += misses
            self.errors += errors

    def lookups(self, values: Sequence[bytes | None]) -> None:
        """Count the values found as hits and the Nones as misses."""
        hits = sum(v is not None for v in values)
        self.count(hits=hits, misses=len(values) - hits)


class LruCache:
    """In-process cache: at most ``max_items`` entries (least recently used leave first), each
    expiring ``ttl_s`` seconds after it was set. Thread-safe; never raises."""

    kind = "lru"

    def __init__(
        self,
        max_items: int = 100_000,
        ttl_s: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ConfigError(f"store.cache_max_items must be at least 1, got {max_items}")
        if ttl_s <= 0:
            raise ConfigError(f"store.cache_ttl_s must be positive, got {ttl_s}")
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._counters = _Counters()

    def _lookup(self, key: str, now: float) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of ``keys`` (None where absent or expired)."""
        now = self._clock()
        with self._lock:
            out = [self._lookup(k, now) for k in keys]
        self._counters.lookups(out)
        return out

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (default: the cache's TTL)."""
        self.set_many({key: value}, ttl_s)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Store several values with one TTL."""
        expires = self._clock() + (self.ttl_s if ttl_s is None else ttl_s)
        with self._lock:
            for key, value in items.items():
                self._data[key] = (expires, bytes(value))
                self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)

    def ping(self) -> bool:
        """Always True: the LRU lives in this process."""
        return True

    def stats(self) -> CacheStats:
        """Hits, misses, errors (always 0) and entries held (expired ones not yet evicted
        included)."""
        with self._lock:
            size = len(self._data)
        c = self._counters
        return CacheStats(c.hits, c.misses, c.errors, size)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class RedisCache:
    """Redis-backed cache; keys are ``prefix + key`` and expire after ``ttl_s``.

    A connection error or a timeout (``socket_timeout_s``) raises ``CacheUnavailable``; for
    the next ``retry_after_s`` seconds every call raises at once without touching the network,
    then the next call tries Redis again. ``ping()`` always tries and closes the circuit when
    Redis answers, so the cache recovers without a restart."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 3600.0,
        prefix: str = "sparecast:",
        socket_timeout_s: float = 0.25,
        retry_after_s: float = 1.0,
        max_connections: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if ttl_s <= 0:
            raise ConfigError(f"store.cache_ttl_s must be positive, got {ttl_s}")
        self.url = url
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._redis = redis
        try:
            self._client: Any = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                max_connections=max_connections,
            )
        except ValueError as exc:  # a malformed URL: a port that is not a number, a bad scheme
            reason = str(exc).replace(url, redact_url(url))
            raise ConfigError(
                f"store.cache_url {redact_url(url)!r} is not a valid Redis URL ({reason}); "
                "expected redis://[:password@]host:port/db"
            ) from None
        self._counters = _Counters()
        self._down_until = 0.0
        self._last_error = ""
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisCache({redact_url(self.url)!r}, prefix={self.prefix!r})"

    @property
    def last_error(self) -> str:
        """The last Redis error message ('' when none since the last success)."""
        return self._last_error

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        if self._clock() < self._down_until:
            self._counters.count(errors=1)
            raise CacheUnavailable(
                f"Redis cache {redact_url(self.url)} unavailable ({self._last_error}); "
                f"retrying after {self.retry_after_s:g}s"
            )
        try:
            result = fn()
        except self._redis.exceptions.RedisError as error:
            gone = isinstance(
                error,
                self._redis.exceptions.ConnectionError | self._redis.exceptions.TimeoutError,
            )
            if gone:  # down or too slow: stop asking for retry_after_s
                with self._state_lock:
                    self._down_until = self._clock() + self.retry_after_s
                    self._last_error = f"{type(error).__name__}: {error}"
            self._counters.count(errors=1)
            hint = "check that Redis is running" if gone else "Redis refused the command"
            raise CacheUnavailable(
                f"Redis cache {redact_url(self.url)} failed while {action}: {error}; answering "
                f"without the cache ({hint}, store.cache_url)"
            ) from error
        if self._last_error:
            with self._state_lock:
                self._last_error = ""
        return result

    def get(self, key: str) -> bytes | None:
        """The value or None; raises CacheUnavailable when Redis is unreachable."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of ``keys`` with one MGET."""
        if not keys:
            return []
        full = [self.prefix + k for k in keys]
        values: list[bytes | None] = self._call("reading", lambda: self._client.mget(full))
        self._counters.lookups(values)
        return values

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (default: the cache's TTL)."""
        self.set_many({key: value}, ttl_s)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Store several values in one round trip (pipeline, no transaction)."""
        if not items:
            return
        ttl_ms = max(1, int(round((self.ttl_s if ttl_s is None else ttl_s) * 1000)))

        def write() -> None:
            pipe = self._client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(self.prefix + key, value, px=ttl_ms)
            pipe.execute()

        self._call("writing", write)

    def ping(self) -> bool:
        """True when Redis answers PING now (ignores and resets the fail-fast window)."""
        try:
            ok = bool(self._client.ping())
        except self._redis.exceptions.RedisError as error:
            with self._state_lock:
                self._down_until = self._clock() + self.retry_after_s
                self._last_error = f"{type(error).__name__}: {error}"
            return False
        with self._state_lock:
            self._down_until = 0.0
            self._last_error = ""
        return ok

    def stats(self) -> CacheStats:
        """Hits, misses and errors counted by this process."""
        c = self._counters
        return CacheStats(c.hits, c.misses, c.errors, None)

    def clear(self) -> None:
        """Delete every key under this cache's prefix (SCAN + DEL, in batches)."""

        def wipe() -> None:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=self.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.delete(*batch)
                    batch = []
            if batch:
                self._client.delete(*batch)

        self._call("clearing", wipe)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def make_cache(settings: StoreSettings) -> ForecastCache:
    """The cache the settings ask for: Redis when ``store.cache_url`` is set, else the LRU."""
    if settings.cache_url:
        return RedisCache(
            settings.cache_url, ttl_s=settings.cache_ttl_s, prefix=settings.cache_prefix
        )
    return LruCache(settings.cache_max_items, settings.cache_ttl_s)
