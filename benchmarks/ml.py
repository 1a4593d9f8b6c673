"""Accuracy and speed of the global ML models and the hybrid router against the classical
methods and mlforecast, on the demo data and on every dataset under ../shared/data.

    python benchmarks/ml.py                              # demo (2,016 x 365) and carparts
    python benchmarks/ml.py --datasets carparts --windows 2 --no-mlforecast
    python benchmarks/ml.py --items 500 --days 200       # a smaller demo

Protocol: one rolling-origin backtest (sparecast.backtest, ``--windows`` origins ``h`` apart,
the last one ending at the panel end) of every method on the same windows; each method sees only
the training part of a window. The hybrid router is backtested as a method: in every window it
runs its own backtest on that window's training part to choose (nested), so its score is out of
sample. "best classical" is the single classical method with the lowest mean MASE over all items
in this same backtest (chosen with hindsight: a hard baseline). mlforecast (Nixtla) trains one
LightGBM over all series with the same lags as sparecast's LightGBM and forecasts recursively.

Printed per dataset: mean over items of MAE, MASE, RMSSE, bias (mean error, forecast - actual),
rel bias % (sum of errors / sum of actuals), asym (squared error with under-forecasts weighted
3x, scaled like RMSSE), the fit+predict time summed over the windows, with the zero forecast as a
reference row, and per frequency tier the improvement of MASE and asym over MA (positive =
better than MA).
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast import DemandPanel, backtest, classify
from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.methods import DEFAULT_METHODS, METHODS, Method, register_method
from sparecast.pipeline.core import make_router
from sparecast.selection.router import hybrid_forecast

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLASSICAL = [m for m in DEFAULT_METHODS if m not in ("naive", "ma")]


# ---------------------------------------------------------------------------- datasets
def demo_panel(n_items: int, n_days: int, seed: int) -> DemandPanel:
    end = date(2026, 10, 31)
    tables = generate_demo_erp(n_items=n_items, n_days=n_days, seed=seed, end_date=end)
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    items = tables["items"]
    attrs = items.select(
        pl.col("item_id").alias("unique_id"),
        *[c for c in ("category", "unit_cost") if c in items.columns],
    )
    return DemandPanel.from_long(
        demand,
        freq="D",
        item_ids=items["item_id"].to_list(),
        start=end - np.timedelta64(n_days - 1, "D").astype(object),
        end=end,
        attributes=attrs,
    )


def file_panel(name: str) -> DemandPanel:
    """A dataset under ../shared/data/<name>/ (a long ``unique_id, ds, y`` CSV, see SOURCE.md);
    cells missing from the file are zero demand."""
    csvs = sorted((DATA / name).glob("*.csv"))
    if not csvs:
        raise SystemExit(f"no CSV file in {DATA / name}")
    df = pl.read_csv(csvs[0], try_parse_dates=True)
    return DemandPanel.from_long(df)


def horizon_for(panel: DemandPanel) -> int:
    """28 days, 8 weeks or 6 months (the literature's carparts holdout is 6 or 12 months)."""
    return {"D": 28, "W": 8, "M": 6}[panel.freq]


# ---------------------------------------------------------------------------- the peer
def ml_lags(panel: DemandPanel) -> list[int]:
    """The lags of sparecast's LightGBM for this panel's frequency (its default features), so
    that the peer gets the same."""
    from sparecast.methods.features import default_spec

    return list(default_spec(panel.freq).lags)


def mlforecast_kernel(panel: DemandPanel, h: int, **params: Any) -> np.ndarray:
    """One global LightGBM over every series with mlforecast (recursive), as ``[items, h]``."""
    import lightgbm as lgb
    from mlforecast import MLForecast

    lags = [lag for lag in ml_lags(panel) if lag < panel.n_periods - 1]
    df = pl.DataFrame(
        {
            "unique_id": np.repeat(np.arange(panel.n_items), panel.n_periods),
            "ds": np.tile(np.arange(panel.n_periods), panel.n_items),
            "y": np.maximum(panel.y.astype(np.float64), 0.0).ravel(),  # returns: no demand
        }
    ).to_pandas()
    model = lgb.LGBMRegressor(
        objective=params.get("objective", "tweedie"),
        n_estimators=params.get("n_estimators", 200),
        learning_rate=params.get("learning_rate", 0.05),
        num_leaves=params.get("num_leaves", 31),
        verbose=-1,
        n_jobs=2,
    )
    fcst = MLForecast(models={"lgb": model}, freq=1, lags=lags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fcst.fit(df, static_features=[])
        out = fcst.predict(h).sort_values(["unique_id", "ds"])
    return np.maximum(out["lgb"].to_numpy(dtype=np.float64).reshape(panel.n_items, h), 0.0)


def register(name: str, kernel: Any, description: str, defaults: dict[str, Any]) -> None:
    """Register a benchmark-only panel method (a router variant or the peer) under ``name``."""
    register_method(Method(name, kernel, description, defaults, needs_panel=True))


def router_params(mode: str, **over: Any) -> dict[str, Any]:
    """Parameters of the shipped router (config defaults) in ``mode``, with ``over``."""
    router = make_router(load_settings())  # the rules are checked when a router runs them
    router.mode = mode
    params = {
        k: getattr(router, k)
        for k in ("mode", "candidates", "rules", "metric", "select_by", "min_history", "top_k")
    }
    params.update(fallback=router.fallback, n_windows=router.n_windows)
    params.update(over)
    return params


# ---------------------------------------------------------------------------- evaluation
def evaluate(
    name: str, panel: DemandPanel, h: int, windows: int, methods: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    classes = classify(panel)
    t0 = time.perf_counter()
    bt = backtest(panel, h=h, methods=methods, n_windows=windows, seasonality=1)
    total = time.perf_counter() - t0
    means = (
        bt.scores.group_by("method", maintain_order=True)
        .agg(
            pl.col("mae").mean(),
            pl.col("mase").mean(),
            pl.col("rmsse").mean(),
            pl.col("me").mean().alias("bias"),
            (pl.col("error_sum").sum() / pl.col("actual_sum").sum() * 100).alias("rel bias %"),
            pl.col("asym").mean(),
        )
        .with_columns(
            pl.col("method")
            .replace_strict(bt.timings["kernels"], default=None, return_dtype=pl.Float64)
            .alias("fit+predict s")
        )
    )
    best = means.filter(pl.col("method").is_in(CLASSICAL)).sort("mase").row(0, named=True)["method"]
    # the zero forecast is scored by every backtest as a reference (never chosen)
    order = [
        "zero",
        "naive",
        "ma",
        best,
        *[m for m in methods if m not in ("zero", "naive", "ma", *CLASSICAL)],
    ]
    table = (
        pl.DataFrame({"method": order, "_o": range(len(order))})
        .join(means, on="method", how="left")
        .sort("_o")
        .drop("_o")
        .with_columns(
            pl.when(pl.col("method") == best)
            .then(pl.format("best classical: {}", "method"))
            .otherwise(pl.col("method"))
            .alias("method")
        )
    )
    tiers = classes.select("unique_id", "tier")
    per_tier = (
        bt.scores.join(tiers, on="unique_id")
        .group_by("tier", "method")
        .agg(pl.col("mase").mean(), pl.col("asym").mean(), pl.len().alias("items"))
    )
    ma = per_tier.filter(pl.col("method") == "ma").select(
        "tier", pl.col("mase").alias("ma_mase"), pl.col("asym").alias("ma_asym")
    )
    gains = (
        per_tier.join(ma, on="tier")
        .filter(pl.col("method").is_in(order[3:]))
        .with_columns(
            pl.col("method").replace(best, f"best classical: {best}"),
            ((1 - pl.col("mase") / pl.col("ma_mase")) * 100).round(1).alias("MASE vs MA %"),
            ((1 - pl.col("asym") / pl.col("ma_asym")) * 100).round(1).alias("asym vs MA %"),
        )
        .join(pl.DataFrame({"method": table["method"], "_o": range(table.height)}), on="method")
        .sort("tier", "_o")
        .select("tier", "items", "method", "MASE vs MA %", "asym vs MA %")
    )
    print(
        f"\n## {name}: {panel.n_items:,} items x {panel.n_periods} periods ({panel.freq}), h={h}, "
        f"{windows} rolling origins, {total:.0f} s"
    )
    return table, gains


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    found = sorted(p.name for p in DATA.iterdir() if p.is_dir()) if DATA.is_dir() else []
    ap.add_argument("--datasets", default=",".join(["demo", *found]))
    ap.add_argument("--items", type=int, default=2016, help="demo items")
    ap.add_argument("--days", type=int, default=365, help="demo days")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-items", type=int, default=None, help="first N items of each dataset")
    ap.add_argument("--windows", type=int, default=3, help="rolling origins of the backtest")
    ap.add_argument("--no-mlforecast", action="store_true", help="skip the mlforecast peer")
    ap.add_argument("--no-ml", action="store_true", help="skip lightgbm (not registered: skipped)")
    ap.add_argument(
        "--variants",
        default="",
        help="extra hybrid auto variants, comma-separated, each key=value[;key=value] of the "
        "router (lists with |), e.g. select_by=item,top_k=2,candidates=tsb|imapa|lightgbm",
    )
    args = ap.parse_args()

    register("hybrid rules", hybrid_forecast, "the router, rules mode", router_params("rules"))
    register("hybrid auto", hybrid_forecast, "the router, auto mode", router_params("auto"))
    extra = [v.strip() for v in args.variants.split(",") if v.strip()]
    labels: list[str] = []
    for v in extra:
        over: dict[str, Any] = {}
        for pair in v.split(";"):
            key, value = pair.split("=", 1)
            over[key] = (
                int(value) if value.isdigit() else value.split("|") if "|" in value else value
            )
        label = f"hybrid auto #{len(labels) + 1}"
        labels.append(f"{label}: {v}")
        register(label, hybrid_forecast, v, router_params("auto", **over))
    methods = ["naive", "ma", *CLASSICAL]
    if "lightgbm" in METHODS and not args.no_ml:
        methods.append("lightgbm")
    rules = router_params("rules")["rules"]
    if all(m in METHODS for m in rules.values()):
        methods.append("hybrid rules")
    else:
        print(
            "hybrid rules skipped: its methods",
            sorted(set(rules.values()) - set(METHODS)),
            "are not registered",
        )
    methods += ["hybrid auto", *[f"hybrid auto #{i + 1}" for i in range(len(extra))]]
    if not args.no_mlforecast:
        register("mlforecast", mlforecast_kernel, "mlforecast LightGBM, same lags", {})
        methods.append("mlforecast")

    pl.Config.set_tbl_rows(50)
    pl.Config.set_tbl_cols(30)
    pl.Config.set_tbl_width_chars(200)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)
    pl.Config.set_float_precision(3)
    auto = router_params("auto")
    print(
        f"hybrid auto: metric {auto['metric']}, per {auto['select_by']}, top_k {auto['top_k']}, "
        f"candidates {auto['candidates'] or 'default'}"
    )
    for line in labels:
        print(
            line.replace(
                "naive|seasonal_naive|ma|ses|croston|sba|croston_optimized|tsb|adida|"
                "imapa|ma_nonzero",
                "classical",
            )
        )
    for name in args.datasets.split(","):
        panel = demo_panel(args.items, args.days, args.seed) if name == "demo" else file_panel(name)
        if args.max_items:
            panel = panel.select_items(np.arange(min(args.max_items, panel.n_items)))
        table, gains = evaluate(name, panel, horizon_for(panel), args.windows, methods)
        print(table)
        print("improvement over MA per tier (%, positive = better):")
        print(gains)


if __name__ == "__main__":
    main()
