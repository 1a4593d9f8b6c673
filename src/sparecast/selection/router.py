"""The hybrid router: which method forecasts which item, and why.

Two modes (``HybridRouter(mode=...)``, config section ``[router]``):

- ``rules``: a fixed frequency-tier -> method mapping (default: high_volume and regular ->
  xgboost, intermittent -> lightgbm, very_intermittent -> ma_nonzero). No backtest needed.
- ``auto``: a rolling-origin backtest of the candidate methods on the panel it is fitted on picks,
  per demand class (or tier), the method with the lowest mean metric (RMSSE by default: it
  targets the mean, where MAE and MASE reward forecasts of zero) *if* it beats the robust
  ``default`` (the median of the classical methods with the obsolescence decay, ``robust``) by
  ``margin`` with a paired test significant at ``alpha``; otherwise the class keeps the default
  and the reason says so. With ``select_by="item"`` items with at least ``min_history`` demand
  periods before the last origin get their own best method. Items where no method can be scored,
  and every item when the history is too short to backtest, get the ``fallback``. ``top_k > 1``
  serves the mean of the k best methods (named ``mean(a,b)``).

A scikit-learn estimator (``sklearn.base.BaseEstimator``: ``get_params``, ``set_params``,
``clone``): the constructor stores parameters unchanged, ``fit(panel, h)`` validates them and
chooses (``selection_``: unique_id, method, reason), ``predict(panel, h)`` forecasts with the
chosen methods.
Registered as the panel method ``"hybrid"`` when this module is imported (``import sparecast``
does): backtested as a method, each window's router is fitted on that window's training part
only (a nested backtest), so its score is honest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from sparecast.classify import TIERS, TierThresholds, as_thresholds, classify
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError, MethodError
from sparecast.evaluate.backtest import BacktestResult, backtest, windows_that_fit
from sparecast.evaluate.metrics import metric_names
from sparecast.methods import (
    DEFAULT_METHODS,
    Method,
    forecast_panel,
    get_method,
    params_for,
    register_method,
    shared_levels,
)
from sparecast.methods.combine import combination_members, combine
from sparecast.selection.choose import BALANCED, DEFAULT_ALPHA, DEFAULT_MARGIN, select

__all__ = [
    "HybridRouter",
    "ROUTER_MODES",
    "ROUTER_METRICS",
    "DEFAULT_RULES",
    "DEFAULT_CANDIDATES",
    "DEFAULT_METRIC",
    "DEFAULT_MODE",
    "DEFAULT_SELECT_BY",
    "DEFAULT_MIN_HISTORY",
    "DEFAULT_TOP_K",
    "DEFAULT_FALLBACK",
    "DEFAULT_STOCKOUT_WEIGHT",
    "DEFAULT_ROBUST",
    "DEFAULT_MARGIN",
    "DEFAULT_ALPHA",
    "SELECT_BY",
    "hybrid_forecast",
]

ROUTER_MODES: tuple[str, ...] = ("auto", "rules")
# the metrics registered with router=True (sparecast.evaluate.metrics.METRICS) and the balanced rank
ROUTER_METRICS: tuple[str, ...] = (*metric_names(router=True), BALANCED)
SELECT_BY: tuple[str, ...] = ("class", "tier", "item")
DEFAULT_RULES: dict[str, str] = {
    "high_volume": "xgboost",
    "regular": "xgboost",
    "intermittent": "lightgbm",
    "very_intermittent": "ma_nonzero",
}
# The classical methods (the robust combination among them) and the global LightGBM.
DEFAULT_CANDIDATES: tuple[str, ...] = (*DEFAULT_METHODS, "lightgbm")
# The router's defaults (HybridRouter and the config's [router] section both use them).
DEFAULT_MODE: Final = "auto"
# RMSSE targets the mean (MAE and MASE are minimised by the median, 0 for most intermittent items)
DEFAULT_METRIC: Final = "rmsse"
DEFAULT_SELECT_BY: Final = "class"
DEFAULT_MIN_HISTORY: Final = 10
DEFAULT_TOP_K: Final = 1
# the robust default a class keeps unless a method is significantly better (benchmarks/accuracy.py)
DEFAULT_ROBUST: Final = "robust"
DEFAULT_FALLBACK: Final = "robust"
DEFAULT_STOCKOUT_WEIGHT: Final = 3.0


def _check_names(names: Iterable[str], what: str) -> list[str]:
    out = list(dict.fromkeys(names))
    for name in out:
        if name == "hybrid":
            raise ConfigError(f"router {what} cannot contain 'hybrid' itself")
        get_method(name)  # MethodError listing the valid names
    return out


class HybridRouter(BaseEstimator):
    """Routes every item to a forecasting method (or the mean of several) and says why.

    Parameters (validated in ``fit``): ``mode`` "auto" | "rules"; ``candidates`` methods the auto
    mode chooses from (default: the classical methods and lightgbm); ``rules`` tier -> method for
    the rules mode (missing tiers take DEFAULT_RULES'); ``metric`` of the choice (mase+asym by
    default, mase, rmsse, mae, rmse, asym); ``select_by`` "class" | "tier" | "item"; ``min_history``
    demand periods an item needs for its own choice (select_by="item"); ``top_k`` best methods
    averaged (at most as many as were scored, default 2);
    ``fallback`` method where nothing can be scored or the history is too short to backtest;
    ``default`` the robust default a class keeps unless a candidate is ``margin`` better with a
    paired test significant at ``alpha`` (applies when it is among the candidates; None: the
    lowest score wins); ``n_windows``, ``step``, ``seasonality`` of the auto mode's
    rolling-origin backtest; ``params`` per-method kernel parameters; ``tiers`` the frequency
    tier thresholds; ``stockout_weight`` of the asym metric.

    Fitted attributes: ``classification_``, ``selection_`` (unique_id, method, reason),
    ``backtest_`` (auto mode, None without a fitting window), ``methods_`` (every method a
    prediction needs), ``item_ids_``, ``notes_``.
    """

    def __init__(
        self,
        mode: str = DEFAULT_MODE,
        *,
        candidates: Sequence[str] | None = None,
        rules: dict[str, str] | None = None,
        metric: str = DEFAULT_METRIC,
        select_by: str = DEFAULT_SELECT_BY,
        min_history: int = DEFAULT_MIN_HISTORY,
        top_k: int = DEFAULT_TOP_K,
        fallback: str = DEFAULT_FALLBACK,
        n_windows: int = 3,
        step: int | None = None,
        seasonality: int = 1,
        params: dict[str, dict[str, Any]] | None = None,
        tiers: TierThresholds | None = None,
        stockout_weight: float = DEFAULT_STOCKOUT_WEIGHT,
        default: str | None = DEFAULT_ROBUST,
        margin: float = DEFAULT_MARGIN,
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        self.mode = mode
        self.candidates = candidates
        self.rules = rules
        self.metric = metric
        self.select_by = select_by
        self.min_history = min_history
        self.top_k = top_k
        self.fallback = fallback
        self.n_windows = n_windows
        self.step = step
        self.seasonality = seasonality
        self.params = params
        self.tiers = tiers
        self.stockout_weight = stockout_weight
        self.default = default
        self.margin = margin
        self.alpha = alpha

    # ------------------------------------------------------------------ parameters
    def validate_params(self) -> None:
        """Check every parameter once (ConfigError or MethodError naming it); fit calls it."""
        if self.mode not in ROUTER_MODES:
            raise ConfigError(f"router mode must be one of {ROUTER_MODES}, got {self.mode!r}")
        if self.metric not in ROUTER_METRICS:
            raise ConfigError(f"router metric must be one of {ROUTER_METRICS}, got {self.metric!r}")
        if self.select_by not in SELECT_BY:
            raise ConfigError(
                f"router select_by must be one of {SELECT_BY}, got {self.select_by!r}"
            )
        for name in ("min_history", "top_k", "n_windows", "seasonality"):
            value = getattr(self, name)
            low = 0 if name == "min_history" else 1
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"router {name} must be an integer >= {low}, got {value!r}")
        if self.step is not None and (
            not isinstance(self.step, (int, np.integer)) or self.step < 1
        ):
            raise ConfigError(f"router step must be an integer >= 1 or None, got {self.step!r}")
        _check_names([self.fallback], "fallback")
        if self.default is not None:
            _check_names([self.default], "default")
        if not isinstance(self.margin, (int, float)) or not 0 <= self.margin < 1:
            raise ConfigError(f"router margin must be in [0, 1), got {self.margin!r}")
        if not isinstance(self.alpha, (int, float)) or not 0 < self.alpha <= 1:
            raise ConfigError(f"router alpha must be in (0, 1], got {self.alpha!r}")
        if self.mode == "auto":
            cands = self.candidate_names()
            if not cands:
                raise ConfigError("router candidates must not be empty")
        else:
            self.rule_map()

    def candidate_names(self) -> list[str]:
        """The auto mode's candidate methods, validated, in order."""
        names = DEFAULT_CANDIDATES if self.candidates is None else self.candidates
        return _check_names(names, "candidates")

    def rule_map(self) -> dict[str, str]:
        """Tier -> method of the rules mode (DEFAULT_RULES completed by ``rules``), validated."""
        rules = dict(self.rules or {})
        unknown = [t for t in rules if t not in TIERS]
        if unknown:
            raise ConfigError(f"router rules: unknown tier(s) {unknown}; known: {', '.join(TIERS)}")
        merged = {**DEFAULT_RULES, **rules}
        _check_names(merged.values(), "rules")
        return merged

    def backtest_methods(self) -> list[str]:
        """Methods the auto mode backtests: the candidates and the fallback."""
        names = self.candidate_names()
        return names if self.fallback in names else [*names, self.fallback]

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        panel: DemandPanel,
        h: int,
        *,
        classification: pl.DataFrame | None = None,
        backtest_result: BacktestResult | None = None,
    ) -> HybridRouter:
        """Choose a method (or combination) per item of ``panel`` for horizon ``h``.

        ``classification`` (from :func:`sparecast.classify.classify`) and ``backtest_result`` (a
        backtest of at least :meth:`backtest_methods` on this panel) are computed when not given;
        the pipeline passes its own to avoid doing the work twice."""
        self.validate_params()
        if h < 1:
            raise MethodError(f"horizon h must be >= 1, got {h}")
        self.item_ids_ = np.asarray(panel.item_ids).astype(str)
        self.classification_ = (
            classification
            if classification is not None
            else classify(panel, thresholds=as_thresholds(self.tiers))
        )
        self.backtest_: BacktestResult | None = None
        self.notes_: list[str] = []
        ids = pl.DataFrame({"unique_id": self.item_ids_})
        if self.mode == "rules":
            rules = self.rule_map()
            tiers = ids.join(
                self.classification_.select(pl.col("unique_id").cast(pl.Utf8), "tier"),
                on="unique_id",
                how="left",
                maintain_order="left",
            )
            self.selection_ = tiers.select(
                "unique_id",
                pl.col("tier").replace_strict(rules, default=self.fallback).alias("method"),
                pl.when(pl.col("tier").is_in(list(rules)))
                .then(pl.format("rule: tier {} -> {}", "tier", pl.col("tier").replace(rules)))
                .otherwise(pl.lit(f"fallback {self.fallback}: no tier"))
                .alias("reason"),
            )
        else:
            bt = backtest_result
            if bt is None:
                n_windows = windows_that_fit(
                    panel.n_periods, h, self.n_windows, self.step, self.seasonality
                )
                if n_windows > 0:
                    bt = backtest(
                        panel,
                        h=h,
                        methods=self.backtest_methods(),
                        n_windows=n_windows,
                        step=self.step,
                        params=self._params(self.backtest_methods()),
                        seasonality=self.seasonality,
                        percentage_items=np.zeros(panel.n_items, dtype=bool),
                        stockout_weight=self.stockout_weight,
                        keep_errors=self.top_k > 1,
                    )
            if bt is None:
                reason = (
                    f"fallback {self.fallback}: history of {panel.n_periods} periods too short "
                    f"to backtest a horizon of {h}"
                )
                self.notes_.append(f"router: {reason}; every item uses {self.fallback}")
                self.selection_ = ids.with_columns(
                    pl.lit(self.fallback).alias("method"), pl.lit(reason).alias("reason")
                )
            else:
                missing = [m for m in self.backtest_methods() if m not in bt.methods]
                if missing:
                    raise MethodError(
                        f"the backtest given to the router lacks the candidate(s) {missing}"
                    )
                self.backtest_ = bt
                # choose among the candidates only: the fallback is backtested (it must have a
                # score to fall back to) but competes only when it is a candidate itself
                cands = self.candidate_names()
                # (the references are left out here already: select copies no scores again)
                among = dataclasses.replace(
                    bt,
                    scores=bt.scores.filter(pl.col("method").is_in(cands)),
                    methods=[m for m in bt.methods if m in cands],
                    references=tuple(r for r in bt.references if r in cands),
                )
                self.selection_ = select(
                    among,
                    self.classification_,
                    by=self.select_by,  # type: ignore[arg-type]
                    metric=self.metric,
                    fallback=self.fallback,
                    top_k=self.top_k,
                    min_history=self.min_history if self.select_by == "item" else 0,
                    # the robust default applies when it is a candidate (--methods sba: sba)
                    default=self.default if self.default in cands else None,
                    margin=self.margin,
                    alpha=self.alpha,
                )
        used = self.selection_["method"].unique(maintain_order=True).to_list()
        self.methods_ = list(dict.fromkeys(m for name in used for m in combination_members(name)))
        return self

    def _params(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in (self.params or {}).items() if k in set(names)}

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        panel: DemandPanel,
        h: int,
        *,
        forecasts: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Point forecasts ``float64[items, h]``, rows in panel order: each item's chosen method,
        or the mean of its chosen methods. Items the router was not fitted on get the fallback
        (and a note in ``notes_``). ``forecasts`` (method -> ``[items, h]`` on this panel) are
        used where given; the other needed methods are run on the whole panel (global models see
        every item)."""
        if not hasattr(self, "selection_"):
            raise MethodError("the router is not fitted; call fit(panel, h) first")
        ids = np.asarray(panel.item_ids).astype(str)
        if np.array_equal(ids, self.item_ids_):
            chosen = self.selection_["method"].to_numpy()
        else:
            chosen = (
                pl.DataFrame({"unique_id": ids})
                .join(self.selection_, on="unique_id", how="left", maintain_order="left")["method"]
                .fill_null(self.fallback)
                .to_numpy()
            )
            unseen = int((~np.isin(ids, self.item_ids_)).sum())
            if unseen:
                self.notes_.append(
                    f"router: {unseen} item(s) the router was not fitted on get the fallback "
                    f"{self.fallback}"
                )
        # the methods these items need, in the order of methods_ (the fallback last)
        used = {m for name in np.unique(chosen) for m in combination_members(str(name))}
        candidates = [*self.methods_, *combination_members(self.fallback)]
        needed = [m for m in dict.fromkeys(candidates) if m in used]
        values = dict(forecasts or {})
        params = params_for(panel.freq, needed, self._params(needed))
        with shared_levels(panel.y, needed):  # e.g. robust reuses its members' levels
            for name in needed:
                if name not in values:
                    values[name] = forecast_panel(panel, h, name, params.get(name))
                if values[name].shape != (panel.n_items, h):
                    raise MethodError(
                        f"forecasts[{name!r}] has shape {values[name].shape}, "
                        f"expected {(panel.n_items, h)}"
                    )
        out = np.zeros((panel.n_items, h))
        for name in np.unique(chosen):
            rows = chosen == name
            members = combination_members(str(name))
            out[rows] = combine(str(name), {m: values[m][rows] for m in members})
        return out

    def reroute(self, failed: dict[str, str]) -> int:
        """Serve the fallback to the items whose chosen method(s) include one of ``failed``
        (method -> why it could not forecast, e.g. too short a history for LightGBM); returns
        how many items moved. The fallback itself must not be among them."""
        if not hasattr(self, "selection_"):
            raise MethodError("the router is not fitted; call fit(panel, h) first")
        if self.fallback in failed:
            raise MethodError(
                f"the fallback method {self.fallback!r} cannot forecast: {failed[self.fallback]}"
            )
        methods = self.selection_["method"].to_list()
        hit = [
            next((m for m in combination_members(name) if m in failed), None) for name in methods
        ]
        moved = sum(m is not None for m in hit)
        if moved:
            reasons = [
                f"fallback {self.fallback}: {m} cannot forecast this panel ({failed[m]})"
                if m is not None
                else r
                for m, r in zip(hit, self.selection_["reason"].to_list(), strict=True)
            ]
            self.selection_ = self.selection_.with_columns(
                pl.Series(
                    "method", [self.fallback if m else n for m, n in zip(hit, methods, strict=True)]
                ),
                pl.Series("reason", reasons),
            )
            used = self.selection_["method"].unique(maintain_order=True).to_list()
            self.methods_ = list(
                dict.fromkeys(m for name in used for m in combination_members(name))
            )
            self.notes_.append(
                f"router: {moved} item(s) moved to the fallback {self.fallback}: "
                + "; ".join(f"{m}: {why}" for m, why in failed.items())
            )
        return moved

    def fit_predict(self, panel: DemandPanel, h: int) -> np.ndarray:
        """``fit(panel, h)`` then ``predict(panel, h)``."""
        return self.fit(panel, h).predict(panel, h)


def hybrid_forecast(panel: DemandPanel, h: int, **params: Any) -> np.ndarray:
    """Kernel of the registered method ``"hybrid"``: a HybridRouter with ``params`` fitted on
    ``panel`` (in a backtest: only the window's training part) and its forecasts. ``tiers`` may
    be a TierThresholds or a mapping of its fields (a TOML table)."""
    return HybridRouter(**params).fit_predict(panel, h)


# The hybrid router as a method: routes each item to a method chosen by tier rules or by a
# backtest on the panel it is given (in a backtest: the window's training part only). Not a
# default method: it runs the others.
register_method(
    Method(
        "hybrid",
        hybrid_forecast,
        "hybrid router: per item the method chosen by tier rules or by a nested backtest",
        needs_panel=True,
    )
)
