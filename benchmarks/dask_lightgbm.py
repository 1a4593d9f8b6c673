"""The global LightGBM trained on a 2-worker Dask LocalCluster with lightgbm.dask
(``sparecast.pipeline.dask_ml``) against the single-process fit, and two single-process fits
that differ only in ``seed`` as the yardstick of how far two honest fits are apart.

For each fit: the total forecast over all items and the horizon, its ratio to the
single-process fit (seed 0), the per-item correlation of the h-period totals, the summed
absolute per-item difference over the total, and the backtest MASE of the one-fit backtest
(``GlobalLightGBM`` fitted before the earliest of 3 origins, as ``sparecast run`` does).

    python benchmarks/dask_lightgbm.py --items 400 --days 400 --chunk-items 100
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from typing import Any

import numpy as np


def mase(panel: Any, forecasts: list[np.ndarray], origins: list[int], h: int) -> float:
    """Mean MASE over items and windows (naive in-sample scale; items with a zero scale left
    out)."""
    vals = []
    for fc, o in zip(forecasts, origins, strict=True):
        y = panel.y[:, :o].astype(np.float64)
        scale = np.abs(np.diff(y, axis=1)).mean(axis=1)
        err = np.abs(fc - panel.y[:, o : o + h]).mean(axis=1)
        ok = scale > 0
        vals.append(err[ok] / scale[ok])
    return float(np.concatenate(vals).mean())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--chunk-items", type=int, default=100)
    ap.add_argument("--n-estimators", type=int, default=100)
    args = ap.parse_args()

    import distributed

    from sparecast.data.demo import generate_demo_erp
    from sparecast.data.panel import DemandPanel
    from sparecast.evaluate.backtest import backtest_origins
    from sparecast.methods.ml import GlobalLightGBM
    from sparecast.pipeline.dask_ml import fit_on_cluster, predict_chunk
    from sparecast.pipeline.distributed import _chunk, chunk_bounds

    h = 28
    tables = generate_demo_erp(
        n_items=args.items, n_days=args.days, seed=3, end_date=date(2026, 10, 31)
    )
    panel = DemandPanel.from_long(
        tables["demand"], id_col="item_id", time_col="date", target_col="quantity"
    )
    origins = backtest_origins(panel.n_periods, h, 3, h)
    train = panel.slice_periods(origins[0])
    rows: list[tuple[str, np.ndarray, float, float]] = []
    load = [os.getloadavg()[0]]

    def local(seed: int) -> None:
        t0 = time.perf_counter()
        final = GlobalLightGBM(n_estimators=args.n_estimators, seed=seed).fit(panel, h).predict()
        bt = GlobalLightGBM(n_estimators=args.n_estimators, seed=seed).fit(train, h)
        fcs = [bt.predict(panel.slice_periods(o), h) for o in origins]
        label = f"one process, seed {seed}"
        rows.append((label, final, mase(panel, fcs, origins, h), time.perf_counter() - t0))

    local(0)
    local(1)
    local(2)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        t0 = time.perf_counter()

        def fit(p: DemandPanel) -> GlobalLightGBM:
            bounds = chunk_bounds(p.n_items, args.chunk_items)
            model = GlobalLightGBM(n_estimators=args.n_estimators)
            return fit_on_cluster(client, model, p, h, bounds, _chunk)[0]

        final = predict_chunk(fit(panel), panel, h)[0]
        bt = fit(train)
        fcs = [predict_chunk(bt, panel.slice_periods(o), h)[0] for o in origins]
        label = f"Dask 2 workers, lightgbm.dask, chunks of {args.chunk_items}"
        rows.append((label, final, mase(panel, fcs, origins, h), time.perf_counter() - t0))
    load.append(os.getloadavg()[0])

    ref = rows[0][1].sum(axis=1)
    print(
        f"{panel.n_items:,} items x {panel.n_periods} days, h = {h}, "
        f"{args.n_estimators} trees; load {load[0]:.1f}-{load[1]:.1f}\n"
    )
    print(
        "| fit | total forecast | / seed 0 | per-item correlation | abs. difference / total "
        "| backtest MASE | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, fc, score, seconds in rows:
        tot = fc.sum(axis=1)
        print(
            f"| {label} | {tot.sum():,.0f} | {tot.sum() / ref.sum():.3f} "
            f"| {np.corrcoef(ref, tot)[0, 1]:.3f} | {np.abs(tot - ref).sum() / ref.sum():.3f} "
            f"| {score:.3f} | {seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
