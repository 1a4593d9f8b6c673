"""The store survives its database going away: errors say "unavailable" and fail fast while
PostgreSQL is down, and the same ForecastStore answers again once it is back (no restart)."""

from __future__ import annotations

import time
from datetime import date

import polars as pl
import pytest

from sparecast.store import ForecastStore, RunMeta, StoreUnavailable


@pytest.mark.integration
def test_postgres_stopped_and_restarted(postgres_server) -> None:  # type: ignore[no-untyped-def]
    store = ForecastStore(postgres_server.url, connect_timeout_s=2)
    store.migrate()
    frame = pl.DataFrame(
        {
            "unique_id": ["a", "a"],
            "ds": [date(2026, 11, 1), date(2026, 11, 2)],
            "forecast": [1.5, 2.5],
            "method": ["sba", "sba"],
        }
    )
    meta = RunMeta("0.1.0", {}, date(2025, 11, 1), date(2026, 10, 31), "D", 1, 365, 2)
    run_id = store.write_run(meta, frame)
    assert store.item_forecast("a").forecast == [1.5, 2.5]  # type: ignore[union-attr]

    postgres_server.stop()  # pooled connections are now dead
    assert store.ping() is False
    t0 = time.perf_counter()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.item_forecast("a")
    assert time.perf_counter() - t0 < 3.0  # refused, not hanging
    with pytest.raises(StoreUnavailable):
        store.write_run(meta, frame)

    postgres_server.start()
    assert store.ping() is True
    got = store.item_forecast("a")
    assert got is not None and got.run_id == run_id and got.forecast == [1.5, 2.5]
    assert store.write_run(meta, frame) > run_id
    store.dispose()
