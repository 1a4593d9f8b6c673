"""The forecasting core on a synthetic intermittent panel of ITEMS x DAYS, in one process and on a
2-worker Dask LocalCluster (``sparecast.pipeline.distributed``), against statsforecast and
mlforecast on the same kind of cluster: wall time, peak memory of the client and of each worker
(maximum resident set size; a worker's own, see ``_peaks``), the load average at start and end,
and each worker's current and peak memory per chunk (``--log``: the growth over chunks).

Modes (each in a fresh process, so the peaks do not mix):

- ``dask-file-client`` / ``dask-file``: the same core from the panel written as a long Parquet
  file sorted by id (``--data-dir``; the days with demand only): loaded in one piece on the
  client (``load_panel``) and shipped to the workers chunk by chunk, against loaded per chunk on
  the workers (``DaskEngine.load_file``: the client reads the ids only); the load is in the wall
  time and shown apart; with ``--lightgbm`` the router's candidates include the global LightGBM
  (the default methods: trained on the cluster with lightgbm.dask, from the client's panel's
  chunks or from the workers' file ranges), else the 12 classical methods only;
- ``local`` / ``dask``: the core (classify, 3-window backtest of the 12 classical methods, router,
  forecasts of h = 28) in one process / on the cluster;
- ``dask-4`` against ``statsforecast``: the same work for Croston, SBA, ADIDA and IMAPA: our core
  on the cluster (classification and router included) against statsforecast on Dask (fugue's
  Dask engine: ``StatsForecast(...).cross_validation(df=dask_df, h=28, n_windows=3)`` and
  ``.forecast(df=dask_df, h=28)``, ``n_jobs=1``);
- ``dask-lgb`` against ``mlforecast``: one global LightGBM fit (200 trees, tweedie) and a forecast
  of h = 28 for every item: ours trained with lightgbm.dask on rows built per chunk
  (``sparecast.pipeline.dask_ml``, direct strategy) against ``DistributedMLForecast`` with
  ``DaskLGBMForecast`` (lags 1, 7, 14, 28, rolling means 7 and 28, day of week; recursive).

The peers' long data frame (int32 ids, dates, float32 y) is built before the clock starts, as
our panel is. statsforecast on Dask needs fugue: ``pip install 'fugue[dask]'`` (not a sparecast
dependency).

    python benchmarks/dask_scale.py --items 10000 30000 100000 --days 730
    python benchmarks/dask_scale.py --items 100000 300000 1000000 --modes dask --log scale.jsonl
    python benchmarks/dask_scale.py --items 30000 --modes dask-4 statsforecast dask-lgb mlforecast
    python benchmarks/dask_scale.py --items 100000 300000 --modes dask-file-client dask-file
    python benchmarks/dask_scale.py --items 20000 --modes dask-file-client dask-file --lightgbm
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


def synthetic_blocks(n_items: int, n_days: int, seed: int = 0) -> Any:
    """Intermittent daily demand: per item a demand probability (1-60 %) and a Poisson size;
    yields ``(first item, float32 block [<= 10,000 items, n_days])`` in item order."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.6, size=(n_items, 1))
    size = rng.gamma(2.0, 2.0, size=(n_items, 1))
    for a in range(0, n_items, 10_000):  # chunked: bounded temporaries
        b = min(a + 10_000, n_items)
        hit = rng.random((b - a, n_days)) < p[a:b]
        block = np.where(hit, 1 + rng.poisson(size[a:b], size=(b - a, n_days)), 0)
        yield a, block.astype(np.float32)


START = np.datetime64("2024-11-01")


def synthetic_panel(n_items: int, n_days: int, seed: int = 0) -> Any:
    """:func:`synthetic_blocks` as one DemandPanel (ids ``i0000000``, ...)."""
    from sparecast.data.panel import DemandPanel

    y = np.zeros((n_items, n_days), dtype=np.float32)
    for a, block in synthetic_blocks(n_items, n_days, seed):
        y[a : a + block.shape[0]] = block
    ids = np.array([f"i{i:07d}" for i in range(n_items)])
    return DemandPanel(y, ids, START, "D")


def long_file(n_items: int, n_days: int, data_dir: str) -> str:
    """The synthetic panel as a long Parquet file sorted by id (``unique_id, ds, y``, the days
    with demand only, as an ERP books them), written block by block once per size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(data_dir, f"long_{n_items}x{n_days}.parquet")
    if os.path.exists(path):
        return path
    os.makedirs(data_dir, exist_ok=True)
    schema = pa.schema([("unique_id", pa.string()), ("ds", pa.date32()), ("y", pa.float64())])
    dates = START + np.arange(n_days)
    with pq.ParquetWriter(path + ".tmp", schema) as writer:
        for a, block in synthetic_blocks(n_items, n_days):
            rows, cols = np.nonzero(block)
            ids = np.array([f"i{i:07d}" for i in range(a, a + block.shape[0])])
            table = pa.table(
                {
                    "unique_id": ids[rows],
                    "ds": dates[cols].astype("datetime64[D]"),
                    "y": block[rows, cols].astype(np.float64),
                },
                schema=schema,
            )
            writer.write_table(table, row_group_size=256 * 1024)
    os.replace(path + ".tmp", path)
    return path


def _rss() -> list[float]:
    """This process's current resident set size and its peak since the last call (KiB; run on
    each worker). The peak (VmHWM) is reset through /proc/self/clear_refs, so that each chunk's
    own peak shows."""
    import psutil

    hwm = 0.0
    try:
        with open("/proc/self/status") as f:
            hwm = float(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, StopIteration):
        pass
    return [psutil.Process().memory_info().rss / 1024, hwm]


FOUR = ["croston", "sba", "adida", "imapa"]
MODES = (
    "local",
    "dask",
    "dask-file-client",
    "dask-file",
    "dask-4",
    "statsforecast",
    "dask-lgb",
    "mlforecast",
)


def _hwm() -> float:
    """This process's own peak resident set size (VmHWM, KiB)."""
    with open("/proc/self/status") as f:
        return float(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


def _cpu() -> float:
    """This process's CPU seconds (user + system; run on each worker)."""
    t = os.times()
    return t.user + t.system


def _peaks(client: Any, seen: dict[str, float] | None = None) -> list[float]:
    """Every worker's peak resident set size in GiB: its VmHWM now, and the peaks ``seen`` by
    the per-chunk trace (which resets VmHWM). Not ``ru_maxrss``: a worker process is forked
    from the client and exec'd, and Linux keeps the client's resident size at the fork in the
    child's ``ru_maxrss`` (pages the worker never touches), so that figure grows with the
    client's panel, not with the worker's work."""
    now = client.run(_hwm)
    seen = seen or {}
    return [round(gib(max(v, seen.get(k, 0.0))), 2) for k, v in sorted(now.items())]


def long_frame(panel: Any) -> Any:
    """The panel as the peers' long pandas frame: unique_id (int32), ds, y (float32)."""
    import pandas as pd

    n, t = panel.y.shape
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(n, dtype=np.int32), t),
            "ds": np.tile(panel.dates.astype("datetime64[ns]"), n),
            "y": panel.y.reshape(-1),
        }
    )


def peer(mode: str, panel: Any, workers: int) -> dict[str, Any]:
    """statsforecast or mlforecast on a fresh LocalCluster of ``workers`` single-threaded
    worker processes (as ``sparecast --workers``)."""
    import dask.dataframe as dd
    import distributed

    df = long_frame(panel)
    out: dict[str, Any] = {}
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ddf = dd.from_pandas(df, npartitions=4 * workers)
        del df
        t0 = time.perf_counter()
        if mode == "statsforecast":
            from statsforecast import StatsForecast
            from statsforecast.models import ADIDA, IMAPA, CrostonClassic, CrostonSBA

            sf = StatsForecast(
                models=[CrostonClassic(), CrostonSBA(), ADIDA(), IMAPA()], freq="D", n_jobs=1
            )
            cv = sf.cross_validation(df=ddf, h=28, n_windows=3, step_size=28).compute()
            fc = sf.forecast(df=ddf, h=28).compute()
            out["rows"] = [len(cv), len(fc)]
        else:
            from mlforecast.distributed import DistributedMLForecast
            from mlforecast.distributed.models.dask.lgb import DaskLGBMForecast
            from mlforecast.lag_transforms import RollingMean

            model = DaskLGBMForecast(
                n_estimators=200, learning_rate=0.05, objective="tweedie", verbosity=-1
            )
            mlf = DistributedMLForecast(
                models=[model],
                freq="D",
                lags=[1, 7, 14, 28],
                lag_transforms={1: [RollingMean(7), RollingMean(28)]},
                date_features=["dayofweek"],
            )
            mlf.fit(ddf)
            fc = mlf.predict(28).compute()
            out["rows"] = [len(fc)]
        out["core_s"] = round(time.perf_counter() - t0, 1)
        out["worker_peak_gib"] = _peaks(client)
        out["worker_cpu_s"] = round(sum(client.run(_cpu).values()), 1)
    return out


def one(
    mode: str,
    n_items: int,
    n_days: int,
    chunk_items: int,
    workers: int,
    data_dir: str,
    lightgbm: bool = False,
) -> dict[str, Any]:
    """One measured run in this process (the ``--mode`` child); ``lightgbm``: the dask-file
    modes keep LightGBM among the default methods."""
    from sparecast.config import load_settings
    from sparecast.methods import DEFAULT_METHODS
    from sparecast.pipeline.core import make_router, reported_methods, run_core
    from sparecast.pipeline.distributed import compute_engine

    from_file = mode.startswith("dask-file")
    path = os.path.join(data_dir, f"long_{n_items}x{n_days}.parquet")
    panel = None if from_file else synthetic_panel(n_items, n_days)
    out: dict[str, Any] = {"mode": mode, "items": n_items, "days": n_days}
    out["load_start"] = round(os.getloadavg()[0], 1)
    if mode in ("statsforecast", "mlforecast"):
        out.update(peer(mode, panel, workers))
        out["load_end"] = round(os.getloadavg()[0], 1)
        out["client_peak_gib"] = round(gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 2)
        return out
    compute: dict[str, Any] = {"chunk_items": chunk_items}
    if mode != "local":
        compute["workers"] = workers
    methods = {"dask-4": FOUR, "dask-lgb": ["lightgbm"]}.get(mode, list(DEFAULT_METHODS))
    if from_file:  # the 12 classical methods, or the default router's candidates (+ LightGBM)
        methods = reported_methods(make_router(load_settings())) if lightgbm else methods
    settings = load_settings(methods=methods, compute=compute)
    # (label, seconds, per worker [current RSS, peak since the previous chunk] GiB)
    trace: list[tuple[str, float, list[list[float]]]] = []
    holder: dict[str, Any] = {}
    seen: dict[str, float] = {}  # each worker's peak (KiB) over the chunks
    t_start = time.perf_counter()

    def progress(label: str, done: int, total: int) -> None:
        """After each chunk: every worker's current resident set size (the growth over chunks)."""
        eng = holder.get("engine")
        if mode == "local" or eng is None or not hasattr(eng, "client"):
            return
        rss = eng.client.run(_rss)
        for worker, (_, hwm) in rss.items():
            seen[worker] = max(seen.get(worker, 0.0), hwm)
        trace.append(
            (
                label,
                round(time.perf_counter() - t_start, 1),
                [[round(gib(x), 3) for x in v] for v in rss.values()],
            )
        )

    with compute_engine(settings, progress=progress) as engine:
        holder["engine"] = engine
        t0 = time.perf_counter()
        if mode == "dask-file-client":  # before: the client loads the file in one piece
            from sparecast.pipeline.load import load_panel

            panel = load_panel(path, settings).panel
            out["load_s"] = round(time.perf_counter() - t0, 1)
        elif mode == "dask-file":  # after: each worker loads its chunks' rows
            panel = engine.load_file(path, settings).panel  # type: ignore[attr-defined]
            out["load_s"] = round(time.perf_counter() - t0, 1)
        assert panel is not None
        n_items = panel.n_items
        if mode == "dask-lgb":  # one fit and the forecasts, as mlforecast's fit + predict
            values, failed = engine.forecast_all(panel, 28, ["lightgbm"], {}, lambda _: None)
            assert not failed and values["lightgbm"].shape == (n_items, 28), failed
        else:
            result = run_core(panel, settings, engine=engine)
            assert result.forecasts is not None and result.forecasts.height == n_items * 28
        out["core_s"] = round(time.perf_counter() - t0, 1)
        if mode != "local":
            out["worker_peak_gib"] = _peaks(engine.client, seen)  # type: ignore[attr-defined]
            cpu = engine.client.run(_cpu)  # type: ignore[attr-defined]
            out["worker_cpu_s"] = round(sum(cpu.values()), 1)
            out["chunk_items"] = chunk_items
            out["trace"] = trace
            out["engine_timings"] = {
                k: round(v, 1)
                for k, v in engine.timings.items()  # type: ignore[attr-defined]
            }
    out["load_end"] = round(os.getloadavg()[0], 1)
    out["client_peak_gib"] = round(gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 2)
    out["client_cpu_s"] = round(_cpu(), 1)  # the panel's generation included
    out["methods"] = len(methods)
    return out


LABELS = {
    "local": "sparecast, one process",
    "dask": "sparecast, Dask {workers} workers",
    "dask-file-client": "sparecast from the Parquet file, loaded on the client, Dask {workers}",
    "dask-file": "sparecast from the Parquet file, loaded per chunk on the workers, Dask {workers}",
    "dask-4": "sparecast 4 methods, Dask {workers} workers",
    "statsforecast": "statsforecast 4 methods, Dask {workers} workers (fugue)",
    "dask-lgb": "sparecast LightGBM (lightgbm.dask), {workers} workers",
    "mlforecast": "mlforecast DistributedMLForecast LightGBM, {workers} workers",
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--modes", nargs="+", default=["local", "dask"], choices=MODES)
    ap.add_argument("--chunk-items", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log", help="append every run's JSON line (with the memory trace) here")
    ap.add_argument(
        "--data-dir",
        default="/tmp/sparecast-dask-scale",
        help="where the dask-file modes write the synthetic panel as a sorted long Parquet file",
    )
    ap.add_argument(
        "--lightgbm",
        action="store_true",
        help="the dask-file modes run the default methods with LightGBM (else without it)",
    )
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # the child: one run, one JSON line
        print(
            json.dumps(
                one(
                    args.mode,
                    args.items[0],
                    args.days,
                    args.chunk_items,
                    args.workers,
                    args.data_dir,
                    args.lightgbm,
                )
            )
        )
        return
    print(
        "| mode | items x days | wall s (load s) | workers' CPU s | client CPU s | client peak GiB "
        "| worker peaks GiB | load 1-min |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|")
    for n in args.items:
        if any(m.startswith("dask-file") for m in args.modes):  # written once, before the runs
            long_file(n, args.days, args.data_dir)
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--mode", mode, "--items", str(n)]
            cmd += ["--data-dir", args.data_dir]
            cmd += ["--days", str(args.days), "--chunk-items", str(args.chunk_items)]
            cmd += ["--workers", str(args.workers)] + (["--lightgbm"] if args.lightgbm else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            label = LABELS[mode].format(workers=args.workers)
            if proc.returncode != 0:  # e.g. a peer out of memory: say so, go on
                why = (proc.stderr.strip().splitlines() or ["no output"])[-1][:150]
                print(f"| {label} | {n:,} x {args.days} | failed: {why} | | | | | |", flush=True)
                continue
            line = proc.stdout.strip().splitlines()[-1]
            r = json.loads(line)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(line + "\n")
            peaks = ", ".join(f"{p:.2f}" for p in r.get("worker_peak_gib", [])) or "-"
            print(
                f"| {label} | {n:,} x {args.days} | {r['core_s']} ({r.get('load_s', '-')}) "
                f"| {r.get('worker_cpu_s', '-')} | {r.get('client_cpu_s', '-')} "
                f"| {r['client_peak_gib']:.2f} "
                f"| {peaks} | {r['load_start']}-{r['load_end']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
