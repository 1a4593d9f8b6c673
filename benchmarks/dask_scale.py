"""The forecasting core (classify, 3-window backtest, router, forecasts) of the classical
methods in one process and on a 2-worker Dask LocalCluster (``sparecast.pipeline.distributed``),
on a synthetic intermittent panel of ITEMS x DAYS: wall time, peak memory of the client and of
each worker (maximum resident set size).

Each mode runs in a fresh process (``--mode``), so the peaks do not mix.

    python benchmarks/dask_scale.py --items 10000 30000 100000 --days 730
    python benchmarks/dask_scale.py --items 100000 --modes dask --chunk-items 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np


def gib(kb: float) -> float:
    return kb / 1024**2


def synthetic_panel(n_items: int, n_days: int, seed: int = 0) -> Any:
    """Intermittent daily demand: per item a demand probability (1-60 %) and a Poisson size."""
    from sparecast.data.panel import DemandPanel

    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.6, size=(n_items, 1))
    size = rng.gamma(2.0, 2.0, size=(n_items, 1))
    y = np.zeros((n_items, n_days), dtype=np.float32)
    for a in range(0, n_items, 10_000):  # chunked: bounded temporaries
        b = min(a + 10_000, n_items)
        hit = rng.random((b - a, n_days)) < p[a:b]
        y[a:b] = np.where(hit, 1 + rng.poisson(size[a:b], size=(b - a, n_days)), 0)
    ids = np.array([f"i{i:07d}" for i in range(n_items)])
    return DemandPanel(y, ids, np.datetime64("2024-11-01"), "D")


def _rss() -> float:
    """This process's current resident set size in KiB (run on each worker)."""
    import psutil

    return psutil.Process().memory_info().rss / 1024


def one(mode: str, n_items: int, n_days: int, chunk_items: int, workers: int) -> dict[str, Any]:
    """One measured run in this process (the ``--mode`` child)."""
    from sparecast.config import load_settings
    from sparecast.methods import DEFAULT_METHODS
    from sparecast.pipeline.core import run_core
    from sparecast.pipeline.distributed import compute_engine

    panel = synthetic_panel(n_items, n_days)
    compute: dict[str, Any] = {"chunk_items": chunk_items}
    if mode == "dask":
        compute["workers"] = workers
    settings = load_settings(methods=list(DEFAULT_METHODS), compute=compute)
    out: dict[str, Any] = {"mode": mode, "items": n_items, "days": n_days}
    out["load_start"] = round(os.getloadavg()[0], 1)
    trace: list[tuple[str, float, list[float]]] = []  # (label, seconds, worker RSS GiB)
    holder: dict[str, Any] = {}
    t_start = time.perf_counter()

    def progress(label: str, done: int, total: int) -> None:
        """After each chunk: every worker's current resident set size (the growth over chunks)."""
        eng = holder.get("engine")
        if mode != "dask" or eng is None or not hasattr(eng, "client"):
            return
        rss = eng.client.run(_rss)
        trace.append(
            (
                label,
                round(time.perf_counter() - t_start, 1),
                [round(gib(v), 3) for v in rss.values()],
            )
        )

    with compute_engine(settings, progress=progress) as engine:
        holder["engine"] = engine
        t0 = time.perf_counter()
        result = run_core(panel, settings, engine=engine)
        out["core_s"] = round(time.perf_counter() - t0, 1)
        if mode == "dask":
            client = engine.client  # type: ignore[attr-defined]
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            out["worker_peak_gib"] = [round(gib(v), 2) for v in peaks.values()]
            out["chunk_items"] = chunk_items
            out["trace"] = trace
    assert result.forecasts is not None and result.forecasts.height == n_items * 28
    out["load_end"] = round(os.getloadavg()[0], 1)
    out["client_peak_gib"] = round(gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 2)
    out["methods"] = len(DEFAULT_METHODS)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--modes", nargs="+", default=["local", "dask"], choices=["local", "dask"])
    ap.add_argument("--chunk-items", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log", help="append every run's JSON line (with the memory trace) here")
    ap.add_argument("--mode", choices=["local", "dask"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # the child: one run, one JSON line
        print(json.dumps(one(args.mode, args.items[0], args.days, args.chunk_items, args.workers)))
        return
    print("| mode | items x days | core s | client peak GiB | worker peaks GiB | load 1-min |")
    print("|---|---|---:|---:|---|---|")
    for n in args.items:
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--mode", mode, "--items", str(n)]
            cmd += ["--days", str(args.days), "--chunk-items", str(args.chunk_items)]
            cmd += ["--workers", str(args.workers)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            line = proc.stdout.strip().splitlines()[-1]
            r = json.loads(line)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(line + "\n")
            label = "one process" if mode == "local" else f"Dask, {args.workers} workers"
            peaks = ", ".join(f"{p:.2f}" for p in r.get("worker_peak_gib", [])) or "-"
            print(
                f"| {label} | {n:,} x {args.days} | {r['core_s']} | {r['client_peak_gib']:.2f} "
                f"| {peaks} | {r['load_start']}-{r['load_end']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
