"""Settings: the one home of configuration.

Values come, highest priority first, from keyword arguments, environment variables
``SPARECAST_*`` (nested with ``__``, e.g. ``SPARECAST_BACKTEST__N_WINDOWS=4``) and an optional
TOML file (``--config FILE``). No other module reads the environment.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from sparecast.classify import TIERS, TierThresholds
from sparecast.core import MAX_HORIZON, check_horizon, panel_horizon
from sparecast.data.outliers import DEFAULT_OUTLIER_ACTION, DEFAULT_OUTLIER_FACTOR, OutlierAction
from sparecast.data.panel import DemandPanel
from sparecast.data.sources import check_database_url
from sparecast.errors import ConfigError, SourceError
from sparecast.evaluate.monitoring import MONITOR_GROUPINGS, watch_problem
from sparecast.methods import METHODS
from sparecast.methods._check import check_levels
from sparecast.selection.router import (
    DEFAULT_ALPHA,
    DEFAULT_FALLBACK,
    DEFAULT_MARGIN,
    DEFAULT_METRIC,
    DEFAULT_MIN_HISTORY,
    DEFAULT_MODE,
    DEFAULT_ROBUST,
    DEFAULT_RULES,
    DEFAULT_SELECT_BY,
    DEFAULT_TOP_K,
    ROUTER_METRICS,
)
from sparecast.urls import redact_url

__all__ = [
    "Settings",
    "BacktestSettings",
    "RouterSettings",
    "TierSettings",
    "DataSettings",
    "InventorySettings",
    "StoreSettings",
    "ComputeSettings",
    "ServiceSettings",
    "PipelineSettings",
    "RegistrySettings",
    "MonitoringSettings",
    "WebSettings",
    "WritebackSettings",
    "load_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestSettings(_Section):
    """Rolling-origin backtest that scores the methods (the router's auto mode chooses on it).

    The choice itself (metric, select_by, fallback) lives in [router]; those keys are still
    accepted here and moved there (see Settings._move_backtest_choice)."""

    n_windows: int = Field(3, ge=1, description="number of forecast origins")
    step: int | None = Field(
        None,
        ge=1,
        description="periods between origins (default: the horizon in periods, so 28 days, 13 "
        "weeks or 6 months unless horizon is set)",
    )
    seasonality: int = Field(
        1, ge=1, description="lag of the naive scale of MASE/RMSSE (1: one-step naive, as in M5)"
    )
    stockout_weight: float = Field(
        3.0, gt=0, description="weight of under-forecasts in the asym (stockout-weighted) loss"
    )


def _check_tiers(keys: Iterable[str]) -> None:
    """A ValueError (pydantic reports it with the key) naming tiers that do not exist."""
    unknown = [k for k in keys if k not in TIERS]
    if unknown:
        raise ValueError(f"unknown tier(s) {unknown}; known: {', '.join(TIERS)}")


_MOVED_TO_ROUTER = ("metric", "select_by", "fallback")


class RouterSettings(_Section):
    """The hybrid router: which method forecasts which item (sparecast.selection.router)."""

    mode: Literal["auto", "rules"] = Field(
        DEFAULT_MODE,
        description="auto: per class/item the method with the best backtest score; rules: "
        "frequency tier -> method",
    )
    candidates: list[str] | None = Field(
        None,
        description="methods the auto mode chooses from (default: the top-level `methods`, "
        "else sparecast.selection.router.DEFAULT_CANDIDATES: the classical methods and lightgbm)",
    )
    rules: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RULES),
        description="tier -> method of the rules mode (tiers left out keep these defaults)",
    )
    metric: str = Field(
        DEFAULT_METRIC,
        description="backtest score the auto mode minimises: one of "
        + ", ".join(ROUTER_METRICS)
        + " (rmsse targets the mean; mae and mase reward forecasts of zero on intermittent items; "
        "mase+asym: MASE and asym, each relative to the group's best, added)",
    )
    select_by: Literal["class", "tier", "item"] = Field(
        DEFAULT_SELECT_BY,
        description="one choice per demand class, per frequency tier, or per item (items with "
        "fewer than min_history demand periods get their class's choice)",
    )
    min_history: int = Field(
        DEFAULT_MIN_HISTORY,
        ge=0,
        description="demand periods before the last origin an item needs for its own "
        "choice (select_by = item)",
    )
    top_k: int = Field(
        DEFAULT_TOP_K,
        ge=1,
        description="serve the mean of the k best methods of each group (at most as many as "
        "were scored; 1: the best alone)",
    )
    default: str | None = Field(
        DEFAULT_ROBUST,
        description="robust default a class keeps unless a candidate beats it by `margin` with a "
        "paired test significant at `alpha` (empty: the lowest score wins)",
    )
    margin: float = Field(
        DEFAULT_MARGIN,
        ge=0,
        lt=1,
        description="relative improvement of the class's mean score a method needs to replace "
        "the robust default",
    )
    alpha: float = Field(
        DEFAULT_ALPHA,
        gt=0,
        le=1,
        description="significance level of the paired test (over the class's items) against "
        "the robust default",
    )
    fallback: str = Field(
        DEFAULT_FALLBACK, description="method for items no method can be scored on"
    )

    @field_validator("metric")
    @classmethod
    def _router_metric(cls, value: str) -> str:
        if value not in ROUTER_METRICS:
            raise ValueError(
                f"unknown metric {value!r}; the router ranks by one of: "
                + ", ".join(ROUTER_METRICS)
            )
        return value

    @field_validator("default", mode="before")
    @classmethod
    def _no_default(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rules")
    @classmethod
    def _known_tiers(cls, value: dict[str, str]) -> dict[str, str]:
        _check_tiers(value)
        return {**DEFAULT_RULES, **value}

    @model_validator(mode="after")
    def _known_methods(self) -> RouterSettings:
        def check(names: list[str], key: str) -> None:
            bad = [n for n in names if n not in METHODS or n == "hybrid"]
            if bad:
                raise ValueError(
                    f"router.{key}: unknown method(s) {bad}; known: "
                    + ", ".join(m for m in METHODS if m != "hybrid")
                )

        check([self.fallback], "fallback")
        if self.default is not None:
            check([self.default], "default")
        if self.candidates is not None:
            if not self.candidates:
                raise ValueError("router.candidates must not be empty (leave it out for all)")
            check(self.candidates, "candidates")
        if self.mode == "rules":  # the rules name methods only the rules mode needs
            check(list(self.rules.values()), "rules")
        return self


_TIER_DEFAULTS = TierThresholds()  # the one tier definition: sparecast.classify


class TierSettings(_Section):
    """Frequency tiers: share of periods with demand at or above which an item is in the tier."""

    high_volume: float = Field(_TIER_DEFAULTS.high_volume, gt=0, le=1)
    regular: float = Field(_TIER_DEFAULTS.regular, gt=0, le=1)
    intermittent: float = Field(_TIER_DEFAULTS.intermittent, gt=0, le=1)

    @model_validator(mode="after")
    def _descending(self) -> TierSettings:
        try:
            self.thresholds()  # classify's own check: strictly descending
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def thresholds(self) -> TierThresholds:
        """These settings as the TierThresholds that ``classify`` takes."""
        return TierThresholds(
            high_volume=self.high_volume, regular=self.regular, intermittent=self.intermittent
        )


class DataSettings(_Section):
    """How source rows become the demand panel."""

    freq: Literal["D", "W", "M"] | None = Field(
        None, description="None: daily for ERP, inferred for files"
    )
    window_days: int | None = Field(None, ge=1, description="keep only the last N days of history")
    end_date: date | None = Field(
        None, description="last day of history (default: last demand date)"
    )
    today: date | None = Field(
        None, description="rows after this date are rejected (default: today)"
    )
    strict: bool = Field(False, description="any rejected row is an error instead of a report line")
    outlier_factor: float = Field(
        DEFAULT_OUTLIER_FACTOR,
        gt=1,
        description="a demand row is extreme when its quantity is above this many times both "
        "the item's median non-zero quantity and its category's typical size "
        "(sparecast.data.outliers; 100 flags no row of the demo or carparts, 3 of oil)",
    )
    outlier_action: OutlierAction = Field(
        DEFAULT_OUTLIER_ACTION,
        description="what happens to an extreme row: reject (rejected, reason "
        "extreme_quantity), cap (kept, quantity cut to the threshold) or report (kept as it "
        "is); capped and reported rows are listed with the rejected rows",
    )
    erp_mapping: dict[str, Any] = Field(
        default_factory=dict,
        description="table/column mapping of the ERP, see sparecast.data.mapping.ErpMapping",
    )


class InventorySettings(_Section):
    """Inventory policy: service targets, lead-time demand distribution, order rules."""

    target_type: Literal["fill_rate", "cycle_service", "cost"] = Field(
        "fill_rate",
        description="fill_rate: share of demand served from stock; cycle_service: probability "
        "of no stockout per replenishment cycle; cost: cycle service = critical ratio w/(w+1) "
        "of stockout_weight",
    )
    targets: dict[str, float] = Field(
        default_factory=lambda: {
            "high_volume": 0.98,
            "regular": 0.95,
            "intermittent": 0.95,
            "very_intermittent": 0.90,
        },
        description="target per frequency tier (tiers missing here use default_target)",
    )
    default_target: float = Field(0.95, gt=0, lt=1)
    item_targets: dict[str, float] = Field(
        default_factory=dict, description="item_id -> target, over the tier target"
    )
    item_target_column: str = Field(
        "service_target", description="items-table column with a per-item target (if present)"
    )
    stockout_weight: float = Field(
        19.0, gt=0, description="cost of a unit short / cost of holding a unit one cycle (cost)"
    )
    review_period_days: int = Field(7, ge=1, description="R of the (R, s, S) policy")
    policy: Literal["sQ", "RsS"] = "sQ"
    distribution: Literal["auto", "poisson", "negbin", "compound", "bootstrap"] = "auto"
    n_samples: int = Field(1000, ge=50, le=100_000)
    seed: int = 0
    order_cover_days: float = Field(
        30.0, gt=0, description="order quantity Q = mean demand over this many days (min 1)"
    )
    moq: float = Field(1.0, ge=0, description="minimum order quantity (default for all items)")
    lot_size: float = Field(1.0, gt=0, description="order multiples (default for all items)")
    moq_column: str = "moq"
    lot_size_column: str = "lot_size"
    chunk_size: int = Field(2000, ge=1, description="items per chunk of Monte-Carlo samples")
    lead_time_min_orders: int = Field(
        3, ge=1, description="completed PO lines an item needs for its own lead time"
    )
    lead_time_max_samples: int = Field(
        200, ge=1, description="most recent completed PO lines kept as lead-time samples"
    )
    default_lead_time_days: float = Field(
        30.0,
        gt=0,
        description="lead time of items with no learned or quoted one (an items file without "
        "lead_time_days, an ERP without completed purchase orders): lead_time_source default",
    )
    calibrate: bool = Field(
        True,
        description="fill-rate targets: move each frequency group's nominal target by what a "
        "backtest on the item history shows is lost (or gained) out of sample, so the plan "
        "reaches the target (inventory.calibration.calibrated_targets)",
    )
    calibration_mode: Literal["cost", "group", "auto"] = Field(
        "auto",
        description="per-item calibration: cost (the groups' nominal targets that reach the "
        "target's fill rate over all items with history at the least stock value, no group "
        "under target - calibration_floor_gap), group (each frequency group solved to the "
        "target, the behaviour before 2026-12) or auto (per target, with factors chosen one "
        "window earlier and read on the holdout: cost unless it misses the target there and "
        "group fills at least a point more; calibration.pick_mode); where the history is too "
        "short to calibrate, or the calibration measured under half the items with no earlier "
        "window to check it (decide.unchecked), cost and auto plan by marginal analysis on "
        "the model instead "
        "(decide.allocated_item_targets: no item under target - calibration_floor_gap), group "
        "at the targets",
    )
    calibration_floor_gap: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="calibration_mode = cost: no frequency group is planned for a fill rate "
        "below the target minus this gap in the calibration backtest (0.1: 80% at a 90% "
        "target; its value classes share it)",
    )
    calibration_margin: float = Field(
        0.5,
        ge=0,
        le=1,
        description="calibration_mode = cost or auto: the groups aim at the target plus this "
        "share of the shortfall out of sample the calibration shows one window earlier (the "
        "calibration run again on the history without its holdout, its factors replayed on "
        "the holdout; at most half of 1 - target; 0: none, one backtest less; 0.5 measured on "
        "demo, carparts and oil, docs/results.md); the aggregate mode's calibration adds the "
        "same share of its own earlier window's shortfall to the aggregate target (in any "
        "calibration_mode)",
    )
    calibration_value_classes: int = Field(
        3,
        ge=1,
        le=9,
        description="calibration_mode = cost or auto: each frequency group is split into this "
        "many classes by unit cost x order cycle (Q over the mean demand per period), so the "
        "cost-aware calibration buys the aggregate fill where a point of it costs least (the "
        "group mode solves per frequency group); the classes of a group share its floor "
        "(calibration_floor_gap); 1: frequency groups only",
    )
    item_level_sigma: float = Field(
        0.0,
        ge=0,
        le=2,
        description="service_mode = item: sigma of the lognormal level factor (mean 1) on the "
        "lead-time demand per sample path (as aggregate_level_sigma; 0: none); used when the "
        "targets are not calibrated",
    )
    allocation_level_sigma: float = Field(
        0.6,
        ge=0,
        le=2,
        description="service_mode = item with calibrate on but a history too short to "
        "calibrate, or a calibration decide.unchecked (calibration_mode cost or auto): sigma "
        "of the lognormal level factor on the lead-time demand the model's allocation "
        "(decide.allocated_item_targets) and the policies use (0.6, the uncalibrated "
        "aggregate plan's: on oil with lead times of 1-33 months 91.7 / 94.6 / 97.1% at "
        "90 / 95 / 98%, with 0.3 88.2 / 91.6 / 94.4%, with 0 86.2 / 89.7 / 92.1%; "
        "docs/results.md); the sigma at a 95% target, scaled for others by "
        "level_sigma_power",
    )
    level_sigma_power: float = Field(
        0.5,
        ge=0,
        le=2,
        description="the level sigma of a plan not calibrated (allocation_level_sigma in the "
        "per-item mode's allocation, aggregate_level_sigma in the aggregate mode), given for a "
        "95% target, is at target t that sigma * (z(t) / z(0.95)) ** this "
        "(decide.target_level_sigma; z the standard normal quantile; 0: one sigma at every "
        "target). 0.5: 0.53 / 0.6 / 0.67 at 90 / 95 / 98%; on oil with lead times of 1-33 "
        "months the per-item plan 90.7 / 94.6 / 97.6% where one sigma filled 91.7 / 94.6 / "
        "97.1%, the aggregate mode 98% 97.8% with 2.15% of demand periods short (was 97.4%, "
        "2.51%; docs/results.md)",
    )
    item_level_sigmas: list[float] = Field(
        default_factory=lambda: [0.0, 0.3, 0.6, 1.0],
        min_length=1,
        max_length=8,
        description="service_mode = item with calibrate on: the level sigmas the calibration "
        "backtest tries, in ascending order until every target is reached by one tried or no "
        "missed target's fill rose by half a point at the last one; per target it keeps the "
        "one tried whose calibrated groups reach the target at the least stock value (else the "
        "highest fill before a step gaining under half a point; ties to the smaller sigma). "
        "[0]: no level uncertainty",
    )
    calibration_min_periods: int = Field(
        0,
        ge=0,
        description="0: calibrate when the last third of the history (the holdout) holds two "
        "protection intervals (lead time + review) for at least a quarter of the items (with "
        "longer lead times: a warm-up and half a protection interval) and the "
        "history has 12 periods or more; a positive value is a fixed minimum on top",
    )
    calibration_max_items: int = Field(
        10_000,
        ge=100,
        description="calibrate on a random sample of this many items (the factors are per "
        "calibration group and target, so a sample measures them for all items)",
    )
    sparse_threshold: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="items with demand in fewer than this share of periods follow the sparse "
        "rule: one typical lump when a demand in the protection interval is likely enough for "
        "the target, else no stock (0: off)",
    )
    sparse_policy: Literal["lump", "value"] = Field(
        "lump",
        description="stock of the sparse items: lump (one typical lump when a demand in the "
        "protection interval is likely enough for the target, else none) or value (the sparse "
        "items of a target as one pool: the units, whole lumps or parts, with the most demand "
        "filled per unit of money until the pool's predicted fill reaches the target; "
        "inventory.optimize.sparse_value_rule)",
    )
    obsolete_intervals: float = Field(
        6.0,
        ge=0,
        description="stop replenishing (and flag) an item without demand for more than this "
        "many mean intervals between its demands (0: only items without any demand; 6: a "
        "gap a live item of constant rate shows with probability about exp(-6) = 0.25%, "
        "where 4 flagged items that came back on the demo, carparts, oil and a weekly set, "
        "docs/results.md)",
    )
    level: Literal["history", "recent", "adaptive", "forecast"] = Field(
        "adaptive",
        description="level of the lead-time demand: history (the distribution's own), recent "
        "(scaled to the mean demand of the last level_window_days, for items with at least 3 "
        "demands there), adaptive (moved from the history's level towards the recent one by "
        "one weight for all items: the least-squares weight with which the recent level "
        "predicted the last third of the history, clipped to 0-1) or forecast (scaled to the "
        "forecast's rate)",
    )
    level_window_days: float = Field(
        365.0, gt=0, description="window of the recent level (level = recent or adaptive), days"
    )
    service_mode: Literal["item", "aggregate"] = Field(
        "item",
        description="item: every item reaches its own target; aggregate: the fill rate over all "
        "items reaches aggregate_target at minimum stock value (greedy marginal analysis)",
    )
    aggregate_target: float = Field(
        0.98,
        gt=0,
        lt=1,
        description="target over all items (service_mode = aggregate): the fill rate, or the "
        "share of demand periods served in full with aggregate_metric = demand_periods (both "
        "with fill_and_periods)",
    )
    aggregate_metric: Literal["fill_rate", "demand_periods", "fill_and_periods"] = Field(
        "fill_and_periods",
        description="what aggregate_target counts: fill_rate (share of demand units filled), "
        "demand_periods (share of periods with demand served in full: 0.98 = under 2% of demand "
        "periods short, the stockout rate) or fill_and_periods (both reach the target)",
    )
    aggregate_level_sigma: float = Field(
        0.6,
        ge=0,
        le=2,
        description="service_mode = aggregate: sigma of a lognormal factor (mean 1) on the "
        "lead-time demand per sample path, the uncertainty of the demand level ahead "
        "(inventory.policy.level_mixture; 0: none); used when the aggregate target is not "
        "calibrated (calibrate off or too short a history): the sigma at a 95% target, "
        "scaled for others by level_sigma_power",
    )
    aggregate_level_sigmas: list[float] = Field(
        default_factory=lambda: [0.0, 0.3, 0.6, 1.0, 1.5],
        min_length=1,
        max_length=8,
        description="service_mode = aggregate with calibrate on: the level sigmas the "
        "calibration backtest tries; it keeps the one reaching aggregate_target at the least "
        "stock value (else the highest achieved)",
    )
    min_fill_rates: dict[str, float] = Field(
        default_factory=dict,
        description="per-tier minimum fill rate in service_mode = aggregate (tiers missing: 0)",
    )
    aggregate_min_fill: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="service_mode = aggregate: minimum fill rate of every replenished item "
        "(with min_fill_rates, the higher of the two), so the greedy does not leave the "
        "dearest or sparsest items unstocked (0: none)",
    )

    @field_validator("aggregate_level_sigmas", "item_level_sigmas")
    @classmethod
    def _valid_sigmas(cls, value: list[float]) -> list[float]:
        bad = [v for v in value if not 0.0 <= v <= 2.0]
        if bad:
            raise ValueError(f"level sigmas must be in [0, 2], got {bad}")
        return value

    @field_validator("targets", "item_targets")
    @classmethod
    def _valid_targets(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 < v < 1.0}
        if bad:
            raise ValueError(f"service targets must be in (0, 1), got {bad}")
        return value

    @field_validator("targets", "min_fill_rates")
    @classmethod
    def _known_tiers(cls, value: dict[str, float]) -> dict[str, float]:
        _check_tiers(value)
        return value

    @field_validator("min_fill_rates")
    @classmethod
    def _valid_minimums(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v < 1.0}
        if bad:
            raise ValueError(f"minimum fill rates must be in [0, 1), got {bad}")
        return value


class ComputeSettings(_Section):
    """[compute]: where the forecasting core runs (``sparecast run --workers N | --cluster``)."""

    scheduler: str | None = Field(
        None,
        description="address of a running Dask scheduler (tcp://host:8786): classification, "
        "backtest and forecasts run per chunk of items on its workers (needs sparecast[dask])",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="start a local Dask cluster of N single-threaded worker processes for the "
        "run (ignored when scheduler is set); none of both: one process, no Dask",
    )
    memory_limit: str = Field(
        "auto",
        min_length=1,
        description="memory limit of each local worker: 2GiB, 0.5 (a fraction up to 1 of the "
        "machine's memory), auto (the machine's memory / workers), 0 (no limit)",
    )
    chunk_items: int = Field(
        10_000, ge=1, description="items per chunk (one task per chunk and step on the cluster)"
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="seconds to wait for the scheduler before giving up"
    )
    lightgbm_on_dask: bool = Field(
        True,
        description="on a cluster, train the global LightGBM with lightgbm.dask on rows built "
        "per chunk on the workers and forecast per chunk there (false: on the client over the "
        "whole panel, as in one process)",
    )


class StoreSettings(_Section):
    """Forecast history store (SQLite file or PostgreSQL) and the forecast cache (LRU or Redis)."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the history store, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/sparecast "
        "(default: sqlite file history.sqlite in the run's output directory)",
    )
    write_runs: bool = Field(True, description="write every run/demo into the store")
    keep_runs: int | None = Field(
        None, ge=1, description="after a run, keep only the newest N runs (default: all)"
    )
    actuals_periods: int | None = Field(
        None, ge=1, description="last N periods of demand stored as actuals (default: horizon)"
    )
    cache_url: str | None = Field(
        None, description="redis://host:port/db for Redis (default: in-process LRU cache)"
    )
    cache_ttl_s: float = Field(3600.0, gt=0, description="cache entry lifetime, seconds")
    cache_max_items: int = Field(100_000, ge=1, description="LRU cache capacity, entries")
    cache_prefix: str = Field("sparecast:", description="prefix of every Redis key")
    statement_timeout_s: float | None = Field(
        30.0,
        gt=0,
        description="PostgreSQL statement_timeout of the API's store connections, seconds (the "
        "server cancels a longer statement; None: no limit)",
    )

    @field_validator("cache_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"cache_url must start with redis://, rediss:// or unix://: {value}")
        return value

    @field_serializer("url", "cache_url", when_used="json")
    def _hide_password(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)


class ServiceSettings(_Section):
    """The HTTP API (``sparecast serve``): keys, limits, server processes, retraining source."""

    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="sha256 hex digests of the accepted API keys (POST endpoints); "
        "empty: every POST is refused with 401",
    )
    api_key_header: str = Field("X-API-Key", min_length=1, description="header carrying the key")
    max_batch_items: int = Field(1000, ge=1, description="most items in one POST /forecast/items")
    default_horizon: int | str | None = Field(
        None,
        description="periods (or a duration like 90d, 13w, 6mo, converted to the run's "
        "periods) answered when a request gives none (default: all stored)",
    )
    host: str = Field("127.0.0.1", description="address `sparecast serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="port `sparecast serve` listens on")
    workers: int = Field(1, ge=1, le=64, description="server processes of `sparecast serve`")
    retrain_source: str | None = Field(
        None,
        description="source POST /retrain runs the pipeline on (URL or file); default: the "
        "source recorded in the data directory's run.json",
    )
    version_refresh_s: float = Field(
        2.0,
        gt=0,
        description="seconds between checks of the store for a newer run (other processes' "
        "retraining)",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="largest request body accepted, bytes (larger: 413 before it is read)",
    )
    store_timeout_s: float = Field(
        3.0,
        gt=0,
        description="deadline of every store call of a request or of /health, seconds; past it "
        "the request answers 503 as for an unreachable store",
    )
    store_max_calls: int = Field(
        8,
        ge=1,
        description="most store calls in progress at once (timed-out ones count until they "
        "end), so a frozen database cannot take every worker thread",
    )

    @field_validator("default_horizon", mode="before")
    @classmethod
    def _horizon_spec(cls, value: Any) -> int | str | None:
        return _checked_horizon(value)

    @field_validator("api_key_hashes")
    @classmethod
    def _sha256_hex(cls, value: list[str]) -> list[str]:
        out = []
        for digest in value:
            d = digest.strip().lower()
            if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
                raise ValueError(
                    f"api_key_hashes entry {digest[:12]!r}... is not a sha256 hex digest "
                    "(64 hex characters); make one with: printf %s KEY | sha256sum"
                )
            out.append(d)
        return out


class PipelineSettings(_Section):
    """The production loop (``sparecast pipeline``): schedules, the champion/challenger test and
    the Prefect retries."""

    daily_cron: str = Field(
        "0 5 * * *", description="cron of the daily flow (extract, monitor, roll back)"
    )
    weekly_cron: str = Field(
        "0 6 * * 1", description="cron of the weekly flow (train, evaluate, promote)"
    )
    timezone: str = Field("UTC", description="time zone of the cron strings")
    retries: int = Field(2, ge=0, description="retries of a failed step (Prefect flows)")
    retry_delay_s: float = Field(30.0, ge=0, description="seconds between retries of a step")
    challenger_config: str | None = Field(
        None,
        description="TOML file of the challenger's settings (default: the served run's own "
        "configuration, retrained on the newest data)",
    )
    eval_windows: int = Field(
        2, ge=1, description="recent windows (one horizon each) both models are evaluated on"
    )
    metric: Literal["rmsse", "mase", "mae"] = Field(
        "rmsse", description="metric of the champion/challenger test (lower is better)"
    )
    margin: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="the challenger must beat the champion by this fraction on `metric` over "
        "all items",
    )
    tolerance: float = Field(
        0.05,
        ge=0,
        description="no tier or category of the challenger may be worse than the champion's "
        "by more than this fraction",
    )
    baselines: list[str] = Field(
        default_factory=lambda: ["sba", "robust"],
        description="the baseline guard: the challenger may not be worse than any of these "
        "methods on any tier (by more than `baseline_tolerance`)",
    )
    baseline_tolerance: float = Field(
        0.02, ge=0, description="slack of the baseline guard, a fraction of the baseline score"
    )
    min_group_items: int = Field(
        3, ge=1, description="tiers/categories with fewer items are not tested on their own"
    )
    shadow_periods: int = Field(
        0,
        ge=0,
        description="shadow mode: a challenger that passes the backtest test is held as "
        "challenger and promoted only after its stored forecasts beat the champion's on this "
        "many periods of actuals (same margin and tolerances); 0: promoted at once",
    )


class RegistrySettings(_Section):
    """The MLflow registry of the production loop (tracking and registered model versions)."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow backend store, e.g. postgresql+psycopg://postgres@127.0.0.1/mlflow "
        "(default: sqlite file mlflow.db in the data directory)",
    )
    artifact_location: str | None = Field(
        None, description="where runs keep their artefacts (default: DIR/mlartifacts)"
    )
    model_name: str = Field("sparecast", description="name of the registered model")
    experiment: str = Field("sparecast", description="MLflow experiment of the training runs")

    @field_serializer("tracking_uri", when_used="json")
    def _hide_password(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)


class MonitoringSettings(_Section):
    """[monitoring]: scoring the served forecasts on the actuals that arrive after the run, and
    the alerts raised when they degrade (``sparecast monitor``, ``sparecast.pipeline.monitor``)."""

    watch: dict[str, float] = Field(
        default_factory=lambda: {"rmsse": 0.5, "rel_bias": 0.4},
        description="metrics alerts watch, each with its threshold: a group is degraded in a "
        "period when one of them is worse than the run's backtest expectation x (1 + threshold) "
        "(rel_bias: |bias| above |expected| + threshold); metrics: mae, mase, rmsse, rel_bias, "
        "mape (regular items only). Each (group, metric) counts its own degraded periods and "
        "raises its own alert. The legacy keys metric = M, threshold = T mean {M = T}",
    )
    consecutive_periods: int = Field(
        3, ge=1, description="an alert opens after this many degraded periods in a row"
    )
    z: float = Field(
        3.0,
        ge=0,
        description="significance a degraded period needs besides its threshold: the deviation "
        "from the expectation in standard deviations of the group-period's sampling noise "
        "(rel_bias: the demand's noise over the period's cells, from each item's history; other "
        "metrics: the standard error of the mean over the group's items); 0: the threshold alone",
    )
    min_items: int = Field(
        5, ge=1, description="groups with fewer scored items are shown but never alerted on"
    )
    window: int | None = Field(
        None,
        ge=1,
        description="rolling window of the scores, in periods, spanning the refreshes of the "
        "served lineage (None: each period scored within the run that served it, over that "
        "run's periods with actuals up to it)",
    )
    groupings: list[str] = Field(
        default_factory=lambda: ["tier", "class", "category"],
        description="groupings alerts are raised for (all, tier, class, category); the scores "
        "table shows all of them",
    )
    webhook_url: str | None = Field(
        None, description="http(s) URL that receives a JSON POST for every opened alert"
    )
    webhook_timeout_s: float = Field(5.0, gt=0, description="timeout of one webhook POST, seconds")
    webhook_retries: int = Field(
        3, ge=0, description="further attempts after a failed webhook POST (1 s apart, doubling)"
    )

    exclude_groups: list[str] = Field(
        default_factory=lambda: ["no_demand"],
        description="group labels never alerted on (still scored and shown): no_demand items had "
        "no demand in their history, so their backtest expectation is ~0 and any demand at all "
        "would exceed any multiple of it",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_metric(cls, data: Any) -> Any:
        """``metric``/``threshold`` (one watched metric, before ``watch``) -> ``watch``."""
        if isinstance(data, dict) and ("metric" in data or "threshold" in data):
            data = dict(data)
            metric = data.pop("metric", "mase")
            threshold = data.pop("threshold", 0.5)
            data.setdefault("watch", {metric: threshold})
        return data

    @field_validator("watch")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        problem = watch_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return dict(value)

    @property
    def metric(self) -> str:
        """The first watched metric (the one pages and tables show by default)."""
        return next(iter(self.watch))

    @property
    def threshold(self) -> float:
        """The threshold of :attr:`metric`."""
        return self.watch[self.metric]

    def threshold_of(self, metric: str) -> float | None:
        """The threshold of a watched metric (None: not watched)."""
        return self.watch.get(metric)

    @field_validator("groupings")
    @classmethod
    def _known_groupings(cls, value: list[str]) -> list[str]:
        unknown = [g for g in value if g not in MONITOR_GROUPINGS]
        if unknown:
            raise ValueError(
                f"unknown grouping(s) {unknown}; known: {', '.join(MONITOR_GROUPINGS)}"
            )
        if not value:
            raise ValueError("groupings must not be empty")
        return list(dict.fromkeys(value))

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"webhook_url must start with http:// or https://: {redact_url(value)}"
            )
        return value

    @field_serializer("webhook_url", when_used="json")
    def _hide_secret(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)


class WebSettings(_Section):
    """The planner's web app (``/app`` of ``sparecast serve``): sign-in, sessions, tables."""

    users: dict[str, str] = Field(
        default_factory=dict,
        description="planners who may sign in: user name -> password hash "
        "(`sparecast web hash-password` prints one: scrypt$n$r$p$salt$hash); the API keys of "
        "service.api_key_hashes also sign in, with any user name",
    )
    public: bool = Field(
        True,
        description="read-only pages open without signing in (false: every page asks for a "
        "sign-in); pages that change things (approve, override) always do",
    )
    secret: str | None = Field(
        None,
        description="key that signs session cookies and CSRF tokens (default: random per "
        "process, so sign-ins end at a restart and do not span server workers; set it when "
        "service.workers > 1)",
    )
    session_max_age_s: int = Field(8 * 3600, ge=60, description="sign-in lifetime, seconds")
    page_size: int = Field(50, ge=5, le=1000, description="table rows per page")
    export_max_rows: int = Field(
        1_000_000, ge=1, description="most rows of a CSV/Excel export (of the filtered table)"
    )
    warm_interval_s: float = Field(
        2.0,
        ge=0,
        description="seconds between checks of the plan files and the served run by the "
        "background warm-up, which computes the pages' tables at start and after a change so "
        "no request pays for them (0: no warm-up; the first request of a page computes them)",
    )

    @field_validator("users")
    @classmethod
    def _hashed(cls, value: dict[str, str]) -> dict[str, str]:
        for user, digest in value.items():
            if not digest.startswith("scrypt$") or len(digest.split("$")) != 6:
                raise ValueError(
                    f"web.users.{user} is not a password hash (scrypt$n$r$p$salt$hash); "
                    "make one with `sparecast web hash-password`"
                )
        return value


class WritebackSettings(_Section):
    """Where approved orders go besides DIR/approved_orders.csv: an ERP table (SQLAlchemy)."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the ERP database that receives approved order lines "
        "(e.g. mysql+pymysql://user:pw@host/erp); unset: files only",
    )
    table: str = Field(
        "sparecast_order_proposals",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="table of approved order lines (created when missing; one row per order "
        "line key, so a retry never duplicates)",
    )

    @field_validator("url")
    @classmethod
    def _url_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_database_url(value)
            except SourceError as exc:
                raise ValueError(f"writeback.url: {exc}") from None
        return value

    @field_serializer("url", when_used="json")
    def _hide_password(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)


class Settings(BaseSettings):
    """Everything a run of sparecast can be told."""

    model_config = SettingsConfigDict(
        env_prefix="SPARECAST_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    horizon: int | str | None = Field(
        None,
        description="forecast horizon: periods (28) or a duration (90d, 13w, 6mo, 1y) converted "
        "to the data's periods, rounded up (sparecast.core.horizon_periods); default by the "
        "data's frequency: 28 days, 13 weeks, 6 months (sparecast.core.DEFAULT_HORIZONS)",
    )
    max_horizon: int = Field(
        MAX_HORIZON,
        ge=1,
        description="largest horizon a run or an API request may ask for, in periods (a bound "
        "on the memory one request can take)",
    )
    quantiles: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 0.9, 0.95, 0.99],
        description="levels of the per-period forecast quantiles written beside the point "
        "forecast (columns q50, q80, ...; empty: none)",
    )
    methods: list[str] | None = Field(None, description="methods to run (default: all classical)")
    threads: int | None = Field(
        None,
        ge=1,
        description="threads of the classical kernels (Croston, SBA, TSB, ADIDA, IMAPA, MAPA) "
        "over blocks of items; default every core the process may use, 1 = single-threaded; "
        "the forecasts are identical whatever the number",
    )
    method_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='per-method kernel parameters, e.g. {"ma": {"window": 28}}',
    )
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    tiers: TierSettings = Field(default_factory=TierSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    inventory: InventorySettings = Field(default_factory=InventorySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    writeback: WritebackSettings = Field(default_factory=WritebackSettings)

    @model_validator(mode="before")
    @classmethod
    def _move_backtest_choice(cls, data: Any) -> Any:
        """Older configs set metric, select_by and fallback in [backtest]: move them to
        [router] (a value set in [router] wins)."""
        if not isinstance(data, dict) or not isinstance(data.get("backtest"), dict):
            return data
        moved = {k: v for k, v in data["backtest"].items() if k in _MOVED_TO_ROUTER}
        if not moved:
            return data
        router = data.get("router")
        router = dict(router) if isinstance(router, dict) else {}
        data = {
            **data,
            "backtest": {k: v for k, v in data["backtest"].items() if k not in moved},
            "router": {**moved, **router},
        }
        return data

    @field_validator("horizon", mode="before")
    @classmethod
    def _horizon_spec(cls, value: Any) -> int | str | None:
        return _checked_horizon(value)

    @model_validator(mode="after")
    def _horizon_within_limit(self) -> Settings:
        """A horizon in periods is checked at once; a duration when the data's frequency is
        known (``horizon_for``)."""
        if isinstance(self.horizon, int) and self.horizon > self.max_horizon:
            raise ValueError(
                f"horizon {self.horizon} exceeds max_horizon {self.max_horizon} (the bound on "
                "the memory one run or request can take); ask for a shorter horizon, or raise "
                "max_horizon: max_horizon = N in the config file or SPARECAST_MAX_HORIZON=N"
            )
        return self

    @model_validator(mode="after")
    def _urls_parse(self) -> Settings:
        """A malformed store.url or store.cache_url (e.g. a port that is not a number) is a
        clear ConfigError when the settings load, not a traceback when first used."""
        if self.store.url is not None:
            try:
                check_database_url(self.store.url)
            except SourceError as exc:
                raise ValueError(f"store.url: {exc}") from None
        if self.store.cache_url is not None:
            problem = _redis_url_problem(self.store.cache_url)
            if problem:
                raise ValueError(f"store.cache_url: {problem}")
        return self

    @field_validator("quantiles")
    @classmethod
    def _quantile_levels(cls, value: list[float]) -> list[float]:
        check_levels(value, error=ValueError)
        return sorted(set(value))

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [m for m in value if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
        if not value:
            raise ValueError("methods must not be empty")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (for run.json)."""
        return self.model_dump(mode="json")

    def horizon_for(self, panel: DemandPanel) -> int:
        """``horizon`` in periods of ``panel`` (None: its frequency's default; a duration
        converted, rounded up, with the panel's last date), within ``max_horizon`` (ConfigError
        otherwise)."""
        return panel_horizon(self.horizon, panel, self.max_horizon)


def _checked_horizon(value: Any) -> int | str | None:
    """A horizon setting normalised (``"28"`` -> 28, ``"6 months"`` -> ``"6mo"``); a
    ValueError (pydantic reports it with the key) for anything else."""
    try:
        return check_horizon(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _redis_url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL (parsed as redis-py parses it: urllib), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [ of an IPv6 host
        return f"{redact_url(url)!r} is not a valid URL; expected redis://[:password@]host:port/db"
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        return f"{redact_url(url)!r}: the port must be a number from 1 to 65535"
    return None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _problem(err: Any) -> str:
    """One pydantic error as ``key: message`` (a whole-model check: the message alone), without
    pydantic's "Value error, " prefix."""
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {msg}" if where else msg


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional TOML file, then ``SPARECAST_*`` environment variables, then
    ``overrides`` (highest). Raises ConfigError naming the file and the bad key."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            file_values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    where = f"config file {config_file}" if config_file else "settings"
    try:
        env_values = Settings().model_dump(exclude_unset=True)
        values = _merge(_merge(file_values, env_values), overrides)
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid {where}: {problems}") from None
