"""Global ML models: one LightGBM over all items, XGBoost for the regular items, asymmetric loss.

Both models learn from feature rows built by :mod:`sparecast.methods.features` (no leakage: a row
at cutoff ``t`` sees only ``y[:, :t]``) and forecast ``h`` periods with one of three strategies:

- ``recursive``: one model of the next period; forecasts are fed back as lags, step by step;
- ``direct``: one model with the horizon step ``k`` (and the target period's calendar) as
  features, trained on rows with ``k`` drawn from 1..h; every step is predicted from the cutoff;
- ``mean``: one model of the mean demand over the next ``h`` periods, a flat forecast.

The default (``direct`` with ``tweedie``) was chosen by backtest MASE, RMSSE and asymmetric loss on
the demo data and on carparts; docs/results.md ("LightGBM: multi-step strategy and objective") has
the figures and the command (``benchmarks/ml_strategies.py``).

Objectives: ``tweedie`` (default, log link, variance power ``tweedie_power``), ``poisson``,
``l2``, ``quantile`` (``alpha``) and ``asymmetric``: squared error with under-forecasts weighted
``stockout_weight`` times over-forecasts (:func:`asymmetric_grad_hess`).

The asymmetric loss and the service level: for a constant forecast ``q`` the expected loss
``E[w (Y-q)^2 1{Y>q} + (q-Y)^2 1{Y<=q}]`` is minimised by the ``tau = w/(w+1)`` *expectile* of
``Y`` (Newey & Powell 1987), e.g. ``w = 3 -> tau = 0.75``. The critical ratio of a newsvendor
with under/over costs ``w : 1`` is the same ``w/(w+1)``, but with *linear* costs its optimum is
the ``w/(w+1)`` quantile, which the ``quantile`` objective with ``alpha = w/(w+1)`` targets. The
two differ most on intermittent demand: with demand in 10% of the periods the 75% quantile is 0
while the 75% expectile is about 2.5 times the mean; for w > 1 the expectile is above the mean.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from sparecast.classify import REGULAR_TIERS, TierThresholds, as_thresholds, classify
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.methods.features import (
    FeatureSpec,
    History,
    StaticFeatures,
    cutoff_features,
    default_spec,
    feature_names,
    target_calendar,
)

__all__ = [
    "OBJECTIVES",
    "STRATEGIES",
    "GlobalLightGBM",
    "XGBoostRegular",
    "asymmetric_loss",
    "asymmetric_terms",
    "asymmetric_grad_hess",
    "level_calibration",
    "apply_level",
    "lightgbm_forecast",
    "lightgbm_backtest",
    "xgboost_forecast",
    "xgboost_backtest",
]

OBJECTIVES: tuple[str, ...] = ("tweedie", "poisson", "l2", "quantile", "asymmetric")
LINKS: tuple[str, ...] = ("log", "identity")
STRATEGIES: tuple[str, ...] = ("direct", "recursive", "mean")
XGB_MODES: tuple[str, ...] = ("pooled", "per_item")
MEAN_OBJECTIVES: tuple[str, ...] = ("tweedie", "poisson", "l2")  # the ones calibrated
_DEFAULT_STRIDE = {"D": 3, "W": 1, "M": 1}


def _omp_passive() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose otherwise).

    Why: LightGBM and XGBoost use OpenMP; its default busy-waiting collapses when another process
    competes for the cores. Measured on the 2-core machine next to one busy process: the demo fit
    took 21.3 s with 2 threads against 6.8 s with ``OMP_WAIT_POLICY=passive`` (6.5 s on 1 thread).
    OpenMP reads the variable when the library is first loaded, hence before the lazy import."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _lightgbm() -> ModuleType:
    _omp_passive()
    import lightgbm

    return lightgbm


def _xgboost() -> ModuleType:
    _omp_passive()
    import xgboost

    return xgboost


# --------------------------------------------------------------------------------------------
# Asymmetric loss
# --------------------------------------------------------------------------------------------


def asymmetric_terms(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of :func:`asymmetric_loss`: the error ``e = pred - true`` and its
    under-forecast part ``min(e, 0)`` (a stock-out risk), float64 each."""
    e = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return e, np.minimum(e, 0.0)


def asymmetric_loss(
    y_true: np.ndarray, y_pred: np.ndarray, stockout_weight: float = 3.0
) -> np.ndarray:
    """Per-row loss ``c (pred - true)^2`` with ``c = stockout_weight`` for an under-forecast
    (pred < true: a stock-out risk) and 1 otherwise, written as
    ``e^2 + (stockout_weight - 1) min(e, 0)^2`` (the form the metric
    :func:`sparecast.evaluate.metrics.stockout_weighted_se` averages)."""
    e, under = asymmetric_terms(y_true, y_pred)
    return np.square(e) + (stockout_weight - 1.0) * np.square(under)


def asymmetric_grad_hess(
    y_true: np.ndarray, raw: np.ndarray, stockout_weight: float = 3.0, link: str = "identity"
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and hessian of :func:`asymmetric_loss` with respect to the model's raw score
    (the custom objective of both libraries).

    ``link="identity"``: the forecast is the raw score ``f``; gradient ``2 c e``, hessian ``2 c``
    with ``e = f - true``. ``link="log"``: the forecast is ``mu = exp(f)``; gradient
    ``2 c e mu`` with ``e = mu - true`` and the Gauss-Newton hessian ``2 c mu^2`` (the exact one,
    ``2 c mu (2 mu - true)``, is negative where ``true > 2 mu``). The log link lets the model
    forecast (almost) zero for items without recent demand, as Tweedie and Poisson do."""
    f = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.float64)
    if link == "identity":
        e = f - y
        c = np.where(e < 0, stockout_weight, 1.0)
        return 2.0 * c * e, 2.0 * c
    mu = np.exp(np.minimum(f, 50.0))
    e = mu - y
    c = np.where(e < 0, stockout_weight, 1.0)
    return 2.0 * c * e * mu, np.maximum(2.0 * c * mu * mu, 1e-12)


# --------------------------------------------------------------------------------------------
# Level calibration
# --------------------------------------------------------------------------------------------


def level_calibration(
    pred: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    bins: int = 3,
    min_rows: int = 1000,
    clip: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Knots and factors of a mean-preserving level correction, learned from a model's
    predictions ``pred`` of its own training rows (``target``, sample ``weight``).

    The rows are cut into ``bins`` groups of equal weight by ``pred`` (fewer when there are
    fewer than ``min_rows`` rows a group); each group's factor is ``sum(w target) / sum(w pred)``,
    clipped to ``[1/clip, clip]``, at the knot ``sum(w pred) / sum(w)``. :func:`apply_level`
    interpolates the factors between the knots (constant beyond) and the factors are then scaled
    by one common number so that ``sum(w pred f(pred)) = sum(w target)`` exactly: the corrected
    predictions of the training rows have the targets' weighted mean. ``bins=1``: one global
    factor. Returns ``(knots, factors)``, increasing knots; ``([0], [1])`` when nothing can be
    learned (no positive prediction or target).

    Why: a log-link Tweedie model with power ``p > 1`` is balanced only in the
    ``mu^(1-p)``-weighted sense (its score equation is ``sum w mu^(1-p) (mu - y) = 0``), so its
    forecasts sum below the demand where large demands meet small predictions (measured: 27%
    below on the demo's training rows, 7% on carparts); by predicted level, because the shortfall
    is not uniform (rows predicted near zero are over-forecast, the busy rows under-forecast)."""
    p = np.maximum(np.asarray(pred, dtype=np.float64), 0.0)
    t = np.maximum(np.asarray(target, dtype=np.float64), 0.0)
    w = np.ones(p.size) if weight is None else np.asarray(weight, dtype=np.float64)
    none = (np.zeros(1), np.ones(1))
    if p.size == 0 or float((w * p).sum()) <= 0 or float((w * t).sum()) <= 0:
        return none
    n_bins = int(max(1, min(bins, p.size // max(min_rows, 1))))
    order = np.argsort(p, kind="stable")
    mid = np.cumsum(w[order]) - w[order] / 2  # each row's weight midpoint, in sorted order
    group = np.empty(p.size, dtype=np.int64)
    group[order] = np.minimum((mid / w.sum() * n_bins).astype(np.int64), n_bins - 1)
    sw = np.bincount(group, w, n_bins)
    sp = np.bincount(group, w * p, n_bins)
    st = np.bincount(group, w * t, n_bins)
    used = (sw > 0) & (sp > 0)
    if not used.any():
        return none
    knots = sp[used] / sw[used]
    factors = np.clip(st[used] / sp[used], 1.0 / clip, clip)
    knots, first = np.unique(knots, return_index=True)  # ties of the knots: keep one
    factors = factors[first]
    scaled = p * np.interp(p, knots, factors)
    factors = factors * (float((w * t).sum()) / float((w * scaled).sum()))
    return knots, factors


def apply_level(pred: np.ndarray, knots: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``pred`` times the level factor interpolated at ``pred`` (:func:`level_calibration`)."""
    p = np.asarray(pred, dtype=np.float64)
    return p * np.interp(p, knots, factors)


# --------------------------------------------------------------------------------------------
# Shared model: rows, strategies, prediction
# --------------------------------------------------------------------------------------------


class _GlobalTreeModel(BaseEstimator):
    """Rows, strategies and prediction shared by the LightGBM and XGBoost models.

    A scikit-learn estimator: each subclass lists its parameters explicitly in ``__init__``,
    which only stores them (``get_params``, ``set_params`` and ``clone`` read the signature);
    ``fit`` checks them (a MethodError naming the parameter) and sets the fitted attributes, whose
    names end with ``_``. Subclasses implement ``_train(X, target, weight)`` and
    ``_predict_raw(model, X)``.
    """

    objective: str
    strategy: str
    alpha: float
    stockout_weight: float
    tweedie_power: float
    link: str
    scaled: bool
    lags: tuple[int, ...] | list[int] | None
    windows: tuple[int, ...] | list[int] | None
    stride: int | None
    max_rows: int
    zero_keep: float
    steps_per_cutoff: int
    n_estimators: int
    learning_rate: float
    seed: int
    n_jobs: int
    chunk_items: int

    def _check_params(self) -> None:
        """A MethodError naming the first invalid parameter; ``fit`` calls it."""
        if self.objective not in OBJECTIVES:
            raise MethodError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.strategy not in STRATEGIES:
            raise MethodError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.link not in LINKS:
            raise MethodError(
                f"link (asymmetric objective) must be one of {LINKS}, got {self.link!r}"
            )
        if not 0.0 < self.alpha < 1.0:
            raise MethodError(f"alpha (quantile objective) must be in (0, 1), got {self.alpha}")
        if self.stockout_weight <= 0:
            raise MethodError(f"stockout_weight must be > 0, got {self.stockout_weight}")
        if not 1.0 < self.tweedie_power < 2.0:
            raise MethodError(f"tweedie_power must be in (1, 2), got {self.tweedie_power}")
        if not 0.0 < self.zero_keep <= 1.0:
            raise MethodError(f"zero_keep must be in (0, 1], got {self.zero_keep}")
        if self.stride is not None and self.stride < 1:
            raise MethodError(f"stride must be >= 1, got {self.stride}")
        for name in ("max_rows", "steps_per_cutoff", "n_estimators", "chunk_items", "n_jobs"):
            value = getattr(self, name)
            if value < 1:
                raise MethodError(f"{name} must be >= 1, got {value}")

    def _start(self, target: np.ndarray, weight: np.ndarray) -> float:
        """Raw score the custom (asymmetric) objective starts from: the weighted mean target,
        on the log scale with the log link."""
        mean = max(float(np.average(target, weights=weight)), 1e-6)
        return math.log(mean) if self.link == "log" else mean

    def _response(self, raw: np.ndarray) -> np.ndarray:
        """Forecast from the raw score of the asymmetric objective (identity or exp)."""
        return np.exp(np.minimum(raw, 50.0)) if self.link == "log" else raw

    # ------------------------------------------------------------------ to override
    def _train(self, X: np.ndarray, target: np.ndarray, weight: np.ndarray) -> Any:
        raise NotImplementedError

    def _predict_raw(self, model: Any, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ rows
    def _cutoffs(
        self, y: np.ndarray, h: int, *, stride: int | None = None, zero_keep: float | None = None
    ) -> list[int]:
        """Training cutoffs, newest first: every ``stride`` periods back from the last one that
        has a target, down to the longest lag (or half the history when it is shorter). The
        stride grows when the expected rows (after down-sampling the quiet rows, whose share is
        estimated on the last window) exceed ``max_rows``. ``stride`` and ``zero_keep`` override
        the parameters of the same name (a per-item model uses every period)."""
        zero_keep = self.zero_keep if zero_keep is None else zero_keep
        n_items, n_periods = y.shape
        quiet = 0.0
        if zero_keep < 1.0 and n_items:
            window = y[:, max(0, n_periods - self.quiet_window) :]
            quiet = 1.0 - float((window > 0).any(axis=1).mean())
        return self._cutoffs_of(n_items, n_periods, h, quiet, stride=stride, zero_keep=zero_keep)

    @property
    def quiet_window(self) -> int:
        """The last periods over which the share of quiet items (no demand) is estimated."""
        return max(self.spec_.windows)

    def _cutoffs_of(
        self,
        n_items: int,
        n_periods: int,
        h: int,
        quiet: float,
        *,
        stride: int | None = None,
        zero_keep: float | None = None,
    ) -> list[int]:
        """:meth:`_cutoffs` of a panel of ``n_items`` x ``n_periods`` whose share of items
        without demand in the last :attr:`quiet_window` periods is ``quiet``."""
        zero_keep = self.zero_keep if zero_keep is None else zero_keep
        last = n_periods - h if self.strategy == "mean" else n_periods - 1
        first = max(1, min(self.spec_.max_lookback, n_periods // 2))
        if last < 1:
            return []
        first = min(first, last)
        if stride is None:
            stride = self.stride or _DEFAULT_STRIDE[self.freq_]
        per_cutoff = float(n_items * (self.steps_per_cutoff if self.strategy == "direct" else 1))
        per_cutoff *= 1.0 - quiet * (1.0 - zero_keep)
        n_cut = (last - first) // stride + 1
        if n_cut * per_cutoff > self.max_rows:  # thin the cutoffs to stay under max_rows
            stride *= math.ceil(n_cut * per_cutoff / self.max_rows)
        return list(range(last, first - 1, -stride))

    def _rows(
        self,
        y: np.ndarray,
        static: np.ndarray,
        cutoffs: list[int],
        h: int,
        calendar: np.ndarray,
        *,
        zero_keep: float | None = None,
        seed: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature matrix, target and sample weight of all training rows of ``y`` (in chunks of
        items). Rows with no demand in the longest window and a zero target are kept with
        probability ``zero_keep`` (default: the parameter) and weighted ``1 / zero_keep``.
        ``seed`` (default: the parameter) seeds the draws of steps and kept rows."""
        zero_keep = self.zero_keep if zero_keep is None else zero_keep
        rng = np.random.default_rng(self.seed if seed is None else seed)
        n_items, n_periods = y.shape
        zw = max(self.spec_.windows)
        floor = 0.0
        if self.scaled:  # items weigh 1 / their RMSSE scale, floored at the 10th percentile
            last = History(y[:, -min(n_periods, 365) :]).scale(
                min(n_periods, 365), np.arange(n_items)
            )
            positive = last[last > 0]
            floor = float(np.quantile(positive, 0.1)) if positive.size else 1.0
        xs, ts, ws = [], [], []
        for lo in range(0, n_items, self.chunk_items):
            block = y[lo : lo + self.chunk_items]
            hist = History(block)
            n = block.shape[0]
            for t in cutoffs:
                if self.strategy == "direct":
                    rows = np.repeat(np.arange(n), self.steps_per_cutoff)
                    steps = rng.integers(1, min(h, n_periods - t) + 1, rows.size)
                    target = block[rows, t + steps - 1].astype(np.float64)
                elif self.strategy == "recursive":
                    rows = np.arange(n)
                    steps = np.ones(n, dtype=np.int64)
                    target = block[:, t].astype(np.float64)
                else:
                    rows = np.arange(n)
                    steps = np.ones(n, dtype=np.int64)
                    target = block[:, t : t + h].mean(axis=1, dtype=np.float64)
                weight = np.ones(rows.size)
                if self.scaled:
                    weight = 1.0 / np.maximum(hist.scale(t, rows), floor)
                if zero_keep < 1.0:
                    quiet = (hist.c_n[rows, t] == hist.c_n[rows, max(0, t - zw)]) & (target <= 0)
                    keep = ~quiet | (rng.random(rows.size) < zero_keep)
                    weight = (weight * np.where(quiet, 1.0 / zero_keep, 1.0))[keep]
                    rows, steps, target = rows[keep], steps[keep], target[keep]
                if rows.size == 0:
                    continue
                xs.append(
                    cutoff_features(
                        hist,
                        t,
                        self.spec_,
                        calendar,
                        steps,
                        with_step=self.strategy == "direct",
                        static=static[lo : lo + n],
                        rows=rows,
                    )
                )
                ts.append(target)
                ws.append(weight)
        if not xs:
            width = len(self.feature_names_)
            return np.empty((0, width), np.float32), np.empty(0), np.empty(0)
        return np.concatenate(xs), np.concatenate(ts), np.concatenate(ws)

    # ------------------------------------------------------------------ public API
    def _prepare(self, panel: DemandPanel, h: int) -> None:
        """Check the parameters, the horizon and the panel; learn the features' layout."""
        self._check_params()
        if h < 1:
            raise MethodError(f"horizon h must be >= 1, got {h}")
        if panel.n_periods < 2:
            raise MethodError(
                f"{type(self).__name__} needs at least 2 periods of history to learn from, "
                f"the panel has {panel.n_periods}; use a classical method (e.g. 'ma') instead"
            )
        self.freq_ = panel.freq
        self.spec_: FeatureSpec = default_spec(
            panel.freq,
            tuple(self.lags) if self.lags is not None else None,
            tuple(self.windows) if self.windows is not None else None,
            obsolescence=bool(getattr(self, "obsolescence", True)),
        )
        self.static_ = StaticFeatures.learn(panel.attributes)
        self.feature_names_ = feature_names(
            self.spec_, panel.freq, with_step=self.strategy == "direct", static=self.static_.names
        )
        self.h_ = h

    def _fit_rows(self, panel: DemandPanel, h: int) -> tuple[Any, float]:
        """Build the training rows of ``panel`` and train one model: (model or None, constant).
        A panel whose targets are all zero gets the constant 0 and no model."""
        cutoffs = self._cutoffs(panel.y, h)
        if not cutoffs:
            raise MethodError(
                f"{type(self).__name__}: a panel of {panel.n_periods} periods has no training "
                f"row for strategy {self.strategy!r} and h={h}; use strategy 'direct' or a "
                "classical method for such short histories"
            )
        calendar = target_calendar(panel.start, panel.n_periods + h, panel.freq)
        X, target, weight = self._rows(panel.y, self.static_.matrix(panel), cutoffs, h, calendar)
        self.n_train_rows_ = int(target.size)
        target = np.maximum(target, 0.0)  # net returns are not negative demand to learn
        self.level_ = (np.zeros(1), np.ones(1))  # no correction
        if target.size == 0 or target.max() <= 0:
            return None, 0.0
        model = self._train(X, target, weight)
        fitted = self._fitted_values(model, X)
        if fitted is not None:
            self.level_ = level_calibration(
                fitted, target, weight, bins=int(getattr(self, "calibration_bins", 1))
            )
        return model, 0.0

    def _fitted_values(self, model: Any, X: np.ndarray) -> np.ndarray | None:
        """The model's forecasts of its training rows when its level is to be calibrated
        (None: no calibration; the LightGBM model overrides this)."""
        return None

    def _level(self, model: Any, pred: np.ndarray) -> np.ndarray:
        """The calibrated level of the pooled model's forecasts (other models: unchanged)."""
        level = getattr(self, "level_", None)
        if level is None or model is not getattr(self, "model_", None):
            return pred
        return apply_level(pred, *level)

    def fit(self, panel: DemandPanel, h: int) -> _GlobalTreeModel:
        """Learn one model from every item of ``panel`` for horizons up to ``h``."""
        self._prepare(panel, h)
        self.panel_ = panel
        self.model_, self.constant_ = self._fit_rows(panel, h)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise MethodError(f"{type(self).__name__} is not fitted; call fit(panel, h) first")

    def _forecast_with(self, model: Any, constant: float, panel: DemandPanel, h: int) -> np.ndarray:
        """``float64[items, h]`` forecasts of ``model`` from the end of ``panel``."""
        n_items, n_periods = panel.y.shape
        out = np.zeros((n_items, h))
        if model is None:
            out[:] = constant
            return out
        calendar = target_calendar(panel.start, n_periods + h, panel.freq)
        static = self.static_.matrix(panel)
        with_step = self.strategy == "direct"
        for lo in range(0, n_items, self.chunk_items):
            block = panel.y[lo : lo + self.chunk_items]
            n = block.shape[0]
            st = static[lo : lo + n]
            if self.strategy == "recursive":
                hist = History(block, extra=h)
                ones = np.ones(n, dtype=np.int64)
                for k in range(h):
                    X = cutoff_features(
                        hist, n_periods + k, self.spec_, calendar, ones, with_step=False, static=st
                    )
                    p = np.maximum(self._level(model, self._predict_raw(model, X)), 0.0)
                    out[lo : lo + n, k] = p
                    hist.append(p)
            elif self.strategy == "direct":
                hist = History(block)
                rows = np.repeat(np.arange(n), h)
                steps = np.tile(np.arange(1, h + 1), n)
                X = cutoff_features(
                    hist,
                    n_periods,
                    self.spec_,
                    calendar,
                    steps,
                    with_step=with_step,
                    static=st,
                    rows=rows,
                )
                out[lo : lo + n] = self._level(model, self._predict_raw(model, X)).reshape(n, h)
            else:
                hist = History(block)
                ones = np.ones(n, dtype=np.int64)
                X = cutoff_features(
                    hist, n_periods, self.spec_, calendar, ones, with_step=False, static=st
                )
                out[lo : lo + n] = self._level(model, self._predict_raw(model, X))[:, None]
        return np.maximum(out, 0.0)

    def predict(self, panel: DemandPanel | None = None, h: int | None = None) -> np.ndarray:
        """Forecasts ``float64[items, h]`` for the periods after the end of ``panel`` (default:
        the fitted panel and horizon), rows in panel order. The direct and mean strategies
        forecast at most the fitted ``h``."""
        self._check_fitted()
        panel = panel if panel is not None else getattr(self, "panel_", None)
        if panel is None:
            raise MethodError(
                f"{type(self).__name__} was trained elsewhere (adopt) and keeps no panel; "
                "call predict(panel, h)"
            )
        h = self.h_ if h is None else h
        if h < 1:
            raise MethodError(f"horizon h must be >= 1, got {h}")
        if self.strategy != "recursive" and h > self.h_:
            raise MethodError(
                f"strategy {self.strategy!r} was fitted for h <= {self.h_}, asked for h={h}; "
                "fit again with the longer horizon"
            )
        if panel.freq != self.freq_:
            raise MethodError(f"model fitted on freq {self.freq_!r}, panel is {panel.freq!r}")
        return self._forecast_with(self.model_, self.constant_, panel, h)


# --------------------------------------------------------------------------------------------
# LightGBM
# --------------------------------------------------------------------------------------------


class GlobalLightGBM(_GlobalTreeModel):
    """One LightGBM model over all items of a panel (scikit-learn style).

    ``GlobalLightGBM(objective="tweedie", strategy="direct").fit(panel, h).predict()`` returns
    ``float64[items, h]``. Parameters: see the module docstring for objectives and strategies;
    ``lags``/``windows`` override the frequency's default features; ``stride`` (periods between
    training cutoffs, default 3 days / 1 week / 1 month) and ``max_rows`` bound the training
    rows; ``zero_keep`` < 1 down-samples rows without recent demand and with a zero target (their
    weight is ``1 / zero_keep``); ``steps_per_cutoff`` is the number of horizon steps drawn per
    item and cutoff (direct). ``link`` is the asymmetric objective's (``identity`` default,
    ``log``); ``scaled`` weighs every row by 1 / the item's RMSSE scale at the cutoff, so that the
    training loss matches the per-item scaled scores (measured: not better, off by default).
    ``num_leaves``, ``min_data_in_leaf``, ``n_estimators`` and ``learning_rate`` are LightGBM's.
    Deterministic for a given ``seed`` and ``n_jobs``.

    ``calibrate`` (default True; objectives ``tweedie``, ``poisson`` and ``l2`` only, the others
    target a quantile or an expectile on purpose) multiplies the forecasts by a level factor
    learned from the model's own forecasts of its training rows (:func:`level_calibration`,
    ``calibration_bins`` groups by forecast level, default 3; 1 = one global factor):
    mean-preserving on the training rows, no look at later data and no extra fit (the scores
    LightGBM kept for its training rows are read back). Why: the Tweedie model (power 1.8)
    forecast 21-28% below the held-out demand on carparts and the demo; docs/results.md
    ("LightGBM: level calibration") has the figures before and after
    (``benchmarks/ml_bias.py``). The fitted ``level_`` holds the knots and factors.
    ``obsolescence`` (default True) adds the obsolescence features of
    :mod:`sparecast.methods.features` (the last interval and the time since the last demand over
    the mean interval, the recent share of periods with demand over the item's lifetime share).
    """

    def __init__(
        self,
        *,
        objective: str = "tweedie",
        strategy: str = "direct",
        alpha: float = 0.5,
        stockout_weight: float = 3.0,
        tweedie_power: float = 1.8,
        link: str = "identity",
        scaled: bool = False,
        lags: tuple[int, ...] | list[int] | None = None,
        windows: tuple[int, ...] | list[int] | None = None,
        stride: int | None = None,
        max_rows: int = 2_000_000,
        zero_keep: float = 0.2,
        steps_per_cutoff: int = 2,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        seed: int = 0,
        n_jobs: int = 2,
        chunk_items: int = 2048,
        num_leaves: int = 31,
        min_data_in_leaf: int = 100,
        calibrate: bool = True,
        calibration_bins: int = 3,
        obsolescence: bool = True,
    ) -> None:
        self.objective = objective
        self.strategy = strategy
        self.alpha = alpha
        self.stockout_weight = stockout_weight
        self.tweedie_power = tweedie_power
        self.link = link
        self.scaled = scaled
        self.lags = lags
        self.windows = windows
        self.stride = stride
        self.max_rows = max_rows
        self.zero_keep = zero_keep
        self.steps_per_cutoff = steps_per_cutoff
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.seed = seed
        self.n_jobs = n_jobs
        self.chunk_items = chunk_items
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.calibrate = calibrate
        self.calibration_bins = calibration_bins
        self.obsolescence = obsolescence

    def _check_params(self) -> None:
        super()._check_params()
        if self.calibration_bins < 1:
            raise MethodError(f"calibration_bins must be >= 1, got {self.calibration_bins}")

    _train_pred: np.ndarray | None = None  # the training rows' forecasts, between fit steps

    def fit(self, panel: DemandPanel, h: int) -> GlobalLightGBM:
        """Learn one model from every item of ``panel`` for horizons up to ``h`` (and its level
        calibration, see the class docstring)."""
        super().fit(panel, h)
        return self

    def _fitted_values(self, model: Any, X: np.ndarray) -> np.ndarray | None:
        fitted: np.ndarray | None = getattr(self, "_train_pred", None)
        self._train_pred = None  # not kept with the fitted model
        return fitted

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "seed": self.seed,
            "num_threads": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if self.objective == "tweedie":
            params.update(objective="tweedie", tweedie_variance_power=self.tweedie_power)
        elif self.objective == "poisson":
            params["objective"] = "poisson"
        elif self.objective == "l2":
            params["objective"] = "regression"
        elif self.objective == "quantile":
            params.update(objective="quantile", alpha=self.alpha)
        else:
            w, link = self.stockout_weight, self.link

            def objective(preds: np.ndarray, data: Any) -> tuple[np.ndarray, np.ndarray]:
                grad, hess = asymmetric_grad_hess(data.get_label(), preds, w, link)
                weight = data.get_weight()
                if weight is not None:
                    grad, hess = grad * weight, hess * weight
                return grad, hess

            params["objective"] = objective
            if self.link == "log":  # Newton steps on the log scale explode where mu << y
                params["max_delta_step"] = 0.7
        return params

    def _train(self, X: np.ndarray, target: np.ndarray, weight: np.ndarray) -> Any:
        lgb = _lightgbm()
        cat = [self.feature_names_.index("category")] if self.static_.categories else []
        init = None
        self.init_score_ = 0.0
        if self.objective == "asymmetric":  # custom objectives start from 0: start at the mean
            self.init_score_ = self._start(target, weight)
            init = np.full(target.size, self.init_score_)
        data = lgb.Dataset(
            X,
            label=target,
            weight=weight,
            init_score=init,
            feature_name=self.feature_names_,
            categorical_feature=cat,
            params={"verbosity": -1, "max_bin": 255},
            free_raw_data=True,
        )
        self._train_pred = None
        if not (self.calibrate and self.objective in MEAN_OBJECTIVES):
            return lgb.train(self._params(), data, num_boost_round=self.n_estimators)
        # keep the training data in the booster: its forecasts of the training rows come for
        # free (the scores boosting kept up to date) instead of a second pass over the rows
        params = {**self._params(), "metric": "None"}
        booster = lgb.train(
            params, data, num_boost_round=self.n_estimators, keep_training_booster=True
        )
        captured: list[np.ndarray] = []

        def keep(preds: np.ndarray, _: Any) -> tuple[str, float, bool]:
            captured.append(np.array(preds, dtype=np.float64))
            return "fitted", 0.0, False

        booster.eval_train(keep)
        self._train_pred = captured[0]
        # what lgb.train does without keep_training_booster: a plain model, the data freed
        booster.model_from_string(booster.model_to_string()).free_dataset()
        return booster

    def _predict_raw(self, model: Any, X: np.ndarray) -> np.ndarray:
        raw = np.asarray(model.predict(X, num_threads=self.n_jobs), dtype=np.float64)
        if self.objective != "asymmetric":
            return raw
        return self._response(raw + self.init_score_)

    # ------------------------------------------------------------------ training elsewhere
    # The Dask engine (sparecast.pipeline.dask_ml) trains this model with lightgbm.dask: the
    # client calls ``plan_rows`` on the whole panel, each worker ``chunk_rows`` on its chunk of
    # items, and the client ``adopt`` on the booster lightgbm.dask trained on those rows.

    @property
    def trains_on_dask(self) -> bool:
        """Whether lightgbm.dask can train this model: a built-in objective (the asymmetric
        objective is a Python callable, trained in one process)."""
        return self.objective != "asymmetric"

    def plan_rows(
        self, panel: DemandPanel, h: int, active: Callable[[int], int] | None = None
    ) -> list[int]:
        """Check the parameters, learn the features' layout (categories of the whole panel)
        and return the training cutoffs of ``panel`` (as ``fit`` would use them).
        ``active(window)``: the number of the panel's items with demand in its last ``window``
        periods, when ``panel.y`` does not hold the demand (a panel read per chunk elsewhere);
        the cutoffs are then those of the whole matrix."""
        self._prepare(panel, h)
        if active is None:
            cutoffs = self._cutoffs(panel.y, h)
        else:
            n = panel.n_items
            quiet = 0.0
            if self.zero_keep < 1.0 and n:  # as _cutoffs: 1 - the mean of n booleans
                quiet = 1.0 - active(self.quiet_window) / n
            cutoffs = self._cutoffs_of(n, panel.n_periods, h, quiet)
        if not cutoffs:
            raise MethodError(
                f"{type(self).__name__}: a panel of {panel.n_periods} periods has no training "
                f"row for strategy {self.strategy!r} and h={h}; use strategy 'direct' or a "
                "classical method for such short histories"
            )
        return cutoffs

    def chunk_rows(
        self, chunk: DemandPanel, cutoffs: list[int], h: int, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training rows (features ``float32``, target clipped at 0, weight) of the items of
        ``chunk`` at ``cutoffs`` (from :meth:`plan_rows` on the whole panel); ``seed`` draws
        this chunk's steps and kept rows."""
        calendar = target_calendar(chunk.start, chunk.n_periods + h, chunk.freq)
        X, target, weight = self._rows(
            chunk.y, self.static_.matrix(chunk), cutoffs, h, calendar, seed=seed
        )
        return np.ascontiguousarray(X, dtype=np.float32), np.maximum(target, 0.0), weight

    def dask_params(self) -> dict[str, Any]:
        """LightGBM parameters for ``lightgbm.DaskLGBMRegressor`` (as one process trains,
        without the thread count: lightgbm.dask uses each worker's threads)."""
        if not self.trains_on_dask:
            raise MethodError(
                "objective 'asymmetric' is a Python callable that lightgbm.dask does not "
                "train; use it in one process or choose tweedie, poisson, l2 or quantile"
            )
        params = {k: v for k, v in self._params().items() if k != "num_threads"}
        return {**params, "n_estimators": self.n_estimators, "max_bin": 255}

    def adopt(
        self,
        booster: Any,
        n_rows: int,
        fitted: np.ndarray | None = None,
        target: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ) -> GlobalLightGBM:
        """Take ``booster`` (trained elsewhere on ``n_rows`` rows of :meth:`chunk_rows`; None:
        every target was 0, the forecast is 0) as the fitted model; its level calibration
        from the booster's ``fitted`` forecasts of its training rows, their ``target`` and
        ``weight`` (as :meth:`fit` learns it). ``predict`` then needs a panel."""
        self.n_train_rows_ = int(n_rows)
        self.level_ = (np.zeros(1), np.ones(1))
        self.init_score_ = 0.0
        self.constant_ = 0.0
        self.model_ = booster
        if (
            booster is not None
            and fitted is not None
            and self.calibrate
            and self.objective in MEAN_OBJECTIVES
        ):
            assert target is not None and weight is not None
            self.level_ = level_calibration(fitted, target, weight, bins=self.calibration_bins)
        return self


# --------------------------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------------------------


class XGBoostRegular(_GlobalTreeModel):
    """XGBoost for the high-volume and regular items (demand in >= 10% of periods).

    ``mode="pooled"`` (default): one model trained on the rows of the high_volume and regular
    items (``classify`` tiers of the fitted panel). ``mode="per_item"``: one small model per such
    item, trained on its own rows (every period is a cutoff). Items outside those tiers (or all
    items, when no item is regular) get the pooled model's forecast: it is trained on the regular
    items only, so for intermittent items it is a plain fallback; the hybrid router sends them
    to other methods. Objectives map to ``reg:tweedie``, ``count:poisson``, ``reg:squarederror``,
    ``reg:quantileerror`` and the asymmetric custom objective. ``tiers``: the frequency tier
    thresholds that decide which items are regular (None: the defaults of
    :class:`sparecast.classify.TierThresholds`; a mapping of its fields is accepted too).
    """

    def __init__(
        self,
        *,
        objective: str = "tweedie",
        strategy: str = "direct",
        alpha: float = 0.5,
        stockout_weight: float = 3.0,
        tweedie_power: float = 1.8,
        link: str = "identity",
        scaled: bool = False,
        lags: tuple[int, ...] | list[int] | None = None,
        windows: tuple[int, ...] | list[int] | None = None,
        stride: int | None = None,
        max_rows: int = 2_000_000,
        zero_keep: float = 0.2,
        steps_per_cutoff: int = 2,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        seed: int = 0,
        n_jobs: int = 2,
        chunk_items: int = 2048,
        mode: str = "pooled",
        max_depth: int = 6,
        min_child_weight: float = 5.0,
        per_item_estimators: int = 100,
        tiers: TierThresholds | None = None,
    ) -> None:
        self.objective = objective
        self.strategy = strategy
        self.alpha = alpha
        self.stockout_weight = stockout_weight
        self.tweedie_power = tweedie_power
        self.link = link
        self.scaled = scaled
        self.lags = lags
        self.windows = windows
        self.stride = stride
        self.max_rows = max_rows
        self.zero_keep = zero_keep
        self.steps_per_cutoff = steps_per_cutoff
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.seed = seed
        self.n_jobs = n_jobs
        self.chunk_items = chunk_items
        self.mode = mode
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.per_item_estimators = per_item_estimators
        self.tiers = tiers

    def _check_params(self) -> None:
        super()._check_params()
        if self.mode not in XGB_MODES:
            raise MethodError(f"mode must be one of {XGB_MODES}, got {self.mode!r}")

    def _params(self, per_item: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "eta": self.learning_rate if not per_item else 0.1,
            "max_depth": self.max_depth if not per_item else 3,
            "min_child_weight": self.min_child_weight,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "lambda": 1.0,
            "tree_method": "hist",
            "seed": self.seed,
            # a per-item model has a few hundred rows: threads only wait on each other
            "nthread": 1 if per_item else self.n_jobs,
            "verbosity": 0,
        }
        if self.objective == "tweedie":
            params.update(objective="reg:tweedie", tweedie_variance_power=self.tweedie_power)
        elif self.objective == "poisson":
            params["objective"] = "count:poisson"
        elif self.objective == "l2":
            params["objective"] = "reg:squarederror"
        elif self.objective == "quantile":
            params.update(objective="reg:quantileerror", quantile_alpha=self.alpha)
        return params

    def _dmatrix(self, X: np.ndarray, target: np.ndarray | None = None, weight: Any = None) -> Any:
        xgb = _xgboost()
        types = ["c" if n == "category" else "q" for n in self.feature_names_]
        return xgb.DMatrix(
            X,
            label=target,
            weight=weight,
            feature_names=self.feature_names_,
            feature_types=types,
            enable_categorical=True,
            nthread=self.n_jobs,
        )

    def _train_xgb(
        self, X: np.ndarray, target: np.ndarray, weight: np.ndarray, per_item: bool
    ) -> Any:
        xgb = _xgboost()
        params = self._params(per_item)
        rounds = self.per_item_estimators if per_item else self.n_estimators
        data = self._dmatrix(X, target, weight)
        # start at the weighted mean (given in the output space; XGBoost applies the link):
        # measured, tweedie from the default start was still 45% low after 30 rounds
        params["base_score"] = max(float(np.average(target, weights=weight)), 1e-6)
        if self.objective != "asymmetric":
            return xgb.train(params, data, num_boost_round=rounds)
        w, link = self.stockout_weight, self.link
        params["base_score"] = self._start(target, weight)  # a raw score for custom objectives
        if link == "log":  # Newton steps on the log scale explode where mu << y
            params["max_delta_step"] = 0.7

        def objective(preds: np.ndarray, dtrain: Any) -> tuple[np.ndarray, np.ndarray]:
            grad, hess = asymmetric_grad_hess(dtrain.get_label(), preds, w, link)
            sw = dtrain.get_weight()
            if sw.size:
                grad, hess = grad * sw, hess * sw
            return grad, hess

        return xgb.train(params, data, num_boost_round=rounds, obj=objective)

    def _train(self, X: np.ndarray, target: np.ndarray, weight: np.ndarray) -> Any:
        return self._train_xgb(X, target, weight, per_item=False)

    def _predict_raw(self, model: Any, X: np.ndarray) -> np.ndarray:
        raw = np.asarray(model.predict(self._dmatrix(X)), dtype=np.float64)
        return self._response(raw) if self.objective == "asymmetric" else raw

    def fit(self, panel: DemandPanel, h: int) -> XGBoostRegular:
        """Learn the pooled model (and in ``per_item`` mode one model per regular item)."""
        self._prepare(panel, h)
        self.panel_ = panel
        tiers = classify(panel, thresholds=as_thresholds(self.tiers))["tier"].to_numpy()
        regular = np.flatnonzero(np.isin(tiers, REGULAR_TIERS))
        self.regular_items_ = regular
        train_panel = panel.select_items(regular) if regular.size else panel
        self.model_, self.constant_ = self._fit_rows(train_panel, h)
        self.item_models_: dict[int, tuple[Any, float]] = {}
        if self.mode == "per_item":
            for i in regular:
                one = panel.select_items(np.array([i]))
                self.item_models_[int(i)] = self._fit_one(one, h)
        return self

    def _fit_one(self, panel: DemandPanel, h: int) -> tuple[Any, float]:
        """A model trained on one item's rows, every period a cutoff."""
        cutoffs = self._cutoffs(panel.y, h, stride=1, zero_keep=1.0)
        calendar = target_calendar(panel.start, panel.n_periods + h, panel.freq)
        X, target, weight = self._rows(
            panel.y, self.static_.matrix(panel), cutoffs, h, calendar, zero_keep=1.0
        )
        target = np.maximum(target, 0.0)
        if target.size == 0 or target.max() <= 0:
            return None, 0.0
        return self._train_xgb(X, target, weight, per_item=True), 0.0

    def predict(self, panel: DemandPanel | None = None, h: int | None = None) -> np.ndarray:
        """Forecasts ``float64[items, h]`` after the end of ``panel`` (default: the fitted one).
        Per-item models are used only for the fitted panel's regular items."""
        out = super().predict(panel, h)
        if self.mode == "per_item" and (panel is None or panel is self.panel_):
            h = self.h_ if h is None else h
            for i, (model, constant) in self.item_models_.items():
                one = self.panel_.select_items(np.array([i]))
                out[i] = self._forecast_with(model, constant, one, h)[0]
        return out


# --------------------------------------------------------------------------------------------
# Registry kernels
# --------------------------------------------------------------------------------------------


def lightgbm_forecast(panel: DemandPanel, h: int, **params: Any) -> np.ndarray:
    """Kernel of the registered ``lightgbm`` method: fit :class:`GlobalLightGBM` on the panel,
    forecast ``h`` periods."""
    return GlobalLightGBM(**params).fit(panel, h).predict()


def xgboost_forecast(panel: DemandPanel, h: int, **params: Any) -> np.ndarray:
    """Kernel of the registered ``xgboost`` method: fit :class:`XGBoostRegular` on the panel,
    forecast ``h`` periods (every item gets a forecast, see the class docstring)."""
    return XGBoostRegular(**params).fit(panel, h).predict()


def _one_fit_backtest(
    model: _GlobalTreeModel, panel: DemandPanel, h: int, origins: list[int]
) -> list[np.ndarray]:
    """Forecasts from every backtest origin of ``model`` fitted once on the history before the
    earliest origin (its level calibration too: on those training rows only); the forecast
    from origin ``o`` is :meth:`~_GlobalTreeModel.predict` on ``panel.slice_periods(o)``, whose
    features see ``y[:, :o]`` only. The earliest window's forecast is the per-window one; at
    later origins the model is ``o - min(origins)`` periods older than a refit would be."""
    if not origins:
        return []
    model.fit(panel.slice_periods(min(origins)), h)
    return [model.predict(panel.slice_periods(o), h) for o in origins]


def lightgbm_backtest(
    panel: DemandPanel, h: int, origins: list[int], **params: Any
) -> list[np.ndarray]:
    """Backtest kernel of the registered ``lightgbm`` method: one :class:`GlobalLightGBM` fit
    on the periods before the earliest origin, forecasts from every origin
    (:func:`_one_fit_backtest`)."""
    return _one_fit_backtest(GlobalLightGBM(**params), panel, h, origins)


def xgboost_backtest(
    panel: DemandPanel, h: int, origins: list[int], **params: Any
) -> list[np.ndarray]:
    """Backtest kernel of the registered ``xgboost`` method: as :func:`lightgbm_backtest` in
    the ``pooled`` mode (the regular items are those of the earliest window's history); the
    ``per_item`` mode fits once per origin (its item models forecast only their fitted panel)."""
    model = XGBoostRegular(**params)
    if model.mode == "per_item":
        return [xgboost_forecast(panel.slice_periods(o), h, **params) for o in origins]
    return _one_fit_backtest(model, panel, h, origins)
