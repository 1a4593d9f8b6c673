"""What the forecast store holds, as plain data: the description of a run to write
(``RunMeta``), a stored run (``RunInfo``), one item's stored forecast (``ItemForecast``), and
the naming rules shared by writes and reads (quantile columns, model versions)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "RunMeta",
    "RunInfo",
    "ItemForecast",
    "model_version_of",
    "quantile_columns",
    "quantile_label",
    "as_utc",
]

_QUANTILE_COL = re.compile(r"^q(\d+(?:\.\d+)?)$")


def quantile_label(level: float) -> str:
    """Column name of a quantile level in percent: 90 -> ``q90``, 97.5 -> ``q97.5``."""
    return f"q{level:g}"


def quantile_columns(columns: Sequence[str]) -> dict[str, float]:
    """The quantile columns (``q{percent:g}``) among ``columns``, mapped to their level."""
    out = {}
    for name in columns:
        match = _QUANTILE_COL.match(name)
        if match:
            out[name] = float(match.group(1))
    return out


_NOT_SHAPING = ("store", "service", "monitoring", "pipeline", "registry")


def model_version_of(
    sparecast_version: str, config: dict[str, Any], data_end: date, run_id: int
) -> str:
    """``{version}+{config hash}.{data end}.r{run id}``: what produced a run, unique per run.

    The hash covers the settings that shape forecasts; where they are stored and served
    (``store``, ``service``: URLs, API keys, ports), how it is watched (``monitoring``), and
    how the loop schedules and registers it (``pipeline``, ``registry``) do not change the
    model."""
    shaping = {k: v for k, v in config.items() if k not in _NOT_SHAPING}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()
    return f"{sparecast_version}+{digest[:8]}.{data_end:%Y%m%d}.r{run_id}"


@dataclass(frozen=True)
class RunMeta:
    """What a run was: written into ``forecast_runs`` by ``ForecastStore.write_run``."""

    sparecast_version: str
    config: dict[str, Any]
    data_start: date
    data_end: date
    freq: str
    n_items: int
    n_periods: int
    horizon: int
    source: str = ""
    notes: list[str] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(frozen=True)
class RunInfo:
    """A stored run (``forecast_runs`` row); ``quantile_levels`` in percent."""

    run_id: int
    created_at: datetime
    model_version: str
    sparecast_version: str
    config: dict[str, Any]
    source: str
    data_start: date
    data_end: date
    freq: str
    n_items: int
    n_periods: int
    horizon: int
    forecast_dates: list[date]
    quantile_levels: list[float]
    actuals_dates: list[date]
    notes: list[str]

    @property
    def actuals_start(self) -> date | None:
        """First date of the run's stored actual demand (None without actuals)."""
        return self.actuals_dates[0] if self.actuals_dates else None

    @property
    def actuals_end(self) -> date | None:
        """Last date of the run's stored actual demand (None without actuals)."""
        return self.actuals_dates[-1] if self.actuals_dates else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, date | datetime):
                out[key] = value.isoformat()
            elif isinstance(value, list) and value and isinstance(value[0], date):
                out[key] = [d.isoformat() for d in value]
        return out


@dataclass(frozen=True)
class ItemForecast:
    """One item's forecast of one run: dates, point forecast, quantiles by label (``q90``).

    Quantile lists are aligned with ``dates``; a period the run has no value for is None."""

    item_id: str
    run_id: int
    model_version: str
    method: str
    dates: list[date]
    forecast: list[float]
    quantiles: dict[str, list[float | None]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings)."""
        out = asdict(self)
        out["dates"] = [d.isoformat() for d in self.dates]
        return out


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken as UTC, as SQLite stores them)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
