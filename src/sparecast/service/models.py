"""Pydantic models of every request and response body of the API.

The hot paths (forecast reads) build their JSON bytes directly with orjson in exactly these
shapes (see ``routes/forecast.py``); the models document the contract in the OpenAPI schema and
the tests validate real answers against them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from sparecast.core import check_horizon
from sparecast.errors import ConfigError

__all__ = [
    "ErrorOut",
    "OverrideIn",
    "OverrideOut",
    "OverrideEventOut",
    "ItemOverrideOut",
    "ItemForecastOut",
    "ForecastBatchIn",
    "ForecastBatchOut",
    "ItemPolicyOut",
    "DependencyOut",
    "FreshnessOut",
    "HealthOut",
    "HealthStatusOut",
    "JobOut",
    "JobState",
]


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer other than 422: one sentence naming what is wrong and the fix."""

    detail: str


class OverrideIn(BaseModel):
    """A planner override of one item (``PUT /items/{item_id}/override``): one or more kinds,
    who sets it, why, and the date it expires (it applies before that date). It replaces the
    item's previous override as a whole."""

    model_config = ConfigDict(extra="forbid")

    set_by: str = Field(min_length=1, max_length=200, description="who sets it")
    reason: str = Field(min_length=1, max_length=2000, description="why")
    expires: date = Field(description="first date it no longer applies; must be in the future")
    forecast_level: float | None = Field(None, ge=0, description="units per period")
    forecast_multiplier: float | None = Field(None, gt=0, description="scales the forecast")
    reorder_point: float | None = Field(None, description="fixed reorder point (units)")
    order_up_to: float | None = Field(None, ge=0, description="fixed order-up-to level (units)")
    do_not_order: bool = Field(False, description="no suggested order while it applies")
    phase_out_date: date | None = Field(None, description="no suggested order from this date")


class OverrideOut(BaseModel):
    """A stored planner override, as every answer it changed names it."""

    kinds: list[str] = Field(description='the kinds it sets, e.g. ["forecast_multiplier"]')
    item_id: str
    set_by: str
    reason: str
    expires: date
    forecast_level: float | None = None
    forecast_multiplier: float | None = None
    reorder_point: float | None = None
    order_up_to: float | None = None
    do_not_order: bool = False
    phase_out_date: date | None = None
    created_at: datetime
    revision: int = Field(description="id of the history event of its last change")


class OverrideEventOut(BaseModel):
    """One change of an item's override: set, changed, deleted or expired."""

    event_id: int
    action: Literal["set", "changed", "deleted", "expired"]
    recorded_at: datetime
    recorded_by: str
    note: str
    override: OverrideOut


class ItemOverrideOut(BaseModel):
    """``GET /items/{item_id}/override``: the current override (null: none applies today) and
    the item's whole history, oldest first."""

    item_id: str
    override: OverrideOut | None
    history: list[OverrideEventOut]


class ItemForecastOut(BaseModel):
    """The forecast of one item by the current model version, one value per period."""

    item_id: str
    model_version: str = Field(description="version of the run that produced the forecast")
    run_id: int
    method: str = Field(description="forecasting method chosen for the item")
    dates: list[date] = Field(description="first day of each forecast period")
    forecast: list[float | None] = Field(description="point forecast (units per period)")
    quantiles: dict[str, list[float | None]] = Field(
        description='quantile forecasts keyed by level in percent, e.g. {"q90": [...]}; '
        "null where the run has no value"
    )
    override: OverrideOut | None = Field(
        None,
        description="the planner override applied to this answer (null when none applies)",
    )
    forecast_model: list[float | None] | None = Field(
        None,
        description="the model's forecast before a forecast level/multiplier override (null "
        "when none applies)",
    )


class ForecastBatchIn(BaseModel):
    """Forecasts for many items in one request (at most ``service.max_batch_items``)."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[str] = Field(
        min_length=1, strict=True, description="item ids, each at most once"
    )
    horizon: StrictInt | Annotated[StrictStr, Field(max_length=32)] | None = Field(
        None,
        description='periods to return (14), or a duration ("90d", "13w", "6mo", '
        '"1y") converted to the run\'s periods, rounded up; at most max_horizon (default: '
        "service.default_horizon, else all the run has)",
    )
    quantiles: list[StrictFloat] | None = Field(
        None,
        description="quantile levels in percent, 0 < q < 100 (default: all the run has; [] none)",
    )

    @field_validator("horizon")
    @classmethod
    def _horizon_spec(cls, value: int | str | None) -> int | str | None:
        """Periods or a duration, normalised (``"14"`` -> 14); converted to the run's periods by
        the route, which knows the run's frequency."""
        try:
            return check_horizon(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class ForecastBatchOut(BaseModel):
    """Forecasts of the requested items, in request order."""

    model_version: str
    run_id: int
    items: list[ItemForecastOut]


class ItemPolicyOut(BaseModel):
    """One item's row of the inventory plan (``DIR/policy.parquet``): the columns the plan has.

    The listed fields are those the planner writes; any other column of the file is passed
    through under its own name.
    """

    model_config = ConfigDict(extra="allow")

    unique_id: str
    safety_stock: float | None = None
    reorder_point: float | None = None
    order_up_to: float | None = None
    on_hand: float | None = None
    open_quantity: float | None = None
    inventory_position: float | None = None
    suggested_order: float | None = None
    stockout_risk: float | None = None
    expected_fill_rate: float | None = None
    service_target: float | None = None


DependencyState = Literal["ok", "degraded", "down"]


class DependencyOut(BaseModel):
    """State of one backing service."""

    state: DependencyState
    kind: str = Field(description="sqlite | postgresql | lru | redis ...")
    detail: str = Field("", description="why it is not ok, and what still works")


class FreshnessOut(BaseModel):
    """How old the served forecasts are."""

    run_created_at: datetime | None = Field(description="when the served run was written (UTC)")
    run_age_s: float | None = Field(description="seconds since then")
    data_window_start: date | None
    data_window_end: date | None = Field(description="last period of demand the run saw")
    data_age_days: int | None = Field(description="days from the data window end to today")


class AlertOut(BaseModel):
    """An open accuracy alert (``sparecast monitor``)."""

    alert_id: int
    model_version: str
    grouping: str = Field(description="all | tier | class | category")
    group: str
    metric: str
    value: float | None = Field(description="the group's rolling metric when last scored")
    expected: float | None = Field(description="the run's backtest expectation of it")
    periods: int = Field(description="degraded periods in a row")
    opened_at: datetime
    reason: str


class OverrideFvaOut(BaseModel):
    """Forecast value added of the planner overrides against the served model, on its forecast
    periods that ended by the last monitoring pass and have actuals (``*_fva`` > 0: the
    overrides helped; None: nothing scored)."""

    n_items: int = Field(description="overridden items scored")
    n_periods: int = Field(description="overridden item-periods scored")
    mae_model: float | None
    mae_override: float | None
    mae_fva: float | None = Field(description="MAE of the model minus MAE after the overrides")
    rmsse_model: float | None
    rmsse_override: float | None
    rmsse_fva: float | None
    share_helped: float | None = Field(description="share of the items whose MAE fell")
    share_hurt: float | None = Field(description="share of the items whose MAE rose")


class MonitoringOut(BaseModel):
    """Accuracy monitoring: the last pass and the open alerts."""

    last_run_at: datetime | None = Field(description="when monitoring last ran (UTC)")
    last_model_version: str | None = Field(description="the model version it scored")
    degraded: bool = Field(description="open accuracy alerts exist")
    open_alerts: list[AlertOut]
    override_fva: OverrideFvaOut | None = Field(
        None, description="the planner overrides' forecast value added (None: no pass yet)"
    )


class HealthOut(BaseModel):
    """Overall state: ok, degraded (answers still served, some slower or from fallbacks), down."""

    status: DependencyState
    model_version: str | None
    run_id: int | None
    freshness: FreshnessOut
    dependencies: dict[str, DependencyOut]
    monitoring: MonitoringOut | None = Field(
        None, description="accuracy monitoring (None: the store has not been read yet)"
    )


class HealthStatusOut(BaseModel):
    """``/health`` without a valid API key: the overall state alone."""

    status: DependencyState


JobState = Literal["queued", "running", "succeeded", "failed"]


class JobOut(BaseModel):
    """A background retraining job."""

    job_id: str
    state: JobState
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source: str = Field(description="source the pipeline runs on (password redacted)")
    command: str = Field(
        "run",
        description="what the job runs: `plan` for a directory made by `sparecast plan` or "
        "`demo` (forecasts, policy and report rebuilt), else `run`",
    )
    progress: str = Field("", description="last progress step of the pipeline")
    model_version_before: str | None = None
    model_version: str | None = Field(None, description="version of the new run when succeeded")
    run_id: int | None = None
    error: str | None = None
