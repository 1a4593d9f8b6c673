"""A writer process killed (SIGKILL) in the middle of writing a run leaves nothing behind: the
run's transaction never commits, the earlier runs are intact and the next run is written.
Meanwhile readers (the service) go on reading the last committed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date

import sqlalchemy as sa

from sparecast.store import ForecastStore, RunMeta
from sparecast.store.schema import metadata

WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    import numpy as np, polars as pl
    from sparecast.store import ForecastStore, RunMeta

    url, n_items = sys.argv[1], int(sys.argv[2])
    h = 28
    start = np.datetime64("2026-11-01")
    frame = pl.DataFrame({
        "unique_id": np.repeat([f"k{i}" for i in range(n_items)], h),
        "ds": np.tile(np.arange(start, start + h), n_items),
        "forecast": np.ones(n_items * h),
        "method": ["ma"] * (n_items * h),
        "q90": np.full(n_items * h, 2.0),
    }).with_columns(pl.col("ds").cast(pl.Date))
    meta = RunMeta("0.1.0", {"h": h}, date(2025, 11, 1), date(2026, 10, 31), "D", n_items, 365, h)

    def progress(label, done, total):
        if label == "store forecasts" and 0 < done < total:
            print("MIDWRITE", flush=True)  # rows of this run are in the open transaction
            time.sleep(120)

    ForecastStore(url).write_run(meta, frame, progress=progress)
    print("COMMITTED", flush=True)
    """
)


def _counts(store: ForecastStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


def test_killed_writer_leaves_nothing_half_written(store_url: str) -> None:
    import polars as pl

    store = ForecastStore(store_url)
    first = store.write_run(
        RunMeta("0.1.0", {}, date(2025, 1, 1), date(2025, 12, 31), "D", 1, 365, 2),
        pl.DataFrame(
            {
                "unique_id": ["a", "a"],
                "ds": [date(2026, 1, 1), date(2026, 1, 2)],
                "forecast": [1.0, 2.0],
                "method": ["ma", "ma"],
            }
        ),
    )
    before = _counts(store)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url, "45000"],  # 45,000 items: > two COPY blocks
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "MIDWRITE", proc.stderr.read() if proc.stderr else line
        # while the writer holds its transaction open, readers are not blocked and see the
        # last committed run only (SQLite: WAL; PostgreSQL: MVCC)
        t0 = time.perf_counter()
        reader = ForecastStore(store_url)
        assert reader.latest_run().run_id == first  # type: ignore[union-attr]
        assert reader.item_forecast("a").forecast == [1.0, 2.0]  # type: ignore[union-attr]
        assert reader.item_forecast("k0") is None
        assert time.perf_counter() - t0 < 5.0  # blocked would mean the 30 s busy timeout
        reader.dispose()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # PostgreSQL rolls the dead session back when it sees the socket close; give it a moment
    deadline = time.monotonic() + 10
    while _counts(store) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _counts(store) == before
    latest = store.latest_run()
    assert latest is not None and latest.run_id == first
    # the store is not locked or damaged: the next run is written and read back
    rerun = subprocess.run(
        [sys.executable, "-c", WRITER.replace("time.sleep(120)", "pass"), store_url, "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "COMMITTED" in rerun.stdout, rerun.stderr
    latest = store.latest_run()
    assert latest is not None and latest.run_id > first and latest.n_items == 10
    assert _counts(store)["forecasts"] == before["forecasts"] + 10
    store.dispose()
