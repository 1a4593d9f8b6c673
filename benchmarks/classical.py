"""Speed and equality of sparecast's classical kernels against statsforecast on one panel.

    python benchmarks/classical.py --items 10000 --days 730

Builds a synthetic spare-parts panel (most items with demand on under 10% of days, lumpy sizes, a
few regular items), forecasts 28 days with each sparecast kernel and with statsforecast
(``StatsForecast(models=[...], freq=1, n_jobs=1).forecast``) and prints, per model, both
timings, the speed ratio and the largest absolute difference between the forecasts. TOTAL sums
Croston, SBA, ADIDA and IMAPA, the models of the speed goal. The first sparecast model's time
includes loading the compiled kernels from numba's on-disk cache (about 0.15 s; compiling them
the first time takes about 5 s).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from sparecast.methods import baseline, intermittent

H = 28
TOTAL_MODELS = ("croston", "sba", "adida", "imapa")


def spare_parts_panel(items: int, days: int, seed: int) -> np.ndarray:
    """float32[items, days]: 92% of items with demand on 0.2-9% of days, 5% on 10-30%, 3% regular;
    sizes 1 + Poisson with a lognormal item mean and gamma day noise (lumpy)."""
    rng = np.random.default_rng(seed)
    kind = rng.random(items)
    p = np.where(
        kind < 0.92,
        rng.uniform(0.002, 0.09, items),
        np.where(kind < 0.97, rng.uniform(0.1, 0.3, items), rng.uniform(0.6, 1.0, items)),
    )
    mean_size = rng.lognormal(0.5, 1.0, items)
    y = np.zeros((items, days), np.float32)
    for lo in range(0, items, 5000):
        hi = min(items, lo + 5000)
        occurs = rng.random((hi - lo, days), dtype=np.float32) < p[lo:hi, None]
        noise = rng.gamma(0.7, 1 / 0.7, (hi - lo, days))
        sizes = 1 + rng.poisson(mean_size[lo:hi, None] * noise)
        y[lo:hi] = np.where(occurs, sizes, 0)
    return y


def models() -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], object]]:
    """Model name -> (sparecast call on the panel, statsforecast model)."""
    from statsforecast import models as sf

    return {
        "croston": (lambda y: intermittent.croston(y, H), sf.CrostonClassic()),
        "sba": (lambda y: intermittent.sba(y, H), sf.CrostonSBA()),
        "adida": (lambda y: intermittent.adida(y, H), sf.ADIDA()),
        "imapa": (lambda y: intermittent.imapa(y, H), sf.IMAPA()),
        "croston_optimized": (
            lambda y: intermittent.croston_optimized(y, H),
            sf.CrostonOptimized(),
        ),
        "tsb": (
            lambda y: intermittent.tsb(y, H, alpha_d=0.2, alpha_p=0.1),
            sf.TSB(alpha_d=0.2, alpha_p=0.1),
        ),
        "ses": (lambda y: baseline.ses(y, H, alpha=0.1), sf.SimpleExponentialSmoothing(alpha=0.1)),
        "ma": (lambda y: baseline.moving_average(y, H, window=28), sf.WindowAverage(28)),
        "naive": (lambda y: baseline.naive(y, H), sf.Naive()),
    }


def long_frame(y: np.ndarray) -> pd.DataFrame:
    """The panel in statsforecast's long format ``unique_id, ds, y`` (ds = integer day)."""
    items, days = y.shape
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(items, dtype=np.int64), days),
            "ds": np.tile(np.arange(days, dtype=np.int64), items),
            "y": y.ravel(),
        }
    )


def statsforecast_matrix(df: pd.DataFrame, model: object, items: int) -> np.ndarray:
    """statsforecast's forecasts as ``[items, H]`` in item order."""
    from statsforecast import StatsForecast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=df, h=H)
    out = out.sort_values(["unique_id", "ds"])
    col = [c for c in out.columns if c not in ("unique_id", "ds")][0]
    return out[col].to_numpy(dtype=np.float64).reshape(items, H)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models",
        default=",".join(TOTAL_MODELS),
        help="comma-separated, from: " + ",".join(models()),
    )
    args = parser.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    table = models()
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(table)}")

    y = spare_parts_panel(args.items, args.days, args.seed)
    share = (y > 0).mean(axis=1)
    print(
        f"panel: {args.items} items x {args.days} days, {(share < 0.1).mean():.1%} of items "
        f"with demand on <10% of days, {(y > 0).mean():.2%} non-zero cells"
    )
    df = long_frame(y)
    header = (
        f"{'model':<18} {'sparecast s':>12} {'statsforecast s':>16} {'ratio':>8} "
        f"{'max abs diff':>13}"
    )
    print(header)
    print("-" * len(header))
    total_ours = total_sf = 0.0
    total_diff = 0.0
    for name in names:
        ours_fn, sf_model = table[name]
        t0 = time.perf_counter()
        ours = ours_fn(y)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = statsforecast_matrix(df, sf_model, args.items)
        t_sf = time.perf_counter() - t0
        diff = float(np.nanmax(np.abs(ours - ref)))
        print(
            f"{name:<18} {t_ours:>12.2f} {t_sf:>16.2f} {t_sf / t_ours:>7.1f}x {diff:>13.2e}",
            flush=True,
        )
        if name in TOTAL_MODELS:
            total_ours += t_ours
            total_sf += t_sf
            total_diff = max(total_diff, diff)
    if all(m in names for m in TOTAL_MODELS):
        print("-" * len(header))
        print(
            f"{'TOTAL ' + '+'.join(TOTAL_MODELS):<18} {total_ours:>12.2f} {total_sf:>16.2f} "
            f"{total_sf / total_ours:>7.1f}x {total_diff:>13.2e}"
        )


if __name__ == "__main__":
    main()
