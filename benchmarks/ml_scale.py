"""Speed and peak memory of the global ML models on a demo-generator panel of N items x D days.

Prints the time to build the panel, fit and predict, the training rows, and the peak resident
memory of the process (``resource.getrusage``, high-water mark: it includes the panel and the
data generation). Goal: < 8 GiB at 100,000 x 730; global LightGBM fit on 2,016 x 365 < 10 s.

    python benchmarks/ml_scale.py --items 2016 --days 365              # the demo size
    python benchmarks/ml_scale.py --items 100000 --days 730            # the scale goal
    python benchmarks/ml_scale.py --items 100000 --days 730 --method xgboost
    python benchmarks/ml_scale.py --items 20000 --days 730 --backtest 3   # one fit vs per window

``--backtest N`` instead times a rolling-origin backtest of the model alone over N windows, once
with one fit for all windows (the default, ``Method.backtest_kernel``) and once with one fit per
window (``reuse_fits=False``), counting the fits and comparing the scores.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date

import numpy as np

from sparecast import DemandPanel, backtest
from sparecast.data.demo import generate_demo_erp
from sparecast.methods import ml
from sparecast.methods.ml import GlobalLightGBM, XGBoostRegular


def peak_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build_panel(n_items: int, n_days: int, seed: int) -> DemandPanel:
    end = date(2026, 10, 31)
    tables = generate_demo_erp(n_items=n_items, n_days=n_days, seed=seed, end_date=end)
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    items = (
        tables["items"]
        .rename({"item_id": "unique_id"})
        .select("unique_id", "category", "unit_cost")
    )
    del tables
    return DemandPanel.from_long(
        demand,
        freq="D",
        item_ids=items["unique_id"].to_list(),
        start=end - np.timedelta64(n_days - 1, "D").astype(object),
        end=end,
        attributes=items,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--h", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=["lightgbm", "xgboost"], default="lightgbm")
    parser.add_argument("--strategy", default="direct")
    parser.add_argument("--objective", default="tweedie")
    parser.add_argument("--backtest", type=int, default=0, metavar="N_WINDOWS")
    args = parser.parse_args()

    t0 = time.perf_counter()
    panel = build_panel(args.items, args.days, args.seed)
    t_panel = time.perf_counter() - t0
    peak_panel = peak_gib()
    if args.backtest:
        time_backtest(panel, args)
        return
    cls = GlobalLightGBM if args.method == "lightgbm" else XGBoostRegular
    model = cls(strategy=args.strategy, objective=args.objective)
    t1 = time.perf_counter()
    model.fit(panel, args.h)
    t_fit = time.perf_counter() - t1
    t2 = time.perf_counter()
    fc = model.predict()
    t_pred = time.perf_counter() - t2
    n_rows = model.n_train_rows_
    print(
        f"{args.method} {args.strategy} {args.objective}: {panel!r}\n"
        f"  panel {t_panel:.1f} s (peak so far {peak_panel:.2f} GiB)\n"
        f"  fit {t_fit:.1f} s on {n_rows:,} training rows x {len(model.feature_names_)} features\n"
        f"  predict {t_pred:.1f} s, forecast mean {fc.mean():.3f} (actual mean "
        f"{float(panel.y.mean()):.3f})\n"
        f"  peak resident memory {peak_gib():.2f} GiB"
    )


def time_backtest(panel: DemandPanel, args: argparse.Namespace) -> None:
    """The backtest of the model alone, one fit for all windows against one fit per window."""
    # through sparecast: it sets OMP_WAIT_POLICY before the library is first loaded
    lib = ml._lightgbm() if args.method == "lightgbm" else ml._xgboost()
    fits = [0]
    train = lib.train

    def counting(*a: object, **k: object) -> object:
        fits[0] += 1
        return train(*a, **k)

    lib.train = counting
    params = {args.method: {"strategy": args.strategy, "objective": args.objective}}
    # warm up (imports, numba compilation of the features) on a few items, not timed
    few = panel.select_items(np.arange(min(panel.n_items, 200)))
    backtest(few, h=args.h, methods=[args.method], n_windows=2, params=params, references=())
    print(f"{args.method} backtest, {args.backtest} windows, h={args.h}: {panel!r}")
    for reuse in (True, False):
        fits[0] = 0
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = backtest(
            panel,
            h=args.h,
            methods=[args.method],
            n_windows=args.backtest,
            params=params,
            references=(),
            percentage_items=np.zeros(panel.n_items, dtype=bool),
            reuse_fits=reuse,
        )
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        scores = result.scores.select("mase", "rmsse", "abs_error_sum", "actual_sum")
        wape = scores["abs_error_sum"].sum() / scores["actual_sum"].sum()
        print(
            f"  {'one fit' if reuse else 'per window'}: {fits[0]} fit(s), {seconds:.1f} s "
            f"({cpu:.1f} s CPU); "
            f"MASE {scores['mase'].mean():.4f}, RMSSE {scores['rmsse'].mean():.4f}, "
            f"WAPE {wape:.4f}"
        )
    print(f"  peak resident memory {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
