"""Forecast history store: time to write one run (items x horizon forecasts, optional quantile
columns, the last horizon days of actuals, a backtest summary) and to read it back, on SQLite
and on PostgreSQL.

    python benchmarks/store.py                       # 100,000 items x 28 days, both databases
    python benchmarks/store.py --items 10000 --backends sqlite
    python benchmarks/store.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

PostgreSQL: a scratch database ``sparecast_bench_<random>`` is created next to the one in
``--pg-url`` and dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import sqlalchemy as sa

from sparecast.store import ForecastStore, RunMeta


def forecasts_frame(n_items: int, h: int, levels: list[float], seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-11-01")
    point = rng.gamma(0.3, 2.0, n_items * h)
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat([f"P{i:07d}" for i in range(n_items)], h),
            "ds": np.tile(np.arange(start, start + h), n_items),
            "forecast": point,
            "method": np.repeat(rng.choice(["sba", "tsb", "ma", "imapa"], n_items), h),
        }
    ).with_columns(pl.col("ds").cast(pl.Date))
    for i, level in enumerate(levels):
        frame = frame.with_columns(pl.Series(f"q{level:g}", point * (1.2 + 0.3 * i)))
    return frame


def actuals_frame(n_items: int, h: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-10-04")
    return pl.DataFrame(
        {
            "unique_id": np.repeat([f"P{i:07d}" for i in range(n_items)], h),
            "ds": np.tile(np.arange(start, start + h), n_items),
            "y": rng.poisson(0.1, n_items * h).astype(float),
        }
    ).with_columns(pl.col("ds").cast(pl.Date))


SUMMARY = pl.DataFrame(
    {
        "grouping": ["class"] * 4,
        "group": ["lumpy", "lumpy", "smooth", "smooth"],
        "method": ["sba", "ma", "sba", "ma"],
        "n_items": [10, 10, 5, 5],
        "rmsse": [0.6, 0.7, 0.5, 0.4],
        "chosen": [True, False, False, True],
    }
)


def bench(url: str, n_items: int, h: int, levels: list[float], reads: int) -> dict[str, float]:
    store = ForecastStore(url)
    store.migrate()
    fc = forecasts_frame(n_items, h, levels)
    act = actuals_frame(n_items, h)
    meta = RunMeta("bench", {"h": h}, date(2024, 11, 1), date(2026, 10, 31), "D", n_items, 730, h)
    t0 = time.perf_counter()
    store.write_run(meta, fc, actuals=act, accuracy=SUMMARY)
    write_s = time.perf_counter() - t0
    rng = np.random.default_rng(2)
    ids = [f"P{i:07d}" for i in rng.choice(n_items, size=reads, replace=True)]
    single = []
    for uid in ids:
        t0 = time.perf_counter()
        got = store.item_forecast(uid)
        single.append(time.perf_counter() - t0)
        assert got is not None and len(got.forecast) == h
    batch = []
    for _ in range(5):
        chunk = [f"P{i:07d}" for i in rng.choice(n_items, size=min(1000, n_items), replace=False)]
        t0 = time.perf_counter()
        got_many = store.items_forecasts(chunk)
        batch.append(time.perf_counter() - t0)
        assert len(got_many) == len(chunk)
    store.dispose()
    values = n_items * h * (2 + len(levels))  # forecast, quantiles, actuals
    return {
        "write_s": write_s,
        "values_per_s": values / write_s,
        "single_p50_ms": statistics.median(single) * 1000,
        "single_p99_ms": float(np.quantile(single, 0.99)) * 1000,
        "batch1000_ms": statistics.median(batch) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()

    print(f"{args.items:,} items x {args.horizon} periods; actuals {args.horizon} periods/item")
    print(
        "| database | quantile columns | values written | write s | values/s | "
        "read 1 item p50 ms | p99 ms | read 1,000 items ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for backend in args.backends.split(","):
        for levels in ([], [50.0, 90.0, 95.0, 97.5]):
            if backend == "sqlite":
                tmp = tempfile.TemporaryDirectory()
                url = f"sqlite:///{Path(tmp.name) / 'history.sqlite'}"
                result = bench(url, args.items, args.horizon, levels, args.reads)
                tmp.cleanup()
            else:
                server = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
                name = f"sparecast_bench_{uuid.uuid4().hex[:10]}"
                with server.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                try:
                    url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
                    result = bench(url, args.items, args.horizon, levels, args.reads)
                finally:
                    with server.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    server.dispose()
            rows = args.items * args.horizon * (2 + len(levels))
            print(
                f"| {backend} | {len(levels)} | {rows:,} | {result['write_s']:.1f} | "
                f"{result['values_per_s']:,.0f} | {result['single_p50_ms']:.2f} | "
                f"{result['single_p99_ms']:.2f} | {result['batch1000_ms']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
