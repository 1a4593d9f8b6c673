"""Speed of the ingest: building the DemandPanel from long frames, the classical methods against
statsforecast including that build, and reading a database through Arrow against SQLAlchemy.

    python benchmarks/ingest.py panel --items 30000 --days 365
    python benchmarks/ingest.py extract --url mysql+pymysql://root@127.0.0.1:3306/db --rows 5000000

``panel`` builds the long frame ``unique_id, ds, y`` of a synthetic spare-parts panel (string ids,
daily dates, every item x day as statsforecast expects) as pandas and as polars, times
``DemandPanel.from_long`` on each (best of ``--repeat``), then times Croston+SBA+ADIDA+IMAPA:
sparecast from the pandas frame (``from_long`` + ``forecast_arrays`` of the four methods, which
share their levels, on ``--threads`` kernel threads, default every core; then on one thread,
checking that the forecasts are identical) against
``StatsForecast(models=[4 models], freq="D", n_jobs=N).forecast`` on the same frame for each N
of ``--sf-jobs`` (default 1,2), and prints the ratios and the largest absolute difference of the
forecasts (``--no-statsforecast`` skips statsforecast). ``--defaults`` also times the default
methods (``robust`` included) through ``forecast_arrays`` against one method at a time.

``extract`` writes a demand table of ``--rows`` rows into the database at ``--url`` (unless one of
that size is there already: ``--keep`` reuses it), reads it with ``read_tables`` through
SQLAlchemy (row by row) and through Arrow (ADBC or connectorx), checks that both frames are
equal and prints both timings. Run one heavy thing at a time on a small machine.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from sparecast import DemandPanel

H = 28


def spare_parts_matrix(items: int, days: int, seed: int) -> np.ndarray:
    """float32[items, days]: most items with demand on under 10% of days, lumpy sizes (as in
    benchmarks/classical.py)."""
    rng = np.random.default_rng(seed)
    kind = rng.random(items)
    p = np.where(
        kind < 0.92,
        rng.uniform(0.002, 0.09, items),
        np.where(kind < 0.97, rng.uniform(0.1, 0.3, items), rng.uniform(0.6, 1.0, items)),
    )
    mean_size = rng.lognormal(0.5, 1.0, items)
    y = np.zeros((items, days), np.float32)
    for lo in range(0, items, 5000):
        hi = min(items, lo + 5000)
        occurs = rng.random((hi - lo, days), dtype=np.float32) < p[lo:hi, None]
        sizes = 1 + rng.poisson(mean_size[lo:hi, None] * rng.gamma(0.7, 1 / 0.7, (hi - lo, days)))
        y[lo:hi] = np.where(occurs, sizes, 0)
    return y


def long_pandas(y: np.ndarray, start: str = "2025-01-01") -> pd.DataFrame:
    """Every item x day as statsforecast's long frame: ids as Python strings (object column, as
    read from a CSV: one string object per row), ds datetime64, y float64."""
    items, days = y.shape
    ids = np.array([f"SKU{i:06d}" for i in range(items)], dtype=object)
    per_row = pd.Series(np.repeat(ids, days)).str.slice(0)  # distinct objects, as from a file
    return pd.DataFrame(
        {
            "unique_id": per_row,
            "ds": np.tile(pd.date_range(start, periods=days, freq="D").values, items),
            "y": y.ravel().astype(np.float64),
        }
    )


CPU_SECONDS: dict[str, float] = {}
"""CPU seconds of this process (all its threads; not child processes) in the fastest run of each
``best_of`` call, by the ``label`` given: unlike the wall time they hardly depend on the load."""


def best_of(fn: Callable[[], Any], repeat: int, label: str = "") -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, CPU_SECONDS[label] = wall, time.process_time() - c0
    return best, out


def bench_panel(args: argparse.Namespace) -> None:

    y = spare_parts_matrix(args.items, args.days, args.seed)
    pdf = long_pandas(y)
    plf = pl.from_pandas(pdf)
    rows = len(pdf)
    print(f"long frame: {args.items} items x {args.days} days = {rows:,} rows")
    print(f"{'from_long input':<34} {'seconds':>8}")
    panels = {}
    for name, frame in (
        ("pandas (object ids, datetime64)", pdf),
        ("polars (str ids, datetime)", plf),
    ):
        secs, panel = best_of(lambda f=frame: DemandPanel.from_long(f), args.repeat)
        panels[name] = panel
        print(f"{name:<34} {secs:>8.3f}")
    first = next(iter(panels.values()))
    assert np.array_equal(first.y, y), "the panel must hold the generated matrix"

    from sparecast.core import forecast_arrays
    from sparecast.methods import available_cores, kernel_threads, set_threads

    names = ["croston", "sba", "adida", "imapa"]
    set_threads(args.threads)

    def ours() -> np.ndarray:
        panel = DemandPanel.from_long(pdf)
        return np.stack(list(forecast_arrays(panel, H, names).values()))

    ours()  # load the compiled kernels from numba's cache outside the timing
    t_ours, f_ours = best_of(ours, args.repeat, "ours")
    print(f"\nCroston+SBA+ADIDA+IMAPA, h={H}, from the pandas frame (best of {args.repeat})")
    print(f"{'':<34} {'seconds':>8}")
    threads = f"{kernel_threads()} of {available_cores()} cores"
    cpu = CPU_SECONDS["ours"]
    print(
        f"{'sparecast (from_long + 4 kernels)':<34} {t_ours:>8.2f}   ({threads}; {cpu:.2f} CPU s)"
    )
    if args.threads != 1:
        set_threads(1)
        t_one, f_one = best_of(ours, args.repeat, "one")
        set_threads(args.threads)
        same = np.array_equal(f_one, f_ours)
        cpu = CPU_SECONDS["one"]
        print(f"{'sparecast, 1 thread':<34} {t_one:>8.2f}   ({cpu:.2f} CPU s; identical: {same})")
    if args.defaults:
        bench_defaults(DemandPanel.from_long(pdf), args.repeat)
    if args.no_statsforecast:
        return
    from statsforecast import StatsForecast
    from statsforecast import models as sf

    def theirs(n_jobs: int) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = StatsForecast(
                models=[sf.CrostonClassic(), sf.CrostonSBA(), sf.ADIDA(), sf.IMAPA()],
                freq="D",
                n_jobs=n_jobs,
            )
            return model.forecast(df=pdf, h=H)

    cols = ["CrostonClassic", "CrostonSBA", "ADIDA", "IMAPA"]
    for n_jobs in args.sf_jobs:
        t_sf, out = best_of(lambda n=n_jobs: theirs(n), args.sf_repeat, f"sf{n_jobs}")
        out = out.sort_values(["unique_id", "ds"])
        ref = np.stack([out[c].to_numpy(np.float64).reshape(args.items, H) for c in cols])
        diff = float(np.nanmax(np.abs(f_ours - ref)))
        cpu = f"; {CPU_SECONDS[f'sf{n_jobs}']:.2f} CPU s" if n_jobs == 1 else ""
        print(
            f"{f'statsforecast (n_jobs={n_jobs})':<34} {t_sf:>8.2f}   ratio {t_sf / t_ours:.1f}x"
            f"   (max abs diff of forecasts {diff:.1e}{cpu})"
        )


def bench_defaults(panel: DemandPanel, repeat: int) -> None:
    """The default methods (robust included) through ``forecast_arrays`` (levels shared) against
    one ``forecast_matrix`` per method (each on its own, as before the memo), same threads."""
    from sparecast.core import forecast_arrays
    from sparecast.methods import DEFAULT_METHODS, forecast_matrix, params_for

    params = params_for(panel.freq, DEFAULT_METHODS)

    def alone() -> dict[str, np.ndarray]:
        return {m: forecast_matrix(panel.y, H, m, params.get(m)) for m in DEFAULT_METHODS}

    t_alone, f_alone = best_of(alone, repeat)
    t_shared, f_shared = best_of(lambda: forecast_arrays(panel, H), repeat)
    same = all(np.array_equal(f_alone[m], f_shared[m]) for m in DEFAULT_METHODS)
    print(f"\nthe {len(DEFAULT_METHODS)} default methods (robust included), panel built")
    print(f"{'one method at a time':<34} {t_alone:>8.2f}")
    print(f"{'forecast_arrays (shared levels)':<34} {t_shared:>8.2f}   (identical: {same})")


def demand_rows(rows: int, seed: int) -> pl.DataFrame:
    """A canonical demand table of ``rows`` rows: 100k items over two years, sparse."""
    rng = np.random.default_rng(seed)
    items = 100_000
    item = rng.integers(0, items, rows)
    day = rng.integers(0, 730, rows)
    order = np.lexsort((day, item))
    return pl.DataFrame(
        {
            "item_id": item[order],
            "date": np.datetime64("2024-01-01") + day[order],
            "quantity": np.round(rng.gamma(0.8, 4.0, rows), 2),
        }
    ).with_columns(
        pl.concat_str(pl.lit("SKU"), pl.col("item_id").cast(pl.String).str.zfill(6)).alias(
            "item_id"
        ),
        pl.col("date").cast(pl.Date),
    )


def bench_extract(args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from sparecast.data.sources import read_tables, write_tables
    from sparecast.urls import redact_url

    engine = sa.create_engine(args.url)
    have = 0
    try:
        with engine.connect() as conn:
            have = int(conn.exec_driver_sql("SELECT COUNT(*) FROM demand").scalar_one())
    except sa.exc.DBAPIError:
        have = 0
    finally:
        engine.dispose()
    if not (args.keep and have == args.rows):
        t0 = time.perf_counter()
        write_tables({"demand": demand_rows(args.rows, args.seed)}, args.url)
        print(f"wrote {args.rows:,} demand rows in {time.perf_counter() - t0:.1f} s")
    print(f"reading demand ({args.rows:,} rows) from {redact_url(args.url)}")
    results = {}
    for reader in ("sqlalchemy", "arrow"):
        t0 = time.perf_counter()
        results[reader] = read_tables(args.url, tables=["demand"], reader=reader)["demand"]
        secs = time.perf_counter() - t0
        print(f"{reader:<12} {secs:>8.2f} s  ({results[reader].height / secs / 1e6:.2f} M rows/s)")
        results[reader + "_s"] = secs
    same = results["arrow"].equals(results["sqlalchemy"]) and (
        results["arrow"].schema == results["sqlalchemy"].schema
    )
    print(f"speed-up {results['sqlalchemy_s'] / results['arrow_s']:.1f}x, same frame: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("panel", help="from_long and the classical methods vs statsforecast")
    p.add_argument("--items", type=int, default=30_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-statsforecast", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="kernel threads (default: every core)")
    p.add_argument(
        "--sf-jobs",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="statsforecast n_jobs values to time, comma-separated (default 1,2)",
    )
    p.add_argument("--sf-repeat", type=int, default=1, help="best of N statsforecast runs")
    p.add_argument(
        "--defaults",
        action="store_true",
        help="also time the default methods with and without shared levels",
    )
    e = sub.add_parser("extract", help="read_tables through Arrow vs SQLAlchemy")
    e.add_argument("--url", required=True, help="SQLAlchemy URL of a scratch database")
    e.add_argument("--rows", type=int, default=5_000_000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--keep", action="store_true", help="reuse a demand table of --rows rows")
    args = parser.parse_args()
    bench_panel(args) if args.what == "panel" else bench_extract(args)


if __name__ == "__main__":
    main()
