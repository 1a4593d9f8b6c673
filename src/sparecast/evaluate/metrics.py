"""Forecast accuracy metrics on ``items x h`` arrays, one value per item.

Every metric has the same signature (the habit of ``utilsforecast.losses``)::

    metric(y_true[items, h], y_pred[items, h], y_train[items, T] | None = None, *,
           seasonality=1, scale=None, **metric_specific_keywords) -> float64[items]

``scale`` (a :class:`TrainScales`, or the metric's own scale array) skips recomputing the
in-sample scale of the scaled metrics from ``y_train``; the others ignore it.

:data:`METRICS` is the one registry: each entry is a :class:`Metric` (the function and what it
is used for), and the backtest's scores (``SCORE_METRICS``), the signed metrics a method may not
be ranked on and the router's metrics (``ROUTER_METRICS``) are read from it. Adding a metric is
one function here and one ``Metric(...)`` line in ``METRICS``.

Each metric gives the same numbers as the utilsforecast function of the same name on the same
data (the tests check it to 1e-9). They are written on numpy because the backtest scores
100,000 items x 11 methods x several windows at once: building long frames for utilsforecast
would cost more than the forecasts. Errors are ``forecast - actual`` throughout (utilsforecast's
``bias`` convention): a positive mean error is over-forecasting.

Undefined values are NaN, never inf: a scaled metric (MASE, RMSSE) of an item whose training part
has no variation (scale 0, e.g. no demand at all), MAPE of an item whose actuals are all zero,
WAPE of an item with zero total actuals. Aggregate with :func:`nanmean_count`, which ignores NaN
and reports how many items were counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from sparecast.errors import DataValidationError
from sparecast.methods.ml import asymmetric_terms

__all__ = [
    "mae",
    "rmse",
    "mase",
    "rmsse",
    "me",
    "pis",
    "mape",
    "wape",
    "mape_parts",
    "wape_parts",
    "pinball",
    "stockout_weighted_se",
    "asym",
    "TrainScales",
    "seasonal_naive_scale",
    "seasonal_naive_scales",
    "nanmean_count",
    "ratio_of_sums",
    "Metric",
    "METRICS",
    "metric_names",
]

Parts = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class TrainScales(NamedTuple):
    """In-sample scales of a training part, float64 ``[items]`` each: ``abs`` the mean absolute
    seasonal difference (MASE), ``sq`` the mean squared one (RMSSE and asym)."""

    abs: np.ndarray
    sq: np.ndarray


# ---------------------------------------------------------------------------- helpers
def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.ndim == 1:
        yt = yt[None, :]
    if yp.ndim == 1:
        yp = yp[None, :]
    if yt.shape != yp.shape:
        raise DataValidationError(
            f"y_true has shape {yt.shape} but y_pred has shape {yp.shape}; both must be [items, h]"
        )
    return yt, yp


def _errors(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Forecast minus actual, float64 ``[items, h]``."""
    yt, yp = _pair(y_true, y_pred)
    return yp - yt


def _mse(e: np.ndarray) -> np.ndarray:
    """Mean squared error per row of the errors ``e[items, h]``."""
    return np.einsum("ij,ij->i", e, e) / e.shape[1]


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den`` is 0 or NaN (no inf, no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = (den != 0) & ~np.isnan(den)
    np.divide(num, den, out=out, where=ok)
    return out


def seasonal_naive_scale(
    y_train: np.ndarray, seasonality: int = 1, *, power: int = 1, chunk_items: int = 512
) -> np.ndarray:
    """In-sample mean of ``|y_t - y_{t-seasonality}|**power`` per item, float64 ``[items]``.

    The scale of MASE (``power=1``) and of RMSSE (``power=2``, before the square root): the error
    of the seasonal naive one-step forecast over the training part, as in utilsforecast. NaN where
    the training part is not longer than ``seasonality``. Computed in chunks of items so that a
    100,000 x 730 float32 panel never needs a full float64 copy.
    """
    if seasonality < 1:
        raise DataValidationError(f"seasonality must be >= 1, got {seasonality}")
    if power not in (1, 2):
        raise DataValidationError(f"power must be 1 (MASE) or 2 (RMSSE), got {power}")
    y = np.asarray(y_train)
    if y.ndim == 1:
        y = y[None, :]
    n_items, n_train = y.shape
    out = np.full(n_items, np.nan)
    if n_train <= seasonality:
        return out
    for lo in range(0, n_items, chunk_items):
        block = y[lo : lo + chunk_items].astype(np.float64, copy=False)
        d = block[:, seasonality:] - block[:, :-seasonality]
        d = np.abs(d, out=d) if power == 1 else np.square(d, out=d)
        out[lo : lo + chunk_items] = d.mean(axis=1)
    return out


def seasonal_naive_scales(
    y: np.ndarray, seasonality: int, stops: list[int], *, chunk_items: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """MASE and RMSSE scales (mean absolute and mean squared seasonal difference) of the training
    parts ``y[:, :stop]`` for several ``stops`` at once, each float64 ``[len(stops), items]``.

    One pass over the panel for all backtest windows (the training parts are nested prefixes);
    equal to ``seasonal_naive_scale(y[:, :stop], seasonality, power=1 | 2)`` per stop.
    """
    if seasonality < 1:
        raise DataValidationError(f"seasonality must be >= 1, got {seasonality}")
    y = np.asarray(y)
    n_items = y.shape[0]
    order = np.argsort(stops, kind="stable")
    sorted_stops = np.asarray(stops, dtype=np.int64)[order]
    abs_out = np.full((len(stops), n_items), np.nan)
    sq_out = np.full((len(stops), n_items), np.nan)
    valid = sorted_stops > seasonality
    if not valid.any():
        return abs_out, sq_out
    ends = sorted_stops[valid] - seasonality  # number of differences in each training part
    bounds = np.concatenate([[0], ends[:-1]])
    keep = np.diff(np.concatenate([bounds, [ends[-1]]])) > 0  # empty segments (equal stops)
    last = int(ends[-1])
    rows = np.flatnonzero(valid)
    for lo in range(0, n_items, chunk_items):
        block = y[lo : lo + chunk_items, : last + seasonality].astype(np.float64)
        d = block[:, seasonality:] - block[:, :-seasonality]
        for out, fn in ((abs_out, np.abs), (sq_out, np.square)):
            v = fn(d)
            seg = np.zeros((v.shape[0], bounds.size))
            seg[:, keep] = np.add.reduceat(v, bounds[keep], axis=1)
            # reduceat sums up to the next kept bound; cumulate the segments into prefixes
            out[rows, lo : lo + chunk_items] = (np.cumsum(seg, axis=1) / ends).T
    result_abs = np.empty_like(abs_out)
    result_sq = np.empty_like(sq_out)
    result_abs[order] = abs_out
    result_sq[order] = sq_out
    return result_abs, result_sq


def _scale(
    y_train: np.ndarray | None,
    seasonality: int,
    power: int,
    scale: TrainScales | np.ndarray | None,
    name: str,
) -> np.ndarray:
    if isinstance(scale, TrainScales):
        return np.asarray(scale.abs if power == 1 else scale.sq, dtype=np.float64)
    if scale is not None:
        return np.asarray(scale, dtype=np.float64)
    if y_train is None:
        raise DataValidationError(
            f"{name} needs y_train (the training part [items, T]) or a precomputed scale"
        )
    return seasonal_naive_scale(y_train, seasonality, power=power)


def nanmean_count(values: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean ignoring NaN and the number of values counted (NaN where nothing was counted)."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    count = ok.sum(axis=axis)
    total = np.where(ok, v, 0.0).sum(axis=axis)
    return _safe_divide(total, count), count


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """A ratio metric pooled over several windows from the sums of its parts (see
    :attr:`Metric.parts`): ``numerator / denominator``, NaN where the denominator is 0."""
    return _safe_divide(numerator, denominator)


# ---------------------------------------------------------------------------- metrics
def mae(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Mean absolute error per item (utilsforecast ``mae``)."""
    e = _errors(y_true, y_pred)
    return np.abs(e).sum(axis=1) / e.shape[1]


def rmse(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Root mean squared error per item (utilsforecast ``rmse``)."""
    return np.sqrt(_mse(_errors(y_true, y_pred)))


def mase(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Mean absolute scaled error per item (utilsforecast ``mase``).

    MAE divided by the in-sample MAE of the seasonal naive forecast over ``y_train``; NaN where that
    scale is 0. ``scale`` (from :func:`seasonal_naive_scale`) skips recomputing it.
    """
    return _safe_divide(mae(y_true, y_pred), _scale(y_train, seasonality, 1, scale, "mase"))


def rmsse(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Root mean squared scaled error per item (utilsforecast ``rmsse``, the M5 metric).

    ``sqrt(MSE / in-sample MSE of the seasonal naive forecast)``; NaN where that scale is 0.
    ``scale`` is the in-sample MSE (``seasonal_naive_scale(..., power=2)``), not its root.
    """
    mse = _mse(_errors(y_true, y_pred))
    return np.sqrt(_safe_divide(mse, _scale(y_train, seasonality, 2, scale, "rmsse")))


def me(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Mean error (bias) per item, forecast minus actual: positive = over-forecast (utilsforecast
    ``bias``)."""
    e = _errors(y_true, y_pred)
    return e.sum(axis=1) / e.shape[1]


def pis(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Periods in stock (Wallström & Segerstedt 2010): ``sum_t sum_{j<=t} (forecast_j - actual_j)``.

    The signed, cumulative bias measure of the intermittent-demand literature: the stock a
    forecast-driven replenishment would hold, summed over the horizon, in units x periods.
    Positive = periods in stock (over-forecast), negative = periods of shortage. utilsforecast
    0.2's ``pis`` is instead the sum of absolute errors (``h x MAE``), which carries no sign and
    repeats MAE, so this one is written here (hand-checked in the tests).
    """
    return np.cumsum(_errors(y_true, y_pred), axis=1).sum(axis=1)


def mape(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Mean absolute percentage error per item, a fraction (0.1 = 10 %), over non-zero actuals.

    Periods with zero actual are skipped (utilsforecast turns them into NaN; on pandas its mean
    skips them); NaN when every actual is zero. Meaningful for regular items only.
    """
    yt, yp = _pair(y_true, y_pred)
    ape = _safe_divide(np.abs(yp - yt), np.abs(yt))
    return nanmean_count(ape, axis=1)[0]


def mape_parts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MAPE as parts that add up over windows: the sum of the absolute percentage errors over
    the non-zero actuals and their number, float64 and int64 ``[items]``."""
    yt, yp = _pair(y_true, y_pred)
    actual = np.abs(yt)
    nonzero = actual > 0
    ape = np.divide(np.abs(yp - yt), actual, out=np.zeros_like(actual), where=nonzero)
    return ape.sum(axis=1), nonzero.sum(axis=1)


def wape(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
) -> np.ndarray:
    """Weighted absolute percentage error per item: ``sum|e| / sum|y|`` (utilsforecast ``wape``);
    NaN when the actuals sum to 0."""
    return ratio_of_sums(*wape_parts(y_true, y_pred))


def wape_parts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WAPE as parts that add up over windows: ``sum|e|`` and ``sum|y|``, float64 ``[items]``."""
    yt, yp = _pair(y_true, y_pred)
    return np.abs(yp - yt).sum(axis=1), np.abs(yt).sum(axis=1)


def pinball(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
    quantile: float = 0.5,
) -> np.ndarray:
    """Mean pinball (quantile) loss per item of a ``quantile`` forecast (utilsforecast
    ``quantile_loss``): under-forecasts cost ``quantile``, over-forecasts ``1 - quantile`` per
    unit."""
    if not 0.0 < quantile < 1.0:
        raise DataValidationError(f"quantile must be in (0, 1), got {quantile}")
    yt, yp = _pair(y_true, y_pred)
    d = yt - yp
    return np.maximum(quantile * d, (quantile - 1.0) * d).mean(axis=1)


def stockout_weighted_se(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
    stockout_weight: float = 3.0,
) -> np.ndarray:
    """Mean squared error per item with under-forecasts (forecast < actual, a stock-out risk)
    weighted by ``stockout_weight`` and over-forecasts by 1: the mean over the horizon of
    :func:`sparecast.methods.ml.asymmetric_loss` (the ML models' training loss), on its two
    terms: MSE + (weight - 1) x the mean squared under-forecast."""
    if stockout_weight <= 0:
        raise DataValidationError(f"stockout_weight must be > 0, got {stockout_weight}")
    e, under = asymmetric_terms(*_pair(y_true, y_pred))
    return _mse(e) + (stockout_weight - 1.0) * np.einsum("ij,ij->i", under, under) / e.shape[1]


def asym(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    seasonality: int = 1,
    scale: TrainScales | np.ndarray | None = None,
    stockout_weight: float = 3.0,
) -> np.ndarray:
    """The asymmetric loss of the backtest and the router: :func:`stockout_weighted_se` divided
    by the in-sample MSE of the seasonal naive forecast (the RMSSE scale, ``power=2``), so that
    items of any volume count alike; NaN where that scale is 0. Lower is better."""
    loss = stockout_weighted_se(y_true, y_pred, stockout_weight=stockout_weight)
    return _safe_divide(loss, _scale(y_train, seasonality, 2, scale, "asym"))


@dataclass(frozen=True)
class Metric:
    """A registered metric: the function and what it is used for.

    ``signed``: a bias (the sign says over or under), never a score to minimise; ``scored``: the
    backtest scores every item and method with it (``SCORE_METRICS``); ``router``: the router can
    rank methods by it (``ROUTER_METRICS``); ``options``: the metric-specific keywords the
    backtest passes (e.g. ``stockout_weight``); ``parts``: for a ratio metric, numerator and
    denominator per item that add up over windows (pooled with :func:`ratio_of_sums`).
    Calling a Metric calls its function.
    """

    fn: Callable[..., np.ndarray]
    signed: bool = False
    scored: bool = False
    router: bool = False
    options: tuple[str, ...] = ()
    parts: Parts | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self.fn(*args, **kwargs)


METRICS: dict[str, Metric] = {
    "mae": Metric(mae, scored=True, router=True),
    "rmse": Metric(rmse, scored=True, router=True),
    "mase": Metric(mase, scored=True, router=True),
    "rmsse": Metric(rmsse, scored=True, router=True),
    "me": Metric(me, signed=True, scored=True),
    "pis": Metric(pis, signed=True, scored=True),
    "mape": Metric(mape, parts=mape_parts),
    "wape": Metric(wape, parts=wape_parts),
    "pinball": Metric(pinball, options=("quantile",)),
    "stockout_weighted_se": Metric(stockout_weighted_se, options=("stockout_weight",)),
    "asym": Metric(asym, scored=True, router=True, options=("stockout_weight",)),
}


def metric_names(
    *, signed: bool | None = None, scored: bool | None = None, router: bool | None = None
) -> tuple[str, ...]:
    """Names of the registered metrics with the given flags (None: either), in registry order."""
    wanted = {"signed": signed, "scored": scored, "router": router}
    return tuple(
        name
        for name, m in METRICS.items()
        if all(v is None or getattr(m, k) == v for k, v in wanted.items())
    )
