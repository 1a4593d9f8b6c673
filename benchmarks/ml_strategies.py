"""Choose the defaults of the global ML models by rolling-origin backtest: multi-step strategy
and objective of the global LightGBM, pooled vs per-item XGBoost on the regular items.

Scores are means over items of the backtest's MASE, RMSSE and ``asym`` (stockout-weighted squared
error, weight 3, scaled like RMSSE); "regular" columns restrict to the high_volume and regular
tiers. Time is the kernel time of all windows (fit + predict).

    python benchmarks/ml_strategies.py                          # demo (2,016 x 365) and carparts
    python benchmarks/ml_strategies.py --datasets carparts --part xgboost
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast import DemandPanel, backtest, classify
from sparecast.data.demo import generate_demo_erp

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def demo_panel(n_items: int = 2016, n_days: int = 365, seed: int = 0) -> DemandPanel:
    """The demo ERP's demand as a daily panel with category and unit cost."""
    end = date(2026, 10, 31)
    tables = generate_demo_erp(n_items=n_items, n_days=n_days, seed=seed, end_date=end)
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    items = (
        tables["items"]
        .rename({"item_id": "unique_id"})
        .select("unique_id", "category", "unit_cost")
    )
    return DemandPanel.from_long(
        demand,
        freq="D",
        item_ids=items["unique_id"].to_list(),
        start=end - np.timedelta64(n_days - 1, "D").astype(object),
        end=end,
        attributes=items,
    )


def carparts_panel() -> DemandPanel:
    df = pl.read_csv(DATA / "carparts" / "carparts.csv", try_parse_dates=True)
    return DemandPanel.from_long(df, freq="M")


DATASETS = {"demo": (demo_panel, 28, 3), "carparts": (carparts_panel, 6, 3)}

LGB_CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("ma", "ma", {}),
    *[
        (f"lightgbm {s} {o}", "lightgbm", {"strategy": s, "objective": o})
        for s in ("direct", "recursive", "mean")
        for o in ("tweedie", "poisson", "l2")
    ],
    *[
        (
            f"lightgbm direct asymmetric {link}",
            "lightgbm",
            {"objective": "asymmetric", "link": link},
        )
        for link in ("log", "identity")
    ],
    *[
        (f"lightgbm direct {o} scaled", "lightgbm", {"objective": o, "scaled": True})
        for o in ("tweedie", "asymmetric")
    ],
    *[
        (f"lightgbm direct tweedie power {p}", "lightgbm", {"tweedie_power": p})
        for p in (1.2, 1.65, 1.8, 1.9)
    ],
]
XGB_CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("ma", "ma", {}),
    ("lightgbm (default)", "lightgbm", {}),
    *[
        (f"xgboost {m} {o}", "xgboost", {"mode": m, "objective": o})
        for m in ("pooled", "per_item")
        for o in ("tweedie", "l2")
    ],
]


def run(
    name: str, configs: list[tuple[str, str, dict[str, Any]]], only: list[str] | None = None
) -> pl.DataFrame:
    make, h, windows = DATASETS[name]
    panel = make()
    regular = np.isin(classify(panel)["tier"].to_numpy(), ("high_volume", "regular"))
    ids = np.asarray(panel.item_ids).astype(str)
    reg_ids = ids[regular].tolist()
    rows = []
    for label, method, params in configs:
        if only and not any(word in label for word in only):
            continue
        t0 = time.perf_counter()
        res = backtest(
            panel,
            h=h,
            n_windows=windows,
            methods=[method],
            params={method: params} if params else None,
            references=(),  # the scores below are this method's alone
        )
        secs = time.perf_counter() - t0
        s = res.scores
        reg = s.filter(pl.col("unique_id").is_in(reg_ids))
        rows.append(
            {
                "dataset": name,
                "config": label,
                "MASE": s["mase"].mean(),
                "RMSSE": s["rmsse"].mean(),
                "asym": s["asym"].mean(),
                "bias": s["me"].mean(),
                "MASE regular": reg["mase"].mean(),
                "asym regular": reg["asym"].mean(),
                "seconds": secs,
            }
        )
        print(rows[-1], flush=True)
    return pl.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--part", choices=["lightgbm", "xgboost", "both"], default="both")
    parser.add_argument(
        "--only", nargs="*", help="run only the configs whose label has one of these"
    )
    args = parser.parse_args()
    frames = []
    for name in args.datasets:
        if args.part in ("lightgbm", "both"):
            frames.append(run(name, LGB_CONFIGS, args.only))
        if args.part in ("xgboost", "both"):
            frames.append(run(name, XGB_CONFIGS, args.only))
    with pl.Config(tbl_rows=100, tbl_cols=20, float_precision=3, tbl_width_chars=200):
        print(pl.concat(frames))


if __name__ == "__main__":
    main()
