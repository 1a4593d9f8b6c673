"""Planner overrides (the specification's "maintain manual override"), applied without I/O.

A planner may override, per item, the forecast level (units per period) or a multiplier of the
model's forecast, a fixed reorder point and/or order-up-to level, do-not-order, or a phase-out
date (no orders from that date on). Every override names who set it, why, when, and the date
it expires (it applies before that date, not on it).

The store keeps them with their history (``sparecast.store``); the functions here take the
overrides as data and return new frames: :func:`apply_forecast_overrides` on a long forecast
frame, :func:`apply_policy_overrides` on the plan's policy frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from sparecast.errors import SparecastError

__all__ = [
    "OVERRIDE_KINDS",
    "Override",
    "OverrideError",
    "UnknownOverrideItem",
    "active_overrides",
    "apply_forecast_overrides",
    "apply_policy_overrides",
    "forecasts_with_override_history",
    "overrides_frame",
]

OVERRIDE_KINDS: tuple[str, ...] = (
    "forecast_level",
    "forecast_multiplier",
    "reorder_point",
    "order_up_to",
    "do_not_order",
    "phase_out_date",
)
"""The kinds of override, in the order the ``override`` column lists them."""


class OverrideError(SparecastError):
    """An override is invalid (bad value, expiry not in the future, nothing to override)."""


class UnknownOverrideItem(OverrideError):
    """The item of an override is not in the served forecast run."""


@dataclass(frozen=True)
class Override:
    """One item's planner override: one or more kinds, with who, why, when and expiry.

    ``forecast_level``: units per period replacing the model's forecast; ``forecast_multiplier``
    (> 0): scales it (not both); ``reorder_point`` / ``order_up_to``: fixed levels in units
    (reorder point <= order-up-to); ``do_not_order``: no suggested order; ``phase_out_date``: no
    suggested order from that date on. ``expires``: the first date it no longer applies.
    ``revision``: the store's history id of the last change (0 before it is stored)."""

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
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    revision: int = 0

    @property
    def kinds(self) -> list[str]:
        """The kinds this override sets, in ``OVERRIDE_KINDS`` order."""
        return [
            k
            for k in OVERRIDE_KINDS
            if (getattr(self, k) is not None and getattr(self, k) is not False)
        ]

    def is_active(self, as_of: date) -> bool:
        """True before its expiry date."""
        return as_of < self.expires

    def validated(self, today: date) -> Override:
        """This override when it is valid on ``today``; raises OverrideError naming the field
        and the fix otherwise (``expires`` must be after ``today``)."""
        item = f"override of item {self.item_id!r}"
        if not self.item_id:
            raise OverrideError("an override needs an item id")
        if not self.set_by.strip():
            raise OverrideError(f'{item}: say who sets it (--by NAME / "set_by")')
        if not self.reason.strip():
            raise OverrideError(f'{item}: give a reason (--reason TEXT / "reason")')
        if not self.kinds:
            raise OverrideError(
                f"{item} overrides nothing: give a forecast level or multiplier, a reorder point, "
                "an order-up-to level, do-not-order or a phase-out date"
            )
        if self.forecast_level is not None and self.forecast_multiplier is not None:
            raise OverrideError(f"{item}: give a forecast level or a forecast multiplier, not both")
        for name in ("forecast_level", "forecast_multiplier", "reorder_point", "order_up_to"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise OverrideError(f"{item}: {name} = {value} is not a finite number")
        if self.forecast_multiplier is not None and self.forecast_multiplier <= 0:
            raise OverrideError(
                f"{item}: forecast_multiplier = {self.forecast_multiplier:g} must be > 0 "
                "(use do-not-order to stop orders, or a forecast level of 0)"
            )
        if self.forecast_level is not None and self.forecast_level < 0:
            raise OverrideError(f"{item}: forecast_level = {self.forecast_level:g} must be >= 0")
        if self.order_up_to is not None and self.order_up_to < 0:
            raise OverrideError(f"{item}: order_up_to = {self.order_up_to:g} must be >= 0")
        if (
            self.reorder_point is not None
            and self.order_up_to is not None
            and self.reorder_point > self.order_up_to
        ):
            raise OverrideError(
                f"{item}: reorder_point = {self.reorder_point:g} is above order_up_to = "
                f"{self.order_up_to:g}; the reorder point must be <= the order-up-to level"
            )
        if self.expires <= today:
            raise OverrideError(
                f"{item}: expires = {self.expires} is not in the future (today is {today}); "
                "give a later expiry date"
            )
        return self

    def summary(self) -> dict[str, Any]:
        """The override as JSON-ready data (dates as ISO strings), as the API answers say it."""
        out: dict[str, Any] = {"kinds": self.kinds}
        for key, value in asdict(self).items():
            out[key] = value.isoformat() if isinstance(value, date | datetime) else value
        return out

    def with_revision(self, revision: int) -> Override:
        """A copy with the store's revision."""
        return replace(self, revision=revision)


def active_overrides(overrides: Iterable[Override], as_of: date) -> dict[str, Override]:
    """The overrides that apply on ``as_of`` (not expired), by item id."""
    return {o.item_id: o for o in overrides if o.is_active(as_of)}


def overrides_frame(overrides: Mapping[str, Override]) -> pl.DataFrame:
    """The overrides as a frame, one row per item (unique_id plus one column per kind and
    set_by, reason, expires)."""
    rows = list(overrides.values())
    return pl.DataFrame(
        {
            "unique_id": [o.item_id for o in rows],
            "forecast_level": [o.forecast_level for o in rows],
            "forecast_multiplier": [o.forecast_multiplier for o in rows],
            "reorder_point": [o.reorder_point for o in rows],
            "order_up_to": [o.order_up_to for o in rows],
            "do_not_order": [o.do_not_order for o in rows],
            "phase_out_date": [o.phase_out_date for o in rows],
            "set_by": [o.set_by for o in rows],
            "reason": [o.reason for o in rows],
            "expires": [o.expires for o in rows],
        },
        schema={
            "unique_id": pl.String,
            "forecast_level": pl.Float64,
            "forecast_multiplier": pl.Float64,
            "reorder_point": pl.Float64,
            "order_up_to": pl.Float64,
            "do_not_order": pl.Boolean,
            "phase_out_date": pl.Date,
            "set_by": pl.String,
            "reason": pl.String,
            "expires": pl.Date,
        },
    )


_QUANTILE_PREFIX = "q"


def _quantile_columns(frame: pl.DataFrame) -> list[str]:
    out = []
    for c in frame.columns:
        if c.startswith(_QUANTILE_PREFIX):
            try:
                float(c[1:])
            except ValueError:
                continue
            out.append(c)
    return out


def apply_forecast_overrides(
    forecasts: pl.DataFrame, overrides: Mapping[str, Override], as_of: date
) -> pl.DataFrame:
    """The long forecast frame (unique_id, ds, forecast, optional ``q{percent}`` columns) with
    the forecast overrides active on ``as_of`` applied, plus ``forecast_model`` (the model's
    value) and ``override`` (the kind applied, null where none).

    A multiplier scales the forecast and its quantiles; a level replaces the forecast on every
    date and scales the quantiles by level / the item's mean forecast (quantiles become null
    when that mean is 0). Applying to a frame that already has ``forecast_model`` starts again
    from the model's values, so applying twice is the same as applying once."""
    frame = forecasts
    qcols = _quantile_columns(frame)
    if "forecast_model" in frame.columns:
        frame = frame.with_columns(pl.col("forecast_model").alias("forecast"))
        for q in qcols:
            if f"{q}_model" in frame.columns:
                frame = frame.with_columns(pl.col(f"{q}_model").alias(q))
        frame = frame.drop(
            "forecast_model", "override", *[f"{q}_model" for q in qcols], strict=False
        )
    active = [
        o
        for o in overrides.values()
        if o.is_active(as_of)
        and (o.forecast_level is not None or o.forecast_multiplier is not None)
    ]
    spec = pl.DataFrame(
        {
            "unique_id": [o.item_id for o in active],
            "_level": [o.forecast_level for o in active],
            "_mult": [o.forecast_multiplier for o in active],
        },
        schema={"unique_id": pl.String, "_level": pl.Float64, "_mult": pl.Float64},
    )
    base = pl.col("forecast")
    frame = (
        frame.with_columns(pl.col("unique_id").cast(pl.String))
        .join(spec, on="unique_id", how="left", maintain_order="left")
        .with_columns(base.mean().over("unique_id").alias("_mean"))
    )
    factor = (
        pl.when(pl.col("_mult").is_not_null())
        .then(pl.col("_mult"))
        .when(pl.col("_level").is_not_null() & (pl.col("_mean") > 0))
        .then(pl.col("_level") / pl.col("_mean"))
        .when(pl.col("_level").is_not_null())
        .then(None)
        .otherwise(1.0)
    )
    new_forecast = (
        pl.when(pl.col("_level").is_not_null())
        .then(pl.col("_level"))
        .otherwise(base * pl.coalesce(pl.col("_mult"), pl.lit(1.0)))
    )
    kind = (
        pl.when(pl.col("_level").is_not_null())
        .then(pl.lit("forecast_level"))
        .when(pl.col("_mult").is_not_null())
        .then(pl.lit("forecast_multiplier"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    frame = frame.with_columns(
        base.alias("forecast_model"),
        *[pl.col(q).alias(f"{q}_model") for q in qcols],
    ).with_columns(
        new_forecast.alias("forecast"),
        *[(pl.col(q) * factor).alias(q) for q in qcols],
        kind.alias("override"),
    )
    return frame.drop("_level", "_mult", "_mean")


_POLICY_BASE = ("reorder_point", "order_up_to", "suggested_order")


def apply_policy_overrides(
    policy: pl.DataFrame, overrides: Mapping[str, Override], as_of: date
) -> pl.DataFrame:
    """The policy frame (unique_id, inventory_position (else on_hand, else 0), reorder_point,
    order_up_to,
    suggested_order, optional policy, order_quantity, unit_cost, order_value, order_rank) with
    the overrides active on ``as_of`` applied.

    Adds ``reorder_point_model``, ``order_up_to_model``, ``suggested_order_model`` (the plan's
    values), ``override`` (the kinds applied, comma-separated; null where none),
    ``override_by``, ``override_reason`` and ``override_expires``. A fixed reorder point s
    and/or order-up-to S re-decide the order: when the inventory position IP <= s, order
    S - IP (sQ with only s fixed: the smallest multiple of the order quantity lifting IP above
    s), rounded up to whole units; an order-up-to below the model's reorder point lowers s to
    it, a reorder point above the model's S raises S to it. Do-not-order, or ``as_of`` on or
    after the phase-out date, sets the order to 0. Forecast overrides are listed in
    ``override`` too (the plan applied them to the forecasts it planned with). Idempotent: a
    frame with the ``*_model`` columns starts again from the model's values."""
    frame = policy.with_columns(pl.col("unique_id").cast(pl.String))
    if "reorder_point_model" in frame.columns:
        frame = frame.with_columns(
            [pl.col(f"{c}_model").alias(c) for c in _POLICY_BASE if f"{c}_model" in frame.columns]
        ).drop(
            *[f"{c}_model" for c in _POLICY_BASE],
            "override",
            "override_by",
            "override_reason",
            "override_expires",
            strict=False,
        )
    ids = frame["unique_id"].to_list()
    n = len(ids)
    s = frame["reorder_point"].cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    big_s = frame["order_up_to"].cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    order = frame["suggested_order"].cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    position = next((c for c in ("inventory_position", "on_hand") if c in frame.columns), None)
    ip = (
        frame[position].cast(pl.Float64).fill_null(0.0).to_numpy()
        if position is not None
        else np.zeros(n)
    )
    q = (
        frame["order_quantity"].cast(pl.Float64).to_numpy()
        if "order_quantity" in frame.columns
        else np.zeros(n)
    )
    rules = frame["policy"].to_list() if "policy" in frame.columns else ["RsS"] * n
    kinds: list[str | None] = [None] * n
    by: list[str | None] = [None] * n
    why: list[str | None] = [None] * n
    until: list[date | None] = [None] * n
    for i, item in enumerate(ids):
        o = overrides.get(item)
        if o is None or not o.is_active(as_of):
            continue
        applied: list[str] = []
        if o.forecast_level is not None:
            applied.append("forecast_level")
        if o.forecast_multiplier is not None:
            applied.append("forecast_multiplier")
        if o.reorder_point is not None or o.order_up_to is not None:
            if o.reorder_point is not None:
                s[i] = o.reorder_point
                big_s[i] = max(big_s[i], s[i]) if o.order_up_to is None else o.order_up_to
                applied.append("reorder_point")
            if o.order_up_to is not None:
                big_s[i] = o.order_up_to
                s[i] = min(s[i], big_s[i])
                applied.append("order_up_to")
            if ip[i] > s[i]:
                order[i] = 0.0
            elif rules[i] == "sQ" and o.order_up_to is None and q[i] > 0:
                order[i] = (math.floor((s[i] - ip[i]) / q[i]) + 1.0) * q[i]
            else:
                order[i] = math.ceil(max(big_s[i] - ip[i], 0.0) - 1e-9)
        if o.do_not_order:
            order[i] = 0.0
            applied.append("do_not_order")
        if o.phase_out_date is not None and as_of >= o.phase_out_date:
            order[i] = 0.0
            applied.append("phase_out_date")
        if applied:
            kinds[i], by[i], why[i], until[i] = ",".join(applied), o.set_by, o.reason, o.expires
    out = frame.with_columns(
        [pl.col(c).cast(pl.Float64).alias(f"{c}_model") for c in _POLICY_BASE]
    ).with_columns(
        pl.Series("reorder_point", s),
        pl.Series("order_up_to", big_s),
        pl.Series("suggested_order", order),
        pl.Series("override", kinds, dtype=pl.String),
        pl.Series("override_by", by, dtype=pl.String),
        pl.Series("override_reason", why, dtype=pl.String),
        pl.Series("override_expires", until, dtype=pl.Date),
    )
    if "order_value" in out.columns and "unit_cost" in out.columns:
        out = out.with_columns(
            (pl.col("suggested_order") * pl.col("unit_cost")).alias("order_value")
        )
    if "order_rank" in out.columns:
        out = out.with_columns(
            pl.when(pl.col("suggested_order") > 0)
            .then(pl.col("order_rank"))
            .otherwise(None)
            .alias("order_rank")
        )
    return out


def forecasts_with_override_history(frame: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Each forecast row (unique_id, ds, forecast) with the forecast override that applied on
    its date according to the override history ``events`` (unique_id, event_id, recorded_at,
    action, forecast_level, forecast_multiplier, expires): the item's last event recorded on or
    before ``ds``, when it is a ``set``/``changed`` with a forecast level or multiplier that has
    not expired by ``ds``. Adds ``forecast_model`` (the model's value) and ``override`` (the
    kind, null where none applied); ``forecast`` becomes the overridden value. For the forecast
    value added of overrides (``sparecast.evaluate.fva``)."""
    ev = (
        events.select(
            pl.col("unique_id").cast(pl.String),
            pl.col("event_id"),
            pl.col("recorded_at").dt.date().alias("_from"),
            pl.col("action").alias("_action"),
            pl.col("forecast_level").cast(pl.Float64).alias("_level"),
            pl.col("forecast_multiplier").cast(pl.Float64).alias("_mult"),
            pl.col("expires").alias("_expires"),
        )
        .sort("_from", "event_id")
        .unique(["unique_id", "_from"], keep="last", maintain_order=True)
    )
    base = frame.with_columns(pl.col("unique_id").cast(pl.String)).with_row_index("_row")
    joined = (
        base.sort("ds")
        .join_asof(
            ev,
            left_on="ds",
            right_on="_from",
            by="unique_id",
            strategy="backward",
            check_sortedness=False,  # both sorted by date above
        )
        .sort("_row")
    )
    applies = (
        pl.col("_action").is_in(["set", "changed"])
        & (pl.col("_expires") > pl.col("ds"))
        & (pl.col("_level").is_not_null() | pl.col("_mult").is_not_null())
    )
    return joined.with_columns(
        pl.col("forecast").alias("forecast_model"),
        pl.when(applies & pl.col("_level").is_not_null())
        .then(pl.col("_level"))
        .when(applies)
        .then(pl.col("forecast") * pl.col("_mult"))
        .otherwise(pl.col("forecast"))
        .alias("forecast"),
        pl.when(applies & pl.col("_level").is_not_null())
        .then(pl.lit("forecast_level"))
        .when(applies)
        .then(pl.lit("forecast_multiplier"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("override"),
    ).drop("_row", "event_id", "_from", "_action", "_level", "_mult", "_expires")
