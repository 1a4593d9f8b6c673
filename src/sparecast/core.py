"""The library entry point ``forecast``: every requested method over a whole DemandPanel."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl

from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError
from sparecast.methods import forecast_panel, params_for, resolve_methods

__all__ = ["MAX_HORIZON", "forecast", "forecast_arrays", "forecasts_to_frame"]

MAX_HORIZON = 3660
"""Largest ``h`` ``forecast`` accepts by default (ten years of days): the result takes
items x h x 8 bytes per method, so an absurd ``h`` is refused before anything is allocated.
Also the default of the ``max_horizon`` setting."""


def forecast_arrays(
    panel: DemandPanel,
    h: int = 28,
    methods: Iterable[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Point forecasts ``float64[items, h]`` per method name, rows in ``panel.item_ids`` order.

    ``params`` override the frequency's defaults (``sparecast.methods.FREQ_DEFAULTS``)."""
    resolved = resolve_methods(methods)
    params = params_for(panel.freq, [m.name for m in resolved], params)
    out: dict[str, np.ndarray] = {}
    for method in resolved:
        out[method.name] = forecast_panel(panel, h, method, params.get(method.name))
        if progress is not None:
            progress(method.name)
    return out


def forecasts_to_frame(panel: DemandPanel, values: dict[str, np.ndarray], h: int) -> pl.DataFrame:
    """Long frame ``unique_id, ds, <method>...`` from per-method ``[items, h]`` arrays."""
    dates = panel.future_dates(h)
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat(panel.item_ids.astype(str), h),
            "ds": np.tile(dates, panel.n_items),
        }
    )
    return frame.with_columns(
        [pl.Series(name, arr.reshape(-1).astype(np.float64)) for name, arr in values.items()]
    )


def forecast(
    panel: DemandPanel,
    h: int = 28,
    methods: Iterable[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    output: Literal["pandas", "polars"] = "pandas",
    max_horizon: int = MAX_HORIZON,
) -> pd.DataFrame | pl.DataFrame:
    """Forecast every item of ``panel`` ``h`` periods ahead with each method.

    Returns ``unique_id, ds`` and one column per method, like statsforecast's ``forecast``.
    ``params`` maps a method name to its kernel parameters, e.g. ``{"ma": {"window": 7}}``;
    without them the defaults follow the panel's frequency (MA(28) and a 7-day season for daily
    data, MA(13)/52 weeks for weekly, MA(12)/12 months for monthly). An ``h`` above
    ``max_horizon`` (default ``MAX_HORIZON``, 3660 periods) raises ConfigError at once.
    """
    if h > max_horizon:
        raise ConfigError(
            f"horizon h={h} exceeds max_horizon={max_horizon} periods (the forecast takes "
            "items x h x 8 bytes per method); ask for a shorter horizon or pass "
            "forecast(..., max_horizon=N)"
        )
    frame = forecasts_to_frame(panel, forecast_arrays(panel, h, methods, params), h)
    return frame.to_pandas() if output == "pandas" else frame
