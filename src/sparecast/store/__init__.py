"""Forecast history store (SQLite/PostgreSQL, Alembic migrations) and forecast cache (LRU/Redis).

See docs/interfaces/store.md for the contract the service relies on.
"""

from __future__ import annotations

from sparecast.errors import CacheUnavailable, StoreError, StoreUnavailable
from sparecast.store.cache import (
    CacheStats,
    ForecastCache,
    LruCache,
    RedisCache,
    cache_key,
    make_cache,
)
from sparecast.store.history import ForecastStore, default_store_url
from sparecast.store.models import (
    ItemForecast,
    RunInfo,
    RunMeta,
    model_version_of,
    quantile_columns,
    quantile_label,
)

__all__ = [
    "ForecastStore",
    "RunMeta",
    "RunInfo",
    "ItemForecast",
    "default_store_url",
    "model_version_of",
    "quantile_columns",
    "quantile_label",
    "StoreError",
    "StoreUnavailable",
    "ForecastCache",
    "CacheStats",
    "LruCache",
    "RedisCache",
    "CacheUnavailable",
    "cache_key",
    "make_cache",
]
