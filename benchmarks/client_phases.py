"""Where the client's memory goes in the core on a Dask cluster: the client's resident size
(sampled every 20 ms) per step of ``run_core`` on the long Parquet file of
``benchmarks/dask_scale.py`` (``--modes dask-file`` writes it), loaded per chunk on the workers.

Per step: its highest resident size and the size at its end (GiB). ``--trim`` calls glibc's
``malloc_trim(0)`` at the end of every step, so that the size at the end is what numpy still
holds; what polars frees stays with its own allocator (jemalloc) a while longer.

    python benchmarks/client_phases.py --items 100000 --days 730 --chunk-items 10000
"""

from __future__ import annotations

import argparse
import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any


def rss_gib() -> float:
    """This process's resident size now (GiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--chunk-items", type=int, default=10_000)
    ap.add_argument("--data-dir", default="/tmp/sparecast-dask-scale")
    ap.add_argument("--trim", action="store_true")
    args = ap.parse_args()

    import sparecast.pipeline.core as core
    import sparecast.pipeline.distributed as dist
    from sparecast.config import load_settings
    from sparecast.methods import DEFAULT_METHODS
    from sparecast.selection.router import HybridRouter

    step = ["start"]
    peaks: dict[str, float] = {}
    ends: dict[str, float] = {}

    def sample() -> None:
        while True:
            peaks[step[0]] = max(peaks.get(step[0], 0.0), rss_gib())
            time.sleep(0.02)

    def traced(owner: Any, name: str, label: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def run(*a: Any, **k: Any) -> Any:
            step[0] = label
            try:
                return inner(*a, **k)
            finally:
                if args.trim:
                    ctypes.CDLL("libc.so.6").malloc_trim(0)
                ends[label] = rss_gib()
                step[0] = f"after {label}"

        setattr(owner, name, run)

    traced(dist.DaskEngine, "load_file", "load_file")
    traced(dist.DaskEngine, "classify", "classify")
    traced(dist.DaskEngine, "backtest", "backtest (gather + merge)")
    traced(HybridRouter, "fit", "router.fit")
    traced(dist.DaskEngine, "forecast_all", "forecast_all")
    traced(HybridRouter, "predict", "router.predict")
    traced(core, "forecasts_to_frame", "forecasts_to_frame")
    threading.Thread(target=sample, daemon=True).start()
    path = f"{args.data_dir}/long_{args.items}x{args.days}.parquet"
    methods = [m for m in DEFAULT_METHODS if m != "lightgbm"]
    compute = {"chunk_items": args.chunk_items, "workers": 2}
    settings = load_settings(methods=methods, compute=compute)
    with dist.compute_engine(settings) as engine:
        panel = engine.load_file(path, settings).panel  # type: ignore[attr-defined]
        step[0] = "run_core"
        result = core.run_core(panel, settings, engine=engine)
        step[0] = "end"
        time.sleep(0.1)
    assert result.forecasts is not None and result.backtest is not None
    print(f"forecast frame {result.forecasts.estimated_size() / 2**30:.3f} GiB")
    print(f"backtest scores {result.backtest.scores.estimated_size() / 2**30:.3f} GiB")
    print("| step | highest GiB | at its end GiB |\n|---|---:|---:|")
    for label, peak in peaks.items():
        end = f"{ends[label]:.2f}" if label in ends else ""
        print(f"| {label} | {peak:.2f} | {end} |")


if __name__ == "__main__":  # the workers are spawned: they must not run this
    main()
