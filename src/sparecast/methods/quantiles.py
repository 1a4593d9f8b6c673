"""Per-period demand quantiles around a point forecast (the forecast output's quantile columns
and the calibration's per-period check)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from sparecast.errors import MethodError
from sparecast.methods._check import as_history, check_levels
from sparecast.methods.distributions import demand_parameters
from sparecast.methods.level_alpha import resolve_level_alpha

__all__ = ["forecast_quantiles"]


def forecast_quantiles(
    y: np.ndarray,
    forecast: np.ndarray,
    levels: Sequence[float] | np.ndarray,
    *,
    level_alpha: float | str = 0.0,
) -> np.ndarray:
    """Per-period demand quantiles around a point forecast: ``float64[items, h, len(levels)]``.

    Method: the compound Bernoulli-size distribution of one period. The occurrence probability
    ``p`` is the item's share of periods with demand and the squared coefficient of variation of
    the sizes comes from its non-zero history; the mean size is set to ``forecast / p`` so that
    the distribution's mean is the point forecast (when that size would be below 1 the item
    demands 1 unit with probability ``forecast``). A level ``q <= 1 - p`` gives 0; above, the
    size quantile at ``(q - (1 - p)) / p`` of ``1 + NB`` (integer items) or a gamma (others).
    Items without any demand in the history get Poisson(forecast) quantiles. ``p`` and the
    size CV² are exponentially weighted by ``level_alpha`` as in
    :func:`sparecast.methods.distributions.lead_time_demand` (``"auto"``:
    :func:`sparecast.methods.level_alpha.select_level_alpha` for the horizon ``h``). The default
    is 0 (whole history): on carparts (3 rolling origins, h = 6) "auto" lowered the pinball loss
    at levels 0.5-0.95 by 2-5% but raised it at 0.99 by 28% (coverage 0.964 -> 0.956).
    """
    h = as_history(y)
    f = np.maximum(np.asarray(forecast, dtype=np.float64), 0.0)
    if f.ndim != 2 or f.shape[0] != h.shape[0]:
        raise MethodError(
            f"forecast must be [items, h] with {h.shape[0]} items, got shape {f.shape}"
        )
    lv = check_levels(levels)
    alpha = resolve_level_alpha(level_alpha, h, lambda: f.shape[1])
    par = demand_parameters(h, alpha)
    p = par.p_demand[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        cv2 = np.where(par.size_mean > 0, par.size_var / np.square(par.size_mean), 0.0)
    cv2 = cv2[:, None, None]
    ff = f[:, :, None]
    q = np.broadcast_to(lv[None, None, :], (f.shape[0], f.shape[1], lv.size))
    size = np.where(p > 0, ff / np.where(p > 0, p, 1.0), 0.0)
    p_eff = np.where(size < 1.0, np.minimum(ff, 1.0), p)
    size = np.maximum(size, 1.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        u = np.clip((q - (1.0 - p_eff)) / np.where(p_eff > 0, p_eff, 1.0), 1e-12, 1.0 - 1e-12)
    integer = par.integer[:, None, None]
    # integer: 1 + NB(mean m1, var cv2 * size^2) (Poisson when not over-dispersed)
    m1 = size - 1.0
    v = cv2 * np.square(size)
    over = (v > m1 + 1e-9) & (m1 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_nb = np.where(over, np.square(m1) / np.where(over, v - m1, 1.0), 1.0)
        p_nb = np.where(over, m1 / np.where(over, v, 1.0), 0.5)
    q_int = 1.0 + np.where(
        over, stats.nbinom.ppf(u, n_nb, p_nb), np.where(m1 > 0, stats.poisson.ppf(u, m1), 0.0)
    )
    # non-integer: gamma sizes with the same mean and cv2 (point mass when cv2 = 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q_cont = np.where(
            cv2 > 0, stats.gamma.ppf(u, 1.0 / np.where(cv2 > 0, cv2, 1.0), scale=size * cv2), size
        )
    q_size = np.where(integer, q_int, q_cont)
    out = np.where(q <= 1.0 - p_eff, 0.0, q_size)
    none = (par.n_demands == 0)[:, None, None]
    if none.any():
        pois = stats.poisson.ppf(q, ff)
        out = np.where(none, np.where(ff > 0, pois, 0.0), out)
    return np.maximum(np.nan_to_num(out, nan=0.0), 0.0)
