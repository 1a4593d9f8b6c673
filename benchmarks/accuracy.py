"""Accuracy of every classical method and of sparecast's per-class selection, against the naive
and moving-average baselines, on the demo ERP and on the real datasets under ../shared/data.

Honest protocol: the last ``h`` periods are a holdout nobody sees. Methods are chosen per
Syntetos-Boylan class by a rolling-origin backtest on the history before the holdout; then every
method and the selection forecast the holdout once and are scored on it.

    python benchmarks/accuracy.py                     # demo (2,016 x 365) and carparts
    python benchmarks/accuracy.py --datasets carparts --windows 2
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from sparecast import DemandPanel, backtest, classify
from sparecast.core import forecast_arrays
from sparecast.data.demo import generate_demo_erp
from sparecast.evaluate.metrics import METRICS, nanmean_count
from sparecast.methods import DEFAULT_METHODS
from sparecast.selection import select

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def demo_panel(n_items: int, n_days: int, seed: int) -> tuple[DemandPanel, int, int]:
    tables = generate_demo_erp(
        n_items=n_items, n_days=n_days, seed=seed, end_date=date(2026, 10, 31)
    )
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    panel = DemandPanel.from_long(
        demand,
        freq="D",
        item_ids=tables["items"]["item_id"].to_list(),
        start=date(2026, 10, 31) - np.timedelta64(n_days - 1, "D").astype(object),
        end=date(2026, 10, 31),
    )
    return panel, 28, 3


def carparts_panel() -> tuple[DemandPanel, int, int]:
    df = pl.read_csv(DATA / "carparts" / "carparts.csv", try_parse_dates=True)
    # Missing cells of the original are left out of the file: the panel reads them as zero demand.
    return DemandPanel.from_long(df, freq="M"), 6, 2


def evaluate(
    name: str, panel: DemandPanel, h: int, windows: int, methods: list[str]
) -> pl.DataFrame:
    t0 = time.perf_counter()
    train = panel.slice_periods(panel.n_periods - h)
    actual = panel.y[:, -h:].astype(np.float64)
    classes = classify(train)
    bt = backtest(train, h=h, methods=methods, n_windows=windows, seasonality=1)
    selection = select(bt, classes, by="class", metric="rmsse")
    chosen = dict(zip(selection["unique_id"].to_list(), selection["method"].to_list(), strict=True))
    preds = forecast_arrays(train, h, methods)  # frequency defaults, as the backtest used
    pick = np.array([chosen[i] for i in train.item_ids.astype(str)])
    sel = np.zeros_like(actual)
    for m, p in preds.items():
        sel[pick == m] = p[pick == m]
    preds["sparecast (per-class selection)"] = sel
    rows = []
    y_train = train.y.astype(np.float64)
    for m, p in preds.items():
        rows.append(
            {
                "dataset": name,
                "method": m,
                "MASE": nanmean_count(METRICS["mase"](actual, p, y_train))[0].item(),
                "RMSSE": nanmean_count(METRICS["rmsse"](actual, p, y_train))[0].item(),
                "MAE": float(METRICS["mae"](actual, p).mean()),
                "bias": float(METRICS["me"](actual, p).mean()),
                # one WAPE over every item and period: the whole panel as one series
                "WAPE": float(METRICS["wape"](actual.reshape(1, -1), p.reshape(1, -1))[0]),
            }
        )
    out = pl.DataFrame(rows)
    ma = out.filter(pl.col("method") == "ma").row(0, named=True)
    naive = out.filter(pl.col("method") == "naive").row(0, named=True)
    out = out.with_columns(
        ((1 - pl.col("RMSSE") / ma["RMSSE"]) * 100).round(1).alias("RMSSE vs MA %"),
        ((1 - pl.col("RMSSE") / naive["RMSSE"]) * 100).round(1).alias("RMSSE vs naive %"),
    )
    used = selection.group_by("method").len().sort("len", descending=True)
    print(
        f"\n## {name}: {panel.n_items:,} items x {panel.n_periods} periods ({panel.freq}), "
        f"h={h}, selection on {windows} backtest windows before the holdout, "
        f"{time.perf_counter() - t0:.1f} s"
    )
    print(
        "methods chosen per class:", ", ".join(f"{r[0]} ({r[1]} items)" for r in used.iter_rows())
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", default="demo,carparts")
    ap.add_argument("--items", type=int, default=2016)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--windows", type=int, default=None, help="backtest windows for the selection")
    args = ap.parse_args()
    methods = list(DEFAULT_METHODS)
    pl.Config.set_tbl_rows(50)
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_float_precision(3)
    for name in args.datasets.split(","):
        if name == "demo":
            panel, h, w = demo_panel(args.items, args.days, args.seed)
        elif name == "carparts":
            panel, h, w = carparts_panel()
        else:
            raise SystemExit(f"unknown dataset {name!r}")
        table = evaluate(name, panel, h, args.windows or w, methods)
        print(table.drop("dataset"))


if __name__ == "__main__":
    main()
