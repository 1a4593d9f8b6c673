"""The library entry point ``forecast``: every requested method over a whole DemandPanel."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import date
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl

from sparecast.data.panel import DemandPanel, Freq, period_starts
from sparecast.errors import ConfigError
from sparecast.methods import forecast_panel, params_for, resolve_methods, shared_levels

__all__ = [
    "MAX_HORIZON",
    "DEFAULT_HORIZONS",
    "PERIOD_UNITS",
    "HorizonSpec",
    "check_horizon",
    "horizon_periods",
    "panel_horizon",
    "horizon_text",
    "forecast",
    "forecast_arrays",
    "forecasts_to_frame",
]

MAX_HORIZON = 3660
"""Largest ``h`` ``forecast`` accepts by default (ten years of days): the result takes
items x h x 8 bytes per method, so an absurd ``h`` is refused before anything is allocated.
Also the default of the ``max_horizon`` setting."""

DEFAULT_HORIZONS: dict[str, int] = {"D": 28, "W": 13, "M": 6}
"""Periods forecast when no horizon is given, per panel frequency: 28 days, 13 weeks (a
quarter), 6 months. The backtest's step defaults to the horizon, so it follows too."""

PERIOD_UNITS: dict[str, str] = {"D": "days", "W": "weeks", "M": "months"}
"""The unit of one period of each panel frequency, plural."""

HorizonSpec = int | str | None
"""A horizon as a user gives it: periods (``28`` or ``"28"``), a duration (``"90d"``, ``"13w"``,
``"6mo"``, ``"1y"``) or None (the frequency's default, ``DEFAULT_HORIZONS``)."""

HORIZON_FORMAT = "horizon must be a number of periods or a duration like 90d, 13w, 6mo, 1y"

_DURATION = re.compile(r"\s*([0-9]{1,9})\s*([a-z]*)\s*", re.IGNORECASE)
_UNITS = {
    "": "",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "wk": "w",
    "week": "w",
    "weeks": "w",
    "mo": "mo",
    "mon": "mo",
    "month": "mo",
    "months": "mo",
    "y": "y",
    "yr": "y",
    "year": "y",
    "years": "y",
}
# The mean Gregorian month and year (400 years = 146,097 days = 4,800 months), exact.
_MONTH_DAYS = Fraction(146_097, 4_800)
_DAYS_PER_PERIOD = {"D": Fraction(1), "W": Fraction(7), "M": _MONTH_DAYS}


def _parsed(spec: HorizonSpec) -> tuple[int, str] | None:
    """``(count, unit)`` of a horizon, unit ``""`` for periods, ``d``/``w``/``mo``/``y`` for a
    duration; None for None. Raises ConfigError with HORIZON_FORMAT for anything else."""
    if spec is None:
        return None
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise ConfigError(f"{HORIZON_FORMAT}, got {spec!r}")
    if isinstance(spec, int):
        count, unit = spec, ""
    else:
        match = _DURATION.fullmatch(spec)
        word = match.group(2).lower() if match else ""
        if match is None or word not in _UNITS:
            hint = " (months are mo: 6mo)" if word in ("m", "ms") else ""
            raise ConfigError(f"{HORIZON_FORMAT}, got {spec!r}{hint}")
        count, unit = int(match.group(1)), _UNITS[word]
    if count < 1:
        raise ConfigError(f"horizon must be at least 1 period, got {spec!r}")
    return count, unit


def check_horizon(spec: HorizonSpec) -> int | str | None:
    """``spec`` checked and normalised: None, a number of periods as an int (``"28"`` -> 28),
    or a duration in its short form (``"6 months"`` -> ``"6mo"``). Raises ConfigError
    ("horizon must be a number of periods or a duration like 90d, 13w, 6mo, 1y, got ...")."""
    parsed = _parsed(spec)
    if parsed is None:
        return None
    count, unit = parsed
    return count if unit == "" else f"{count}{unit}"


def _add_months(day: np.datetime64, n: int) -> np.datetime64:
    """``day`` plus ``n`` calendar months, the day of month clamped to the target month's end
    (Jan 31 + 1 month = Feb 28/29)."""
    month = day.astype("datetime64[M]")
    dom = int((day - month.astype("datetime64[D]")).astype(np.int64))
    target = month + np.timedelta64(n, "M")
    length = int(
        (
            (target + np.timedelta64(1, "M")).astype("datetime64[D]")
            - target.astype("datetime64[D]")
        ).astype(np.int64)
    )
    return target.astype("datetime64[D]") + np.timedelta64(min(dom, length - 1), "D")


def horizon_periods(
    spec: HorizonSpec, freq: str, last_date: date | np.datetime64 | str | None = None
) -> int:
    """Periods of frequency ``freq`` ("D", "W", "M") a horizon asks for.

    ``spec``: None (the frequency's default: 28 days, 13 weeks, 6 months, ``DEFAULT_HORIZONS``),
    a number of periods (``6``, ``"6"``) or a duration (``"90d"``, ``"13w"``, ``"6mo"``,
    ``"1y"``; also ``days``, ``weeks``, ``months``, ``years`` spelled out). A duration becomes
    the fewest periods that cover it (rounded up), counted from the first forecast period:

    - days and weeks: ``90d`` on weekly data = ceil(90/7) = 13 weeks; on monthly data a month
      is the mean Gregorian month, 365.2425/12 = 30.436875 days: ``13w`` = ceil(2.99) = 3
      months, whatever the calendar (a short February adds no month);
    - months and years on monthly data: ``1y`` = 12 months;
    - months and years on daily or weekly data: the calendar months after ``last_date`` (the
      start of the panel's last period): ``6mo`` on daily data ending 2026-10-31 = the 181
      days of November to April; without ``last_date``, mean months: ``6mo`` = ceil(182.6) =
      183 days.

    Raises ConfigError for anything else ("horizon must be a number of periods or a duration
    like 90d, 13w, 6mo, 1y") or an unknown ``freq``. The caller checks ``max_horizon``.
    """
    if freq not in DEFAULT_HORIZONS:
        raise ConfigError(f"freq must be one of {', '.join(DEFAULT_HORIZONS)}, got {freq!r}")
    parsed = _parsed(spec)
    if parsed is None:
        return DEFAULT_HORIZONS[freq]
    count, unit = parsed
    if unit == "":
        return count
    months = {"mo": count, "y": 12 * count}.get(unit)
    if freq == "M" and months is not None:
        return months
    if months is None:  # days or weeks: on monthly data a month is the mean month
        days = Fraction(count * (7 if unit == "w" else 1))
        return math.ceil(days / _DAYS_PER_PERIOD[freq])
    # months or years on daily or weekly data
    if last_date is None:
        covered = months * _MONTH_DAYS
    else:
        first = _first_forecast_day(last_date, freq)
        covered = Fraction(int((_add_months(first, months) - first).astype(np.int64)))
    return math.ceil(covered / _DAYS_PER_PERIOD[freq])


def _first_forecast_day(last_date: date | np.datetime64 | str, freq: str) -> np.datetime64:
    """The first day of the period after the one starting on ``last_date``."""
    try:
        last = np.array([last_date], dtype="datetime64[D]")[0]
    except ValueError:
        raise ConfigError(f"last_date must be a date, got {last_date!r}") from None
    kind: Freq = "D" if freq == "D" else "W" if freq == "W" else "M"
    return np.datetime64(period_starts(last, 2, kind)[1], "D")


def panel_horizon(
    spec: HorizonSpec,
    panel: DemandPanel,
    max_horizon: int = MAX_HORIZON,
    *,
    fix: str = "ask for a shorter horizon, or raise max_horizon (max_horizon = N in the config "
    "file or SPARECAST_MAX_HORIZON=N)",
) -> int:
    """:func:`horizon_periods` of ``spec`` for ``panel`` (its frequency and last date), checked
    against ``max_horizon``: above it a ConfigError naming both and ``fix``, before anything is
    allocated (the forecast takes items x h x 8 bytes per method)."""
    last = panel.end if panel.n_periods else None
    periods = horizon_periods(spec, panel.freq, last)
    if periods > max_horizon:
        shown = f"h={spec}" if spec == periods else f"h={spec!r} = {periods}"
        raise ConfigError(
            f"horizon {shown} exceeds max_horizon={max_horizon} periods "
            f"({PERIOD_UNITS[panel.freq]}; the forecast takes items x h x 8 bytes per method); "
            + fix
        )
    return periods


def horizon_text(periods: int, freq: str) -> str:
    """A horizon in periods with its unit, for summaries and notes: ``"6 periods (months)"``,
    ``"1 period (day)"``."""
    unit = PERIOD_UNITS.get(freq, "periods")
    if periods == 1:
        return f"1 period ({unit.removesuffix('s')})"
    return f"{periods} periods ({unit})"


def forecast_arrays(
    panel: DemandPanel,
    h: int = 28,
    methods: Iterable[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Point forecasts ``float64[items, h]`` per method name, rows in ``panel.item_ids`` order.

    ``params`` override the frequency's defaults (``sparecast.methods.FREQ_DEFAULTS``). The
    classical methods share their intermediate levels (``sparecast.methods.shared_levels``:
    Croston's for SBA, IMAPA's pass for ADIDA, the members of ``robust``)."""
    resolved = resolve_methods(methods)
    names = [m.name for m in resolved]
    params = params_for(panel.freq, names, params)
    out: dict[str, np.ndarray] = {}
    with shared_levels(panel.y, names):
        for method in resolved:
            out[method.name] = forecast_panel(panel, h, method, params.get(method.name))
            if progress is not None:
                progress(method.name)
    return out


def forecasts_to_frame(
    panel: DemandPanel, values: dict[str, np.ndarray], h: int, *, consume: bool = False
) -> pl.DataFrame:
    """Long frame ``unique_id, ds, <method>...`` from per-method ``[items, h]`` arrays.
    ``consume``: each array is removed from ``values`` and becomes its column without a copy
    (a float64 array; a large panel's forecasts are not held twice)."""
    dates = panel.future_dates(h)
    ids = pl.Series("unique_id", panel.item_ids.astype(str), dtype=pl.String)
    if h > 0:  # each id h times, in polars (not a numpy array of fixed-width strings)
        ids = ids.to_frame().select(pl.col("unique_id").repeat_by(h).explode()).to_series()
    else:
        ids = ids.clear()
    frame = pl.DataFrame({"unique_id": ids, "ds": np.tile(dates, panel.n_items)})
    for name in list(values):
        if consume:  # polars takes a float64 array as it is: the column is the array
            column = np.asarray(values.pop(name), dtype=np.float64).reshape(-1)
        else:
            column = values[name].reshape(-1).astype(np.float64)
        frame = frame.with_columns(pl.Series(name, column))
        del column
    return frame


def forecast(
    panel: DemandPanel,
    h: HorizonSpec = None,
    methods: Iterable[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    output: Literal["pandas", "polars"] = "pandas",
    max_horizon: int = MAX_HORIZON,
) -> pd.DataFrame | pl.DataFrame:
    """Forecast every item of ``panel`` ``h`` periods ahead with each method.

    Returns ``unique_id, ds`` and one column per method, like statsforecast's ``forecast``.
    ``h``: periods, or a duration such as ``"90d"``, ``"13w"``, ``"6mo"`` converted to the
    panel's periods (:func:`horizon_periods`); default the frequency's (28 days, 13 weeks,
    6 months). ``params`` maps a method name to its kernel parameters, e.g.
    ``{"ma": {"window": 7}}``; without them the defaults follow the panel's frequency (MA(28)
    and a 7-day season for daily data, MA(13)/52 weeks for weekly, MA(12)/12 months for
    monthly). An ``h`` above
    ``max_horizon`` (default ``MAX_HORIZON``, 3660 periods) raises ConfigError at once.
    """
    periods = panel_horizon(
        h, panel, max_horizon, fix="ask for a shorter horizon or pass forecast(..., max_horizon=N)"
    )
    frame = forecasts_to_frame(panel, forecast_arrays(panel, periods, methods, params), periods)
    return frame.to_pandas() if output == "pandas" else frame
