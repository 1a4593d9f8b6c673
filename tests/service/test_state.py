"""The per-process state (service/state.py): the inventory plan table follows its file; store
calls have a deadline and a bound."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.errors import StoreUnavailable
from sparecast.service.state import ServiceState

from .conftest import service_settings, write_policy


def test_a_new_plan_file_is_served_without_restart(client: TestClient, data_dir: Path) -> None:
    write_policy(data_dir, ["P000001"])
    assert client.get("/items/P000002/policy").status_code == 404
    time.sleep(0.01)  # a new mtime even on coarse clocks
    write_policy(data_dir, ["P000001", "P000002"])
    os.utime(data_dir / "policy.parquet")
    assert client.get("/items/P000002/policy").json()["reorder_point"] == 3.0


def test_store_calls_have_a_deadline_and_a_bound(tmp_path: Path) -> None:
    """A store call past ``store_timeout_s`` raises StoreUnavailable at the deadline; calls
    still running (timed out or not) hold their slot, so at most ``store_max_calls`` run and a
    further call gives up at its deadline; the slots come back when the threads end."""
    settings = Settings(**service_settings(store_timeout_s=0.3, store_max_calls=2))
    state = ServiceState(settings, tmp_path)
    release = threading.Event()

    def frozen() -> int:
        release.wait(10)
        return 1

    async def scenario() -> list[float]:
        took = []
        for _ in range(3):  # the third finds both slots held by the abandoned calls
            t0 = time.perf_counter()
            with pytest.raises(StoreUnavailable, match="did not answer within 0.3 s"):
                await state.store_call(frozen)
            took.append(time.perf_counter() - t0)
        release.set()
        deadline = time.monotonic() + 5
        while state._store_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await state.store_call(lambda: 7) == 7
        return took

    took = asyncio.run(scenario())
    assert all(0.25 < t < 1.0 for t in took), took
    assert state._store_calls == 0
    state.store.dispose()
