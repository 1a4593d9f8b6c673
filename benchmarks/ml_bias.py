"""Level (bias) of the global LightGBM on held-out data, before and after its calibration.

    python benchmarks/ml_bias.py                         # demo, carparts, oil
    python benchmarks/ml_bias.py --datasets carparts,oil
    python benchmarks/ml_bias.py --variants before,after

Protocol: one origin; the last ``h`` periods of each data set are held out (demo daily
2,016 x 365, h = 28; carparts monthly, h = 6; oil monthly, h = 6, its 1997-11 spike removed as
its SOURCE.md says); every method sees only the rest. Printed per data set and method: relative
bias ``sum(forecast - actual) / sum(actual)``, MAE (mean over items), mean and median RMSSE
(``sparecast.evaluate.metrics``, items whose scale is 0 left out), and the fit + predict time.
``lightgbm before`` is the model as it was before the level calibration and the obsolescence
features (``calibrate=False, obsolescence=False``), ``lightgbm uncalibrated`` has the features
but no calibration, ``lightgbm`` is the default (its level factors in brackets); SBA is the
classical reference, ``zero`` forecasts nothing.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from sparecast import DemandPanel
from sparecast.core import forecast_arrays
from sparecast.data.demo import generate_demo_erp
from sparecast.evaluate.metrics import mae, rmsse
from sparecast.methods.ml import GlobalLightGBM

# ../shared/data next to the checkout (a worktree under /work/wt/ looks two levels up)
DATA = next(
    (
        p
        for p in (Path(__file__).resolve().parents[i] / "shared" / "data" for i in (2, 3))
        if p.is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)


def demo_panel(n_items: int, n_days: int, seed: int) -> tuple[DemandPanel, int]:
    end = date(2026, 10, 31)
    tables = generate_demo_erp(n_items=n_items, n_days=n_days, seed=seed, end_date=end)
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    panel = DemandPanel.from_long(
        demand,
        freq="D",
        item_ids=tables["items"]["item_id"].to_list(),
        start=end - np.timedelta64(n_days - 1, "D").astype(object),
        end=end,
    )
    return panel, 28


def carparts_panel() -> tuple[DemandPanel, int]:
    df = pl.read_csv(DATA / "carparts" / "carparts.csv", try_parse_dates=True)
    return DemandPanel.from_long(df, freq="M"), 6


def oil_panel() -> tuple[DemandPanel, int]:
    df = pl.read_csv(
        DATA / "oil" / "oil.csv", try_parse_dates=True, schema_overrides={"y": pl.Float64}
    )
    # the one-off spike of 1997-11 (SOURCE.md): capped at each item's largest demand of the
    # other months (dropping the month would leave a hole in the monthly grid)
    spike = pl.col("ds") == date(1997, 11, 1)
    cap = pl.col("y").filter(~spike).max().over("unique_id").fill_null(0.0)
    df = df.with_columns(pl.when(spike).then(pl.min_horizontal("y", cap)).otherwise("y").alias("y"))
    return DemandPanel.from_long(df, freq="M"), 6


def scores(actual: np.ndarray, fc: np.ndarray, train: np.ndarray) -> dict[str, float]:
    total = float(actual.sum())
    r = rmsse(actual, fc, train)
    r = r[~np.isnan(r)]
    return {
        "bias": float((fc - actual).sum()) / total if total else float("nan"),
        "mae": float(np.mean(mae(actual, fc))),
        "rmsse_mean": float(np.mean(r)),
        "rmsse_median": float(np.median(r)),
    }


def run(name: str, panel: DemandPanel, h: int, variants: list[str]) -> pl.DataFrame:
    train = panel.slice_periods(panel.n_periods - h)
    actual = panel.y[:, -h:].astype(np.float64)
    y_train = train.y.astype(np.float64)
    rows = []
    for variant in variants:
        t0 = time.perf_counter()
        if variant == "sba":
            fc = forecast_arrays(train, h, methods=["sba"])["sba"]
            label = "sba"
        elif variant == "zero":
            fc = np.zeros_like(actual)
            label = "zero"
        else:
            params = {
                "before": {"calibrate": False, "obsolescence": False},
                "raw": {"calibrate": False},
                "after": {},
            }[variant]
            model = GlobalLightGBM(**params).fit(train, h)
            fc = model.predict()
            label = {"before": "lightgbm before", "raw": "lightgbm uncalibrated"}.get(
                variant, "lightgbm"
            )
            if variant == "after":
                factors = model.level_[1]
                label += f" (x{factors.min():.2f}..{factors.max():.2f})"
        seconds = time.perf_counter() - t0
        rows.append({"data": name, "method": label, **scores(actual, fc, y_train), "s": seconds})
    return pl.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="demo,carparts,oil")
    ap.add_argument("--variants", default="before,raw,after,sba,zero")
    ap.add_argument("--items", type=int, default=2016)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    variants = args.variants.split(",")
    frames = []
    for name in args.datasets.split(","):
        if name == "demo":
            panel, h = demo_panel(args.items, args.days, args.seed)
        elif name == "carparts":
            panel, h = carparts_panel()
        elif name == "oil":
            panel, h = oil_panel()
        else:
            raise SystemExit(f"unknown data set {name!r}")
        frame = run(name, panel, h, variants)
        with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=3, tbl_width_chars=140):
            print(f"{name}: {panel.n_items} items x {panel.n_periods} periods, h = {h}")
            print(frame)
        frames.append(frame)


if __name__ == "__main__":
    main()
