"""sparecast's accuracy benchmark: every classical method, LightGBM, the default hybrid router and
a zero forecast against statsforecast's and mlforecast's equivalents, on three data sets, with one
origin and with rolling origins.

    python benchmarks/accuracy.py                                  # everything (about 15 min)
    python benchmarks/accuracy.py --quick --origins 1              # sparecast rows only, one origin
    python benchmarks/accuracy.py --datasets carparts --methods combo_median
    python benchmarks/accuracy.py --markdown /tmp/accuracy.md      # tables for docs/results.md

Data sets (``--datasets``, comma-separated):

- ``demo``: sparecast's synthetic ERP (``generate_demo_erp``, 2,016 items x 365 days), h = 28.
- ``carparts``: ../shared/data/carparts/carparts.csv, 2,674 items x 51 months, h = 6.
- ``oil``: ../shared/data/oil/oil.csv (y read as Float64), 14,523 items, h = 6. The month
  1997-11 holds a one-off spike that the thesis publishing the data removed as an error (see its
  SOURCE.md): it is cut out of the calendar, i.e. its rows are dropped and the ten months before
  it move one month later, so the panel is 55 consecutive months (1997-02 to 2001-08) with no
  trace of the spike.

Cells missing from a file are zero demand (as an ERP's "no row"); negative values (returns) are
kept as they are in the data (the demo has some, oil many). Every forecast is clipped at zero
before scoring, as sparecast clips its own (statsforecast's Naive repeats a return otherwise).

Protocol: origin k (k = 1..``--origins``) holds out the ``h`` periods after period
``T - k*h``; every method sees only the periods before its origin (the hybrid router runs its own
nested backtest on that training part). "one origin" is origin 1 (the last ``h`` periods held
out); "rolling" averages every column over all the origins.

Columns: MAE (mean over items and periods), mean and median RMSSE over the items whose RMSSE is
defined (scale: the mean squared one-step difference of the origin's training part; items
without variation there are left out and counted), relative bias = sum(forecast - actual) /
sum(actual) in %, PIS (periods in stock, Wallström & Segerstedt, mean over items), time (fit and
forecast, s; summed over the origins for "rolling"), and for the hybrid the share of items whose
RMSSE is at most that of the best single classical method (lowest mean RMSSE among
DEFAULT_METHODS without the combination ``robust``).

Rows: the classical methods (``sparecast.methods.DEFAULT_METHODS``, frequency defaults),
``lightgbm``, ``hybrid`` (``HybridRouter()`` with its defaults, as
``sparecast.forecast(panel, h, methods=["hybrid"])`` runs it), ``zero``, any registered method
given with ``--methods``, and (without ``--quick``) ``statsforecast:X`` (statsforecast 2.x,
``n_jobs=1``) and ``mlforecast:lgbm`` (one global LightGBM, Tweedie, recursive; lags and rolling
means of lag 1 per frequency; targets below zero clipped to zero as Tweedie needs).

Under each table a goal check (issue 11): the hybrid against the best single classical method
on each of MAE, median and mean RMSSE (each metric's own best), |relative bias| <= 10%, better
than zero on mean RMSSE, and whether it is 3% or more better than the best single method on mean
RMSSE.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from sparecast import DemandPanel, HybridRouter
from sparecast.core import forecast_arrays
from sparecast.data.demo import generate_demo_erp
from sparecast.evaluate import metrics
from sparecast.methods import DEFAULT_METHODS, get_method

# the single classical methods the hybrid must match: DEFAULT_METHODS without the combinations
COMBINATIONS = ("robust", "combo_median", "combo_trimmed")
SINGLE = [m for m in DEFAULT_METHODS if m not in COMBINATIONS]

# ../shared/data beside the checkout (the first parent that has it: worktrees sit deeper)
DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
DATASETS = ("demo", "carparts", "oil")


# ---------------------------------------------------------------------------- data sets
@dataclass
class Dataset:
    name: str
    panel: DemandPanel
    h: int
    note: str = ""


def demo_dataset(n_items: int, n_days: int, seed: int) -> Dataset:
    end = date(2026, 10, 31)
    tables = generate_demo_erp(n_items=n_items, n_days=n_days, seed=seed, end_date=end)
    demand = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    items = tables["items"]
    attrs = items.select(
        pl.col("item_id").alias("unique_id"),
        *[c for c in ("category", "unit_cost") if c in items.columns],
    )
    panel = DemandPanel.from_long(
        demand,
        freq="D",
        item_ids=items["item_id"].to_list(),
        start=end - np.timedelta64(n_days - 1, "D").astype(object),
        end=end,
        attributes=attrs,
    )
    return Dataset("demo", panel, 28, f"generate_demo_erp(n_items={n_items}, seed={seed})")


def carparts_dataset() -> Dataset:
    df = pl.read_csv(DATA / "carparts" / "carparts.csv", try_parse_dates=True)
    return Dataset("carparts", DemandPanel.from_long(df, freq="M"), 6, "missing cells = 0")


def oil_dataset() -> Dataset:
    df = pl.read_csv(
        DATA / "oil" / "oil.csv", try_parse_dates=True, schema_overrides={"y": pl.Float64}
    )
    spike = date(1997, 11, 1)
    # Cut the spike month out of the calendar: drop it, move the months before it one later.
    df = df.filter(pl.col("ds") != spike).with_columns(
        pl.when(pl.col("ds") < spike)
        .then(pl.col("ds").dt.offset_by("1mo"))
        .otherwise(pl.col("ds"))
        .alias("ds")
    )
    panel = DemandPanel.from_long(df, freq="M")
    return Dataset("oil", panel, 6, "1997-11 spike cut out (55 months), missing cells = 0")


def load(name: str, args: argparse.Namespace) -> Dataset:
    if name == "demo":
        ds = demo_dataset(args.items, args.days, args.seed)
    elif name == "carparts":
        ds = carparts_dataset()
    elif name == "oil":
        ds = oil_dataset()
    else:
        raise SystemExit(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if args.h is not None:
        ds.h = args.h
    return ds


def origin_stops(n_periods: int, h: int, n_origins: int) -> list[int]:
    """Training lengths of the origins, latest first: ``T - h, T - 2h, ...``."""
    stops = [n_periods - k * h for k in range(1, n_origins + 1)]
    if stops[-1] < 2:
        raise SystemExit(f"{n_origins} origins of h={h} do not fit {n_periods} periods")
    return stops


# ---------------------------------------------------------------------------- peers
def long_frame(train: DemandPanel, *, clip: bool = False, dates: bool = False) -> pd.DataFrame:
    y = train.y.astype(np.float64)
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(train.n_items, dtype=np.int64), train.n_periods),
            "ds": np.tile(
                train.dates if dates else np.arange(train.n_periods, dtype=np.int64),
                train.n_items,
            ),
            "y": (np.maximum(y, 0.0) if clip else y).ravel(),
        }
    )


def statsforecast_models(freq: str) -> dict[str, Any]:
    from statsforecast import models as sf

    window = {"D": 28, "W": 13, "M": 12}[freq]  # sparecast's ma window per frequency
    return {
        "CrostonClassic": sf.CrostonClassic(),
        "CrostonSBA": sf.CrostonSBA(),
        "CrostonOptimized": sf.CrostonOptimized(),
        "TSB(0.1,0.1)": sf.TSB(alpha_d=0.1, alpha_p=0.1),
        "ADIDA": sf.ADIDA(),
        "IMAPA": sf.IMAPA(),
        "SES(0.1)": sf.SimpleExponentialSmoothing(alpha=0.1),
        "Naive": sf.Naive(),
        f"WindowAverage({window})": sf.WindowAverage(window_size=window),
    }


def statsforecast_run(df: pd.DataFrame, model: Any, rows: np.ndarray, h: int) -> np.ndarray:
    """One statsforecast model over the long frame of the items ``rows`` (a boolean mask of the
    panel's items); the other items get 0."""
    from statsforecast import StatsForecast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=df, h=h)
    out = out.sort_values(["unique_id", "ds"])
    col = [c for c in out.columns if c not in ("unique_id", "ds")][0]
    pred = np.zeros((rows.size, h))
    pred[rows] = out[col].to_numpy(dtype=np.float64).reshape(-1, h)
    return pred


MLF_CONFIG: dict[str, dict[str, Any]] = {
    "D": {"lags": [1, 7, 14, 28], "windows": [7, 28], "date": ["dayofweek"], "freq": "D"},
    "W": {"lags": [1, 2, 4, 13, 52], "windows": [4, 13], "date": ["month"], "freq": "W"},
    "M": {"lags": [1, 2, 3, 6, 12], "windows": [3, 6, 12], "date": ["month"], "freq": "MS"},
}


def mlforecast_lgbm(train: DemandPanel, h: int) -> np.ndarray:
    """One global LightGBM (Tweedie, 200 trees) over every series with mlforecast, recursive."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    cfg = MLF_CONFIG[train.freq]
    lags = [lag for lag in cfg["lags"] if lag < train.n_periods - 1]
    windows = [w for w in cfg["windows"] if w < train.n_periods - 1]
    model = lgb.LGBMRegressor(
        objective="tweedie", n_estimators=200, learning_rate=0.05, verbose=-1, n_jobs=2
    )
    fcst = MLForecast(
        models={"lgbm": model},
        freq=cfg["freq"],
        lags=lags,
        lag_transforms={1: [RollingMean(window_size=w) for w in windows]},
        date_features=cfg["date"],
    )
    df = long_frame(train, clip=True, dates=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fcst.fit(df, static_features=[])
        out = fcst.predict(h).sort_values(["unique_id", "ds"])
    return out["lgbm"].to_numpy(dtype=np.float64).reshape(train.n_items, h)


# ---------------------------------------------------------------------------- one origin
@dataclass
class Run:
    """Forecasts of every row at one origin, with their times and the hybrid's choices."""

    preds: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)


def timed(run: Run, name: str, fn: Callable[[], np.ndarray]) -> None:
    t0 = time.perf_counter()
    pred = fn()
    run.seconds[name] = time.perf_counter() - t0
    run.preds[name] = pred
    missing = int(np.isnan(pred).sum())
    if missing:
        print(f"  {name}: {missing} NaN forecasts scored as 0", file=sys.stderr, flush=True)


def run_origin(
    train: DemandPanel, h: int, extra: list[str], *, quick: bool, log: Callable[[str], None]
) -> Run:
    run = Run()
    # compile (or load from numba's cache) every kernel on a few items first: not timed
    forecast_arrays(train.select_items(np.arange(min(20, train.n_items))), h, DEFAULT_METHODS)
    for m in DEFAULT_METHODS:
        timed(run, m, lambda m=m: forecast_arrays(train, h, [m])[m])
    if not quick:
        timed(run, "lightgbm", lambda: forecast_arrays(train, h, ["lightgbm"])["lightgbm"])
        log(f"lightgbm {run.seconds['lightgbm']:.1f} s")
    router = HybridRouter()  # the defaults, as forecast(panel, h, methods=["hybrid"]) runs it
    timed(run, "hybrid", lambda: router.fit_predict(train, h))
    run.chosen = dict(router.selection_["method"].value_counts(sort=True).iter_rows())
    log(f"hybrid {run.seconds['hybrid']:.1f} s")
    timed(run, "zero", lambda: np.zeros((train.n_items, h)))
    for m in (m for m in extra if m not in run.preds):  # a row already there runs once
        timed(run, m, lambda m=m: forecast_arrays(train, h, [m])[m])
        log(f"{m} {run.seconds[m]:.1f} s")
    if quick:
        return run
    # statsforecast's TSB (and Croston's) fail on a series without positive demand; every model's
    # forecast of such a series is <= 0, i.e. 0 once clipped: they get 0 without a call
    rows = (train.y > 0).any(axis=1)
    df = long_frame(train.select_items(rows))
    for label, model in statsforecast_models(train.freq).items():
        timed(
            run,
            f"statsforecast:{label}",
            lambda model=model: statsforecast_run(df, model, rows, h),
        )
    log("statsforecast " + f"{sum(s for k, s in run.seconds.items() if ':' in k):.1f} s")
    timed(run, "mlforecast:lgbm", lambda: mlforecast_lgbm(train, h))
    log(f"mlforecast {run.seconds['mlforecast:lgbm']:.1f} s")
    return run


# ---------------------------------------------------------------------------- scores
SCORE_COLS = ("MAE", "mean RMSSE", "median RMSSE", "rel bias %", "PIS")


def score(actual: np.ndarray, pred: np.ndarray, scale_sq: np.ndarray) -> dict[str, Any]:
    """The columns of one method at one origin, and its per-item RMSSE (NaN: undefined)."""
    # sparecast clips every forecast at zero; the peers' (Naive after a return) get the same
    pred = np.maximum(np.nan_to_num(np.asarray(pred, dtype=np.float64), nan=0.0), 0.0)
    rmsse = metrics.rmsse(actual, pred, scale=scale_sq)
    ok = ~np.isnan(rmsse)
    return {
        "MAE": float(metrics.mae(actual, pred).mean()),
        "mean RMSSE": float(rmsse[ok].mean()),
        "median RMSSE": float(np.median(rmsse[ok])),
        "rel bias %": float(100 * (pred - actual).sum() / actual.sum()),
        "PIS": float(metrics.pis(actual, pred).mean()),
        "undefined": int((~ok).sum()),
        "rmsse": rmsse,
    }


def table(
    runs: list[Run], actuals: list[np.ndarray], scales: list[np.ndarray]
) -> tuple[pl.DataFrame, str, float]:
    """Rows averaged over the given origins; the best single classical method (mean RMSSE) and
    the hybrid's share of items at least as good as it."""
    per_origin = [
        {name: score(a, p, s) for name, p in run.preds.items()}
        for run, a, s in zip(runs, actuals, scales, strict=True)
    ]
    names = list(runs[0].preds)
    avg = {
        name: {c: float(np.mean([o[name][c] for o in per_origin])) for c in SCORE_COLS}
        for name in names
    }
    best = min(SINGLE, key=lambda m: avg[m]["mean RMSSE"])
    shares = []
    for o in per_origin:
        hyb, ref = o["hybrid"]["rmsse"], o[best]["rmsse"]
        ok = ~np.isnan(hyb)
        shares.append(float((hyb[ok] <= ref[ok] + 1e-12).mean()))
    share = float(np.mean(shares))
    rows = []
    for name in names:
        rows.append(
            {
                "method": name,
                **avg[name],
                "time s": float(sum(run.seconds[name] for run in runs)),
                "hybrid >= best": share if name == "hybrid" else None,
            }
        )
    undefined = per_origin[0][names[0]]["undefined"]
    return pl.DataFrame(rows), best, undefined


def pct(value: float, ref: float) -> str:
    """``value`` relative to ``ref`` in %, signed ("n/a" when ``ref`` is 0)."""
    return f"{100 * (value - ref) / ref:+.1f}%" if ref != 0 else "n/a: reference 0"


def goal_check(df: pl.DataFrame, best_rmsse: str) -> list[str]:
    """The issue's goals for one table, as lines."""
    rows = {r["method"]: r for r in df.iter_rows(named=True)}
    hyb = rows["hybrid"]
    classical = [rows[m] for m in SINGLE]
    lines = []
    for col in ("MAE", "median RMSSE", "mean RMSSE"):
        ref = min(classical, key=lambda r: r[col])
        ok = "✓" if hyb[col] <= ref[col] else "✗"
        lines.append(
            f"{ok} {col}: hybrid {hyb[col]:.4f} vs best single {ref['method']} "
            f"{ref[col]:.4f} ({pct(hyb[col], ref[col])})"
        )
    bias = hyb["rel bias %"]
    lines.append(f"{'✓' if abs(bias) <= 10 else '✗'} |rel bias| <= 10%: hybrid {bias:+.1f}%")
    zero = rows["zero"]["mean RMSSE"]
    lines.append(
        f"{'✓' if hyb['mean RMSSE'] < zero else '✗'} better than zero on mean RMSSE: "
        f"{hyb['mean RMSSE']:.4f} vs {zero:.4f}"
    )
    ref = rows[best_rmsse]["mean RMSSE"]
    gain = 100 * (ref - hyb["mean RMSSE"]) / ref if ref > 0 else 0.0
    lines.append(
        f"{'✓' if gain >= 3 else '✗'} >= 3% better than the best single method "
        f"({best_rmsse}) on mean RMSSE: {gain:+.1f}%"
    )
    return lines


# ---------------------------------------------------------------------------- output
def fmt(v: Any, col: str) -> str:
    if v is None:
        return ""
    if col == "method":
        return str(v)
    if col == "time s":
        return f"{v:.1f}" if v >= 0.1 else f"{v:.2f}"
    if col == "hybrid >= best":
        return f"{100 * v:.1f}%"
    if col == "rel bias %":
        return f"{v:+.1f}%"
    if col == "PIS":
        return f"{v:+.2f}"
    return f"{v:.4f}" if col != "MAE" or abs(v) < 10 else f"{v:.3f}"


def render(df: pl.DataFrame, markdown: bool) -> str:
    cols = df.columns
    rows = [[fmt(r[c], c) for c in cols] for r in df.iter_rows(named=True)]
    if markdown:
        head = "| " + " | ".join(cols) + " |"
        align = "|---|" + "---:|" * (len(cols) - 1)
        return "\n".join([head, align, *("| " + " | ".join(r) + " |" for r in rows)])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cols, widths, strict=True))
        )
    ]
    for r in rows:
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    ap.add_argument("--h", type=int, default=None, help="horizon for every data set")
    ap.add_argument("--origins", type=int, default=3, help="rolling origins, h apart")
    ap.add_argument("--methods", default="", help="registered methods to add, comma-separated")
    ap.add_argument("--quick", action="store_true", help="no statsforecast/mlforecast/lightgbm")
    ap.add_argument("--markdown", type=Path, default=None, help="write the tables to this file")
    ap.add_argument("--items", type=int, default=2016, help="demo items")
    ap.add_argument("--days", type=int, default=365, help="demo days")
    ap.add_argument("--seed", type=int, default=0, help="demo seed")
    args = ap.parse_args()
    extra = [m for m in args.methods.split(",") if m]
    for m in extra:
        get_method(m)  # a MethodError listing the known names
    command = "python benchmarks/accuracy.py " + shlex.join(sys.argv[1:])
    out: list[str] = [f"`{command.strip()}`", ""]
    t_all = time.perf_counter()

    def log(msg: str) -> None:
        print(f"  [{time.perf_counter() - t_all:6.0f} s] {msg}", file=sys.stderr, flush=True)

    for name in args.datasets.split(","):
        ds = load(name, args)
        panel, h = ds.panel, ds.h
        stops = origin_stops(panel.n_periods, h, args.origins)
        zeros = float((panel.y == 0).mean())
        runs, actuals, scales = [], [], []
        for k, stop in enumerate(stops, 1):
            log(f"{name}: origin {k}/{len(stops)}, training on {stop} periods")
            train = panel.slice_periods(stop)
            runs.append(run_origin(train, h, extra, quick=args.quick, log=log))
            actuals.append(panel.y[:, stop : stop + h].astype(np.float64))
            scales.append(metrics.seasonal_naive_scale(train.y, 1, power=2))
        header = (
            f"#### {name}: {panel.n_items:,} items x {panel.n_periods} periods ({panel.freq}), "
            f"{100 * zeros:.0f}% zeros, h = {h}"
        )
        out += [header, "", ds.note + ".", ""]
        protocols = [("one origin (last h held out)", slice(0, 1))]
        if len(stops) > 1:
            protocols.append((f"rolling, {len(stops)} origins h apart, averaged", slice(None)))
        for label, sel in protocols:
            df, best, undefined = table(runs[sel], actuals[sel], scales[sel])
            chosen = ", ".join(f"{m} {n}" for m, n in runs[0].chosen.items())
            out += [
                f"**{label}**; RMSSE undefined for {undefined:,} items "
                f"(left out; at the last origin); best single classical method by mean "
                f"RMSSE: {best}.",
                "",
                "MARKDOWN_TABLE",
                "",
                "Goal check:",
                "",
                *(f"- {line}" for line in goal_check(df, best)),
                "",
            ]
            print(f"\n{header}\n{label}", flush=True)
            print(render(df, markdown=False))
            print("\n".join("  " + line for line in goal_check(df, best)), flush=True)
            out[out.index("MARKDOWN_TABLE")] = render(df, markdown=True)
        out += [f"Hybrid's choice at the last origin (items): {chosen}.", ""]
        print(f"hybrid's choice at the last origin: {chosen}", flush=True)
    total = time.perf_counter() - t_all
    out.insert(1, f"Total run time {total / 60:.1f} min.")
    print(f"\ntotal {total:.0f} s")
    if args.markdown is not None:
        args.markdown.write_text("\n".join(out) + "\n")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
