"""What a forecast read asks for: the served run, the horizon and quantile levels checked
against it. Shared by the forecast routes and the cached-read middleware
(``cached_reads.ItemForecastFastPath``), so both answer a request the same way."""

from __future__ import annotations

import math

from fastapi import HTTPException, Request

from sparecast.core import HorizonSpec, check_horizon, horizon_periods, horizon_text
from sparecast.errors import ConfigError
from sparecast.service.errors import NoRun
from sparecast.service.state import ServiceState
from sparecast.store import RunInfo

__all__ = [
    "FAST_PATH_MISS",
    "served_run",
    "checked_horizon",
    "checked_levels",
    "single_valued",
    "unprocessable",
]

FAST_PATH_MISS = "sparecast.fast_path_miss"
"""ASGI scope key: the cache key the middleware looked up and missed (the route counts the miss
and does not look again)."""


def unprocessable(loc: list[str | int], message: str) -> HTTPException:
    """A 422 in FastAPI's own validation-error shape, naming the field."""
    return HTTPException(
        422,
        detail=[{"loc": loc, "msg": message, "type": "value_error"}],
    )


def single_valued(request: Request, *names: str) -> None:
    """422 naming the query parameter when one of ``names`` is given more than once
    (``?horizon=3&horizon=5``), instead of silently taking the last value."""
    for name in names:
        if len(request.query_params.getlist(name)) > 1:
            raise unprocessable(
                ["query", name], f"query parameter {name} given more than once; give it once"
            )


def served_run(state: ServiceState) -> RunInfo:
    """The run being served; raises NoRun (503) naming why there is none."""
    run = state.run
    if run is None:
        raise NoRun(state.no_run_message())
    return run


def checked_horizon(
    state: ServiceState, run: RunInfo, horizon: HorizonSpec, loc: list[str | int]
) -> int | None:
    """The requested horizon in the run's periods, None meaning all of them (shares the cache
    entry). ``horizon``: periods or a duration (``90d``, ``13w``, ``6mo``, ``1y``) converted with
    the run's frequency and last date, rounded up (``sparecast.core.horizon_periods``)."""
    if horizon is None:  # the configured default, capped at what the run has
        default = state.settings.service.default_horizon
        if default is None:
            return None
        d = horizon_periods(default, run.freq, run.data_end)
        return None if d >= run.horizon else d
    try:
        h = horizon_periods(check_horizon(horizon), run.freq, run.data_end)
    except ConfigError as exc:
        raise unprocessable(loc, str(exc)) from None
    asked = str(horizon).strip()
    shown = f"{h}" if asked == str(h) else f"{asked} = {horizon_text(h, run.freq)}"
    limit = state.settings.max_horizon
    if h > limit:
        raise unprocessable(
            loc, f"horizon {shown} is above the limit max_horizon={limit}; ask for at most {limit}"
        )
    if h > run.horizon:
        raise unprocessable(
            loc,
            f"horizon {shown} is longer than the {horizon_text(run.horizon, run.freq)} run "
            f"{run.run_id} forecast",
        )
    return None if h == run.horizon else h


def checked_levels(
    run: RunInfo, quantiles: list[float] | None, loc: list[str | int]
) -> list[float] | None:
    """Requested quantile levels (percent), sorted and unique; checked against the run's."""
    if quantiles is None:
        return None
    levels = sorted(set(quantiles))
    for q in levels:
        if not math.isfinite(q) or not 0 < q < 100:
            raise unprocessable(loc, f"quantile level {q} is not a percent in (0, 100)")
    have = set(run.quantile_levels)
    absent = [q for q in levels if q not in have]
    if absent:
        available = ", ".join(f"{q:g}" for q in run.quantile_levels) or "none"
        raise unprocessable(
            loc,
            f"quantile level(s) {', '.join(f'{q:g}' for q in absent)} not in run "
            f"{run.run_id}; available: {available}",
        )
    return levels
