"""The method registry: one name per forecasting method, the same in the CLI, config and outputs.

A classical method is a kernel ``f(y[items, periods], h, **params) -> float64[items, h]``.
Panel methods (global ML models, the hybrid router) have ``needs_panel=True`` so that they receive
the whole DemandPanel (dates, attributes) instead of the bare matrix. A method may also register a
``backtest_kernel`` that forecasts every backtest window from fewer fits than one per window (the
global models: one fit before the earliest origin, :func:`backtest_forecasts`). The hybrid router
lives in the layer above (``sparecast.selection``, which uses the backtest) and registers itself
with :func:`register_method` when that package is imported (``import sparecast`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.methods import baseline, intermittent, ml, robust
from sparecast.methods._work import available_cores, kernel_threads, set_threads, shared_levels

__all__ = [
    "Method",
    "METHODS",
    "DEFAULT_METHODS",
    "get_method",
    "register_method",
    "resolve_methods",
    "forecast_matrix",
    "forecast_panel",
    "backtest_forecasts",
    "available_cores",
    "kernel_threads",
    "set_threads",
    "shared_levels",
]


@dataclass(frozen=True)
class Method:
    """A registered forecasting method."""

    name: str
    kernel: Callable[..., np.ndarray]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    needs_panel: bool = False
    backtest_kernel: Callable[..., list[np.ndarray]] | None = None
    """Optional, panel methods: ``backtest_kernel(panel, h, origins, **params)`` returns the
    forecasts ``[items, h]`` from every origin (first forecast period) of a rolling-origin
    backtest, e.g. from one model fitted before the earliest origin. The contract: nothing at
    or after an origin (``panel.y[:, origin:]``) may reach that origin's forecast. The backtest
    uses it when present (:func:`backtest_forecasts`); without it the kernel runs once per
    origin on ``panel.slice_periods(origin)``."""


def _register(*methods: Method) -> dict[str, Method]:
    return {m.name: m for m in methods}


METHODS: dict[str, Method] = _register(
    Method("zero", baseline.zero, "zero forecast: the floor every method must beat"),
    Method("naive", baseline.naive, "last observed value"),
    Method(
        "seasonal_naive",
        baseline.seasonal_naive,
        "value of the same period one season ago",
        {"season_length": 7},
    ),
    Method(
        "ma",
        baseline.moving_average,
        "moving average of the last `window` periods",
        {"window": baseline.MA_WINDOW},
    ),
    Method("ses", baseline.ses, "simple exponential smoothing", {"alpha": 0.1}),
    Method(
        "croston",
        intermittent.croston,
        "Croston's method (sizes and intervals smoothed with alpha)",
        {"alpha": 0.1},
    ),
    Method(
        "sba",
        intermittent.sba,
        "Syntetos-Boylan approximation: Croston x (1 - alpha/2)",
        {"alpha": 0.1},
    ),
    Method(
        "croston_optimized",
        intermittent.croston_optimized,
        "Croston with alphas optimised per item in [0.1, 0.3]",
    ),
    Method(
        "tsb",
        intermittent.tsb,
        "Teunter-Syntetos-Babai: demand probability and size smoothed, alphas optimised per item",
    ),
    Method(
        "adida",
        intermittent.adida,
        "aggregate-disaggregate intermittent demand approach (SES on temporal aggregates)",
    ),
    Method(
        "imapa",
        intermittent.imapa,
        "intermittent multiple aggregation prediction algorithm (mean over aggregation levels)",
    ),
    Method(
        "mapa",
        intermittent.mapa,
        "MAPA-style: mean of optimised SES over aggregation levels 1..max_level",
        {"max_level": 12},
    ),
    Method(
        "ma_nonzero",
        intermittent.ma_nonzero,
        "moving average of non-zero demand sizes x demand rate",
        {"window": intermittent.MA_NONZERO_WINDOW},
    ),
    Method(
        "combo_median",
        robust.combo_median,
        "median of SES, SBA, TSB, ADIDA and IMAPA (optional obsolescence decay)",
        {"decay": 0.0},
    ),
    Method(
        "combo_trimmed",
        robust.combo_trimmed,
        "trimmed mean of SES, SBA, TSB, ADIDA and IMAPA (lowest and highest left out)",
        {"decay": 0.0},
    ),
    Method(
        "robust",
        robust.robust,
        "median of SES, SBA, TSB, ADIDA and IMAPA, decayed after an unusually long silence",
        {"decay": robust.DEFAULT_DECAY},
    ),
    Method(
        "lightgbm",
        ml.lightgbm_forecast,
        "global LightGBM over all items (Tweedie, direct multi-step), see methods/ml.py",
        {"objective": "tweedie", "strategy": "direct"},
        needs_panel=True,
        backtest_kernel=ml.lightgbm_backtest,
    ),
    Method(
        "xgboost",
        ml.xgboost_forecast,
        "XGBoost pooled over the high-volume and regular items (others: the same model)",
        {"objective": "tweedie", "strategy": "direct", "mode": "pooled"},
        needs_panel=True,
        backtest_kernel=ml.xgboost_backtest,
    ),
)


def register_method(method: Method) -> None:
    """Add ``method`` to the registry (a layer above ``methods`` registers its panel methods
    this way, e.g. the hybrid router); a MethodError when the name is taken by another one."""
    known = METHODS.get(method.name)
    if known is not None and known != method:
        raise MethodError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method


DEFAULT_METHODS: tuple[str, ...] = (
    "naive",
    "seasonal_naive",
    "ma",
    "ses",
    "croston",
    "sba",
    "croston_optimized",
    "tsb",
    "adida",
    "imapa",
    "ma_nonzero",
    "robust",
)


# Parameters that depend on the period length: a season is 7 days, 52 weeks or 12 months, and the
# moving-average baseline covers about four weeks of daily data, a quarter of weekly data and a
# year of monthly data. User parameters override these.
FREQ_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "D": {
        "seasonal_naive": {"season_length": 7},
        "ma": {"window": baseline.MA_WINDOW},
        "mapa": {"max_level": 28},
    },
    "W": {"seasonal_naive": {"season_length": 52}, "ma": {"window": 13}, "mapa": {"max_level": 13}},
    "M": {"seasonal_naive": {"season_length": 12}, "ma": {"window": 12}, "mapa": {"max_level": 12}},
}


def params_for(
    freq: str, names: Iterable[str], params: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Kernel parameters of each method in ``names`` for a panel of frequency ``freq``: the
    frequency's defaults (FREQ_DEFAULTS) overridden by ``params``."""
    params = params or {}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        merged = {**FREQ_DEFAULTS.get(freq, {}).get(name, {}), **params.get(name, {})}
        if merged:
            out[name] = merged
    return out


def get_method(name: str) -> Method:
    """The registered method called ``name``; a MethodError lists the valid names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise MethodError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}") from None


def resolve_methods(names: Iterable[str] | None) -> list[Method]:
    """Registered methods for ``names`` (all defaults when None), duplicates removed, order kept."""
    names = DEFAULT_METHODS if names is None else list(dict.fromkeys(names))
    if not names:
        raise MethodError("no method given; pass at least one of: " + ", ".join(METHODS))
    return [get_method(n) for n in names]


def _run_kernel(m: Method, data: Any, h: int, params: dict[str, Any] | None) -> np.ndarray:
    """``m.kernel(data, h, **params)`` over the method's defaults, as float64: the horizon check
    and the parameter merge of both entry points; a kernel's TypeError (an unknown or missing
    parameter) becomes a MethodError naming the method."""
    if h < 1:
        raise MethodError(f"horizon h must be >= 1, got {h}")
    kwargs = {**m.defaults, **(params or {})}
    try:
        return np.asarray(m.kernel(data, h, **kwargs), dtype=np.float64)
    except TypeError as exc:
        raise MethodError(f"bad parameters {kwargs} for method {m.name!r}: {exc}") from exc


def forecast_matrix(
    y: np.ndarray, h: int, method: str | Method, params: dict[str, Any] | None = None
) -> np.ndarray:
    """Point forecasts ``float64[items, h]`` of one classical method for every row of ``y``."""
    m = get_method(method) if isinstance(method, str) else method
    if m.needs_panel:
        raise MethodError(f"method {m.name!r} needs a DemandPanel; call sparecast.forecast instead")
    out = _run_kernel(m, y, h, params)
    # Demand forecasts are never negative (net returns can push a kernel below zero).
    return np.maximum(out, 0.0)


def forecast_panel(
    panel: DemandPanel, h: int, method: str | Method, params: dict[str, Any] | None = None
) -> np.ndarray:
    """Point forecasts ``float64[items, h]`` of any registered method, rows in panel order.

    A classical method gets ``panel.y``; a panel method (``needs_panel``: global ML models, the
    hybrid router) gets the whole panel, ``kernel(panel, h, **params)``, so that it can use the
    dates and item attributes. Forecasts are clipped at zero either way."""
    m = get_method(method) if isinstance(method, str) else method
    if not m.needs_panel:
        return forecast_matrix(panel.y, h, m, params)
    out = _run_kernel(m, panel, h, params)
    if out.shape != (panel.n_items, h):
        raise MethodError(
            f"method {m.name!r} returned shape {out.shape}, expected {(panel.n_items, h)}"
        )
    return np.maximum(out, 0.0)


def backtest_forecasts(
    panel: DemandPanel,
    h: int,
    origins: list[int],
    method: str | Method,
    params: dict[str, Any] | None = None,
    *,
    reuse_fits: bool = True,
) -> list[np.ndarray]:
    """Point forecasts ``float64[items, h]`` of ``method`` from each origin of a rolling-origin
    backtest, as if forecast from ``panel.slice_periods(origin)``: through the method's
    ``backtest_kernel`` when it has one (and ``reuse_fits``), else one forecast per origin.
    Clipped at zero like :func:`forecast_panel`."""
    m = get_method(method) if isinstance(method, str) else method
    if m.backtest_kernel is None or not reuse_fits:
        return [forecast_panel(panel.slice_periods(o), h, m, params) for o in origins]
    if h < 1:
        raise MethodError(f"horizon h must be >= 1, got {h}")
    kwargs = {**m.defaults, **(params or {})}
    try:
        out = m.backtest_kernel(panel, h, list(origins), **kwargs)
    except TypeError as exc:
        raise MethodError(f"bad parameters {kwargs} for method {m.name!r}: {exc}") from exc
    if len(out) != len(origins):
        raise MethodError(
            f"method {m.name!r} returned {len(out)} backtest forecasts for {len(origins)} origins"
        )
    fcs = [np.maximum(np.asarray(fc, dtype=np.float64), 0.0) for fc in out]
    for fc in fcs:
        if fc.shape != (panel.n_items, h):
            raise MethodError(
                f"method {m.name!r} returned shape {fc.shape}, expected {(panel.n_items, h)}"
            )
    return fcs
