"""Accuracy monitoring: time of the daily incremental load of observed demand
(``record_actuals``) and of a monitoring pass (``monitor``) over a run of N items x 28 days,
on SQLite (and PostgreSQL with ``--pg-url``).

    python benchmarks/monitor.py                     # 10,000 items, SQLite
    python benchmarks/monitor.py --items 100000
    python benchmarks/monitor.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The run forecasts a flat level per item; each simulated day loads the demand of the days so far
(as the daily flow does: the panel up to that day, so earlier days are reloaded unchanged) and
then monitors. Prints, per day count: load seconds (rows new / unchanged) and monitor seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import sqlalchemy as sa

from sparecast.config import load_settings
from sparecast.data.panel import DemandPanel
from sparecast.pipeline.monitor import monitor, record_actuals
from sparecast.store import ForecastStore, RunMeta

H = 28
FIRST = date(2026, 11, 1)


def build(store: ForecastStore, n_items: int, seed: int = 0) -> np.ndarray:
    """Store a run of flat forecasts with item attributes; return the actuals [items, H]."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:07d}" for i in range(n_items)]
    level = rng.gamma(0.5, 2.0, n_items)
    dates = [FIRST + timedelta(days=k) for k in range(H)]
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat(ids, H),
            "ds": dates * n_items,
            "forecast": np.repeat(level, H),
            "method": ["sba"] * (n_items * H),
        }
    )
    items = pl.DataFrame(
        {
            "unique_id": ids,
            "sb_class": rng.choice(["smooth", "erratic", "intermittent", "lumpy"], n_items),
            "tier": rng.choice(["regular", "intermittent", "very_intermittent"], n_items),
            "category": rng.choice([f"cat{k}" for k in range(12)], n_items),
            "scale_mase": level + 0.1,
            "scale_rmsse": (level + 0.1) ** 2,
            "expected_mae": level,
            "expected_mase": level / (level + 0.1),
            "expected_rmsse": np.ones(n_items),
            "expected_mape": np.full(n_items, 0.6),
            "expected_error_sum": np.zeros(n_items),
            "expected_actual_sum": level * H,
        }
    )
    meta = RunMeta("bench", {}, date(2024, 11, 1), date(2026, 10, 31), "D", n_items, 730, H)
    store.migrate()
    store.write_run(meta, frame, items=items)
    return rng.poisson(np.repeat(level[:, None], H, axis=1)).astype(np.float32)


def bench(url: str, n_items: int, days: list[int], data_dir: Path) -> None:
    store = ForecastStore(url)
    actual = build(store, n_items)
    settings = load_settings(store={"url": url})
    ids = np.array([f"P{i:07d}" for i in range(n_items)])
    print(f"{store.backend}: {n_items:,} items x {H} days; uptime: {os.getloadavg()[0]:.1f} load")
    print("days  load_s  new_rows  unchanged  monitor_s  periods")
    for d in days:
        panel = DemandPanel(actual[:, :d], ids, np.datetime64(FIRST.isoformat()), "D")
        t0 = time.perf_counter()
        load = record_actuals(store, panel, FIRST + timedelta(days=d - 1))
        t1 = time.perf_counter()
        report = monitor(settings, data_dir, as_of=FIRST + timedelta(days=d - 1))
        t2 = time.perf_counter()
        print(
            f"{d:4d} {t1 - t0:7.2f} {load.inserted:9d} {load.unchanged:10d} {t2 - t1:10.2f} "
            f"{report.periods_scored:8d}"
        )
    store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", default="1,7,14,28", help="days of actuals to load, in order")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL server URL (a scratch db)")
    args = parser.parse_args()
    days = [int(d) for d in args.days.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{Path(tmp) / 'history.sqlite'}", args.items, days, Path(tmp))
    if args.pg_url:
        name = f"sparecast_bench_{uuid.uuid4().hex[:8]}"
        server = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
            with tempfile.TemporaryDirectory() as tmp:
                bench(url, args.items, days, Path(tmp))
        finally:
            with server.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            server.dispose()


if __name__ == "__main__":
    main()
