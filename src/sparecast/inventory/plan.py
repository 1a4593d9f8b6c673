"""The plan computation: forecasts + purchasing tables -> the inventory policy of every item.

``compute_plan`` estimates lead times (:mod:`sparecast.inventory.leadtime`), builds each item's
lead-time demand distribution (:mod:`sparecast.methods.distributions`) and policy
(:mod:`sparecast.inventory.policy`), optionally calibrates the fill-rate targets by simulation
(:mod:`sparecast.inventory.simulate`) and returns a ``PlanResult``. Numeric only: it reads and
writes no file or database (``sparecast.pipeline.plan`` does that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import numpy as np
import polars as pl

from sparecast.config import InventorySettings, Settings
from sparecast.data.panel import DemandPanel
from sparecast.data.schema import parse_float_expr, validate_table
from sparecast.errors import SourceError
from sparecast.inventory.decide import plan_policy
from sparecast.inventory.leadtime import LeadTimeResult, lead_time_stats
from sparecast.inventory.policy import (
    PolicyResult,
    inventory_position,
    order_quantity,
    protection_review_periods,
    resolve_item_column,
    service_targets,
    stockout_probability,
    suggested_order,
)

__all__ = [
    "HIGH_RISK",
    "POLICY_COLUMNS",
    "ItemPlan",
    "PlanResult",
    "Planner",
    "compute_plan",
    "plan_items",
    "plan_lead_times",
]

_PERIOD_DAYS = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0}
HIGH_RISK = 0.5
"""Stockout risk at or above which an item counts as "at risk" in the summary and report."""

POLICY_COLUMNS: dict[str, pl.DataType] = {
    "unique_id": pl.String(),
    "description": pl.String(),
    "category": pl.String(),
    "tier": pl.String(),
    "active": pl.Boolean(),
    "supplier_id": pl.String(),
    "supplier_name": pl.String(),
    "unit_cost": pl.Float64(),
    "on_hand": pl.Float64(),
    "backorders": pl.Float64(),
    "open_quantity": pl.Float64(),
    "inventory_position": pl.Float64(),
    "next_receipt_date": pl.Date(),
    "forecast_per_period": pl.Float64(),
    "forecast_horizon_total": pl.Float64(),
    "days_of_cover": pl.Float64(),
    "lead_time_mean_days": pl.Float64(),
    "lead_time_std_days": pl.Float64(),
    "lead_time_n_orders": pl.Int64(),
    "lead_time_source": pl.String(),
    "distribution": pl.String(),
    "mean_lead_time_demand": pl.Float64(),
    "policy": pl.String(),
    "target_type": pl.String(),
    "service_target": pl.Float64(),
    "policy_target": pl.Float64(),
    "safety_stock": pl.Float64(),
    "reorder_point": pl.Float64(),
    "order_quantity": pl.Float64(),
    "order_up_to": pl.Float64(),
    "suggested_order": pl.Float64(),
    "order_value": pl.Float64(),
    "stockout_risk": pl.Float64(),
    "expected_fill_rate": pl.Float64(),
    "cycle_service_level": pl.Float64(),
    "order_rank": pl.Int64(),
    "stocking_rule": pl.String(),
    "obsolete": pl.Boolean(),
    "obsolete_reason": pl.String(),
    "level_factor": pl.Float64(),
}
"""Columns of policy.parquet in order (documented in docs/guides/inventory.md, served by the
API)."""


@dataclass
class PlanResult:
    """What the plan computed: ``policy`` (one row per item, POLICY_COLUMNS), the lead-time
    result, every rejected purchasing/stock row, notes that change the result, headline figures
    (``summary``) and timings."""

    policy: pl.DataFrame
    lead_times: LeadTimeResult
    rejected: pl.DataFrame
    today: date
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemPlan:
    """What :func:`plan_items` decided per item (float64[items] or labels each): the policy,
    the stocking rule, the obsolescence flag and reason and the level factor of
    :func:`sparecast.inventory.decide.plan_policy`, the stockout risk at the inventory
    position and the mean lead time (periods): all the plan reads of the lead-time demand
    distributions, which stay where they were sampled. Notes and timings as plan_policy's."""

    policy: PolicyResult
    rule: np.ndarray
    obsolete: np.ndarray
    obsolete_reason: np.ndarray
    level_factor: np.ndarray
    stockout_risk: np.ndarray
    mean_lead_time: np.ndarray
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def plan_items(
    y: np.ndarray,
    lead_times: list[np.ndarray],
    targets: np.ndarray,
    order_quantity: np.ndarray,
    position: np.ndarray,
    settings: Settings,
    **kwargs: Any,
) -> ItemPlan:
    """:func:`sparecast.inventory.decide.plan_policy` of the items of ``y`` (``kwargs``: its
    keyword arguments) and their stockout risk at the inventory ``position``."""
    decision = plan_policy(y, lead_times, targets, order_quantity, settings, **kwargs)
    return ItemPlan(
        decision.policy,
        decision.rule,
        decision.obsolete,
        decision.obsolete_reason,
        decision.level_factor,
        stockout_probability(decision.lead_time_demand, position),
        decision.lead_time_demand.mean_lead_time,
        decision.notes,
        decision.timings,
    )


Planner = Callable[..., ItemPlan]
"""Where the per-item policies are computed: :func:`plan_items` (this process, the default)
or per chunk of items on a Dask cluster (``sparecast.pipeline.distributed.DaskEngine``); the
arguments of :func:`plan_items`."""


_ITEM_NUMBERS = ("lead_time_days", "lead_time_std_days", "on_order")


def plan_lead_times(
    tables: dict[str, pl.DataFrame], ids: list[str], inv: InventorySettings, today: date
) -> tuple[pl.DataFrame | None, LeadTimeResult]:
    """The items table with its planning columns parsed (None without one) and the lead times
    of ``ids`` learnt from the purchase orders (quoted or default where there are none): the
    inputs ``plan`` and ``evaluate-plan`` share."""
    items = _item_inputs(tables["items"], inv) if "items" in tables else None
    suppliers = (
        validate_table("suppliers", tables["suppliers"]).valid if "suppliers" in tables else None
    )
    lt = lead_time_stats(
        tables["purchase_orders"],
        tables["receipts"],
        suppliers=suppliers,
        items=items if items is not None else pl.DataFrame({"item_id": ids}),
        min_orders=inv.lead_time_min_orders,
        max_samples=inv.lead_time_max_samples,
        today=today,
        default_days=inv.default_lead_time_days,
    )
    return items, lt


def _item_inputs(raw: pl.DataFrame, inv: InventorySettings) -> pl.DataFrame:
    """The validated items table with its per-item planning columns (quoted lead time, open
    quantity, MOQ, lot size, target; kept as the source gave them) parsed to floats (an
    unparseable value: null, i.e. the default)."""
    items = validate_table("items", raw).valid
    cols = (*_ITEM_NUMBERS, inv.moq_column, inv.lot_size_column, inv.item_target_column)
    return items.with_columns(
        parse_float_expr(pl.col(c), items.schema[c]).alias(c)
        for c in dict.fromkeys(cols)
        if c in items.columns
    )


def _stock_per_item(
    stock: pl.DataFrame, item_ids: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame, date | None]:
    """(on_hand >= 0, backorders >= 0, has a stock row, rejected stock rows, latest as_of) in
    ``item_ids`` order.

    A negative on_hand is a backorder (the ERP booked issues it could not fill): on hand 0,
    backorders ``-on_hand``. Rows for items not in the items table are rejected.
    """
    checked = validate_table("stock", stock)
    rows = np.setdiff1d(
        np.arange(stock.height), checked.rejected["input_row"].cast(pl.Int64).to_numpy()
    )
    valid = checked.valid.with_columns(pl.Series("input_row", rows, dtype=pl.Int64))
    known = pl.Series(item_ids, dtype=pl.String).implode()
    unknown = valid.filter(~pl.col("item_id").is_in(known))
    rejected = pl.concat(
        [
            checked.rejected.select(
                pl.lit("stock").alias("table"),
                pl.col("input_row").cast(pl.Int64),
                pl.lit(None, pl.String).alias("po_id"),
                pl.col("item_id").cast(pl.String),
                pl.col("reason"),
                pl.lit("").alias("detail"),
            ),
            unknown.select(
                pl.lit("stock").alias("table"),
                "input_row",
                pl.lit(None, pl.String).alias("po_id"),
                "item_id",
                pl.lit("unknown_item").alias("reason"),
                pl.format("on_hand={}", pl.col("on_hand")).alias("detail"),
            ),
        ]
    )
    valid = valid.filter(pl.col("item_id").is_in(known))
    lookup = dict(zip(valid["item_id"].to_list(), valid["on_hand"].to_list(), strict=True))
    raw = np.array([lookup.get(i, np.nan) for i in item_ids], dtype=np.float64)
    has_row = np.isfinite(raw)
    raw = np.where(has_row, raw, 0.0)
    as_of = cast(date | None, valid["as_of"].max()) if valid.height else None
    return np.maximum(raw, 0.0), np.maximum(-raw, 0.0), has_row, rejected, as_of


def _forecast_per_item(
    forecasts: pl.DataFrame | None, panel: DemandPanel, history_mean: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean forecast per period, total over the horizon, items without a forecast) in panel
    order; an item without a forecast gets its history mean per period (``history_mean``:
    given, for a panel whose matrix is elsewhere)."""
    ids = panel.item_ids.astype(str)
    if history_mean is None:
        history_mean = np.maximum(panel.y, 0).mean(axis=1, dtype=np.float64)
    if forecasts is None or forecasts.height == 0:
        return history_mean, np.full(ids.size, np.nan), ids.size
    per = forecasts.group_by("unique_id").agg(
        pl.col("forecast").mean().alias("_mean"), pl.col("forecast").sum().alias("_total")
    )
    joined = pl.DataFrame({"unique_id": ids}).join(
        per, on="unique_id", how="left", maintain_order="left"
    )
    mean = joined["_mean"].to_numpy().astype(np.float64)
    missing = ~np.isfinite(mean)
    mean = np.where(missing, history_mean, np.maximum(mean, 0.0))
    total = joined["_total"].fill_null(np.nan).to_numpy().astype(np.float64)
    return mean, total, int(missing.sum())


def compute_plan(
    panel: DemandPanel,
    classification: pl.DataFrame,
    forecasts: pl.DataFrame | None,
    tables: dict[str, pl.DataFrame],
    settings: Settings,
    *,
    today: date,
    progress: Callable[[str, int, int], None] | None = None,
    planner: Planner = plan_items,
    history_mean: np.ndarray | None = None,
) -> PlanResult:
    """The policy of every item of ``panel`` from its history, its forecast (``forecasts`` long
    format with a ``forecast`` column) and the raw purchasing ``tables`` (purchase_orders,
    receipts, stock; items and suppliers optional). No I/O.

    Lead times are converted to the panel's periods (days / 1, 7 or 30.44); ``order_cover_days``
    and ``review_period_days`` likewise. The protection interval is the lead time plus one
    period (sQ, reviewed every period) or plus the review period (RsS), see
    ``sparecast.inventory.policy.protection_review_periods``. ``planner``: where the
    distributions and policies are computed (:data:`Planner`). ``history_mean``: each item's
    mean demand per period (negative as 0) when the panel's matrix is not here (a planner
    that reads the history per chunk; ``panel.y`` is then passed to it unused).
    """
    inv = settings.inventory
    timings: dict[str, float] = {}
    notes: list[str] = []
    missing = [t for t in ("purchase_orders", "receipts", "stock") if t not in tables]
    if missing:
        raise SourceError(
            f"the plan needs the purchasing tables {missing}; give a database source with "
            "purchase_orders, receipts and stock (map their names in [data.erp_mapping])"
        )
    ids = [str(i) for i in panel.item_ids]
    t0 = time.perf_counter()
    items, lt = plan_lead_times(tables, ids, inv, today)
    on_hand, backorders, has_stock, stock_rejected, as_of = _stock_per_item(tables["stock"], ids)
    rejected = pl.concat([lt.rejected, stock_rejected])
    timings["lead_times_s"] = time.perf_counter() - t0
    if as_of is not None and as_of < today:
        notes.append(f"stock is as of {as_of}, before today ({today})")
    n_no_stock = int((~has_stock).sum())
    if n_no_stock:
        notes.append(f"{n_no_stock} item(s) have no stock row: on hand 0")
    n_default = int((lt.per_item["lead_time_source"] == "default").sum())
    if n_default:
        notes.append(
            f"{n_default} item(s) have no learned or quoted lead time: "
            f"inventory.default_lead_time_days = {inv.default_lead_time_days:g} days"
        )

    period_days = _PERIOD_DAYS[panel.freq]
    lt_samples = [s / period_days for s in lt.samples_for(ids)]
    tiers = (
        pl.DataFrame({"unique_id": ids})
        .join(classification.select("unique_id", "tier"), on="unique_id", how="left")["tier"]
        .fill_null("very_intermittent")
        .to_list()
    )
    override = resolve_item_column(items, ids, inv.item_target_column, np.nan)
    targets = service_targets(tiers, inv, item_ids=ids, item_override=override)
    moq = resolve_item_column(items, ids, inv.moq_column, inv.moq)
    lot = resolve_item_column(items, ids, inv.lot_size_column, inv.lot_size)
    rate, total, n_no_fc = _forecast_per_item(forecasts, panel, history_mean)
    if n_no_fc and forecasts is not None:
        notes.append(f"{n_no_fc} item(s) have no forecast: their history mean sets the lot size")
    q = order_quantity(rate, inv.order_cover_days / period_days, moq, lot)
    unit_cost = resolve_item_column(items, ids, "unit_cost", np.nan)
    # protection interval: lead time + 1 period (sQ, reviewed every period) or + R (RsS)
    review = protection_review_periods(inv.policy, inv.review_period_days / period_days)
    # open POs, plus the undated open quantity of an items file (items.on_order)
    open_qty = lt.open_quantity_for(ids) + resolve_item_column(items, ids, "on_order", 0.0)
    ip = inventory_position(on_hand, open_qty, backorders)
    decision = planner(
        panel.y,
        lt_samples,
        targets,
        q,
        ip,
        settings,
        period_days=period_days,
        rate=rate,
        tiers=tiers,
        unit_cost=unit_cost,
        moq=moq,
        lot_size=lot,
        progress=progress,
    )
    notes.extend(decision.notes)
    timings.update(decision.timings)
    pol, rule, risk = decision.policy, decision.rule, decision.stockout_risk
    obsolete, reason, factor = decision.obsolete, decision.obsolete_reason, decision.level_factor
    t0 = time.perf_counter()
    dying = obsolete & (reason != "no_demand")
    if dying.any():
        value = float(np.nansum(on_hand[dying] * unit_cost[dying]))
        notes.append(
            f"{int(dying.sum())} item(s) without demand for more than "
            f"{inv.obsolete_intervals:g} mean intervals between their demands: flagged obsolete "
            f"(policy.obsolete), not replenished; {value:,.2f} of stock value on hand"
        )
    order = suggested_order(pol, ip, moq, lot)
    active = resolve_item_column(
        items.with_columns(pl.col("active").cast(pl.Float64)) if items is not None else None,
        ids,
        "active",
        1.0,
    ).astype(bool)
    if not active.all():  # items.active = false: phased out, never reordered
        order = np.where(active, order, 0.0)
        notes.append(f"{int((~active).sum())} inactive item(s) (items.active = false): no orders")
    # no demand expected over the protection interval (no demand in the history, or none for
    # obsolete_intervals typical intervals): an order would only add dead stock
    never = reason == "no_demand"
    dead = never | ((pol.mean_demand <= 0) & (order > 0))
    order = np.where(obsolete | dead, 0.0, order)
    if dead.any():
        notes.append(
            f"{int(dead.sum())} item(s) without any demand in the history: their own group "
            "(stocking_rule no_demand), no stock (reorder point -1), no orders"
        )
    timings["policy_s"] += time.perf_counter() - t0

    policy = _policy_frame(
        ids,
        items,
        lt,
        tiers,
        active,
        on_hand,
        backorders,
        open_qty,
        ip,
        rate,
        total,
        period_days,
        pol,
        order,
        risk,
        targets,
        settings,
    ).with_columns(
        pl.Series("stocking_rule", rule.astype(str), dtype=pl.String),
        pl.Series("obsolete", obsolete),
        pl.Series(
            "obsolete_reason",
            [str(r) if o else None for r, o in zip(reason, obsolete, strict=True)],
            dtype=pl.String,
        ),
        pl.Series("level_factor", factor),
    )
    policy = policy.select([pl.col(c).cast(t) for c, t in POLICY_COLUMNS.items()])
    weights = pol.mean_demand / np.maximum(decision.mean_lead_time + review, 1e-12)
    n_order = int((order > 0).sum())
    summary = {
        "today": today.isoformat(),
        "stock_as_of": as_of.isoformat() if as_of else None,
        "n_items": len(ids),
        "policy": inv.policy,
        "target_type": inv.target_type,
        "distribution": inv.distribution,
        "n_to_order": n_order,
        "order_value": float(np.nansum(policy["order_value"].to_numpy())),
        "stock_value": float(np.nansum(on_hand * policy["unit_cost"].fill_null(np.nan).to_numpy())),
        "n_at_risk": int((risk >= HIGH_RISK).sum()),
        "mean_stockout_risk": float(risk.mean()) if risk.size else 0.0,
        "mean_expected_fill_rate": float(pol.expected_fill_rate.mean()) if risk.size else 0.0,
        "service_mode": inv.service_mode,
        "expected_aggregate_fill_rate": float(
            (weights * pol.expected_fill_rate).sum() / weights.sum()
        )
        if weights.sum() > 0
        else 1.0,
        "n_obsolete": int(dying.sum()),
        "obsolete_stock_value": float(np.nansum(on_hand[dying] * unit_cost[dying])),
        "stocking_rules": {
            str(k): int(v)
            for k, v in zip(*np.unique(rule.astype(str), return_counts=True), strict=True)
        },
        "n_open_orders": lt.open_orders.height,
        "n_overdue_orders": int(lt.open_orders["overdue"].sum()),
        "lead_time_sources": dict(
            policy.group_by("lead_time_source").len().sort("lead_time_source").iter_rows()
        ),
        "rejected_rows": rejected.height,
        "rejected_by_reason": {
            f"{t}.{r}": n
            for t, r, n in rejected.group_by("table", "reason")
            .len()
            .sort("table", "reason")
            .iter_rows()
        },
    }
    return PlanResult(policy, lt, rejected, today, notes, summary, timings)


def _policy_frame(
    ids: list[str],
    items: pl.DataFrame | None,
    lt: LeadTimeResult,
    tiers: list[str],
    active: np.ndarray,
    on_hand: np.ndarray,
    backorders: np.ndarray,
    open_qty: np.ndarray,
    ip: np.ndarray,
    rate: np.ndarray,
    total: np.ndarray,
    period_days: float,
    pol: Any,
    order: np.ndarray,
    risk: np.ndarray,
    targets: np.ndarray,
    settings: Settings,
) -> pl.DataFrame:
    inv = settings.inventory
    n = len(ids)
    base = pl.DataFrame({"unique_id": ids})
    attrs = items if items is not None else pl.DataFrame({"item_id": ids})
    for col, dtype in (
        ("description", pl.String),
        ("category", pl.String),
        ("unit_cost", pl.Float64),
    ):
        if col not in attrs.columns:
            attrs = attrs.with_columns(pl.lit(None, dtype).alias(col))
    base = base.join(
        attrs.select(pl.col("item_id").alias("unique_id"), "description", "category", "unit_cost"),
        on="unique_id",
        how="left",
        maintain_order="left",
    )
    lead = lt.per_item.select(
        pl.col("item_id").alias("unique_id"),
        "supplier_id",
        "lead_time_mean_days",
        "lead_time_std_days",
        pl.col("n_orders").alias("lead_time_n_orders"),
        "lead_time_source",
    )
    base = base.join(lead, on="unique_id", how="left", maintain_order="left")
    base = base.join(
        lt.suppliers.select("supplier_id", pl.col("name").alias("supplier_name")),
        on="supplier_id",
        how="left",
        maintain_order="left",
    ).join(
        lt.open_quantity.select(
            pl.col("item_id").alias("unique_id"),
            pl.col("next_expected_date").alias("next_receipt_date"),
        ),
        on="unique_id",
        how="left",
        maintain_order="left",
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(rate > 0, on_hand / rate * period_days, np.inf)
    frame = base.with_columns(
        pl.Series("tier", tiers, dtype=pl.String),
        pl.Series("active", active),
        pl.Series("on_hand", on_hand),
        pl.Series("backorders", backorders),
        pl.Series("open_quantity", open_qty),
        pl.Series("inventory_position", ip),
        pl.Series("forecast_per_period", rate),
        pl.Series("forecast_horizon_total", total).fill_nan(None),
        pl.Series("days_of_cover", cover),
        pl.Series("distribution", np.asarray(pol.method).astype(str), dtype=pl.String),
        pl.Series("mean_lead_time_demand", pol.mean_demand),
        pl.lit(inv.policy).alias("policy"),
        pl.lit(inv.target_type).alias("target_type"),
        pl.Series("service_target", np.asarray(targets, dtype=np.float64)),
        pl.Series("policy_target", pol.target),
        pl.Series("safety_stock", pol.safety_stock),
        pl.Series("reorder_point", pol.reorder_point),
        pl.Series("order_quantity", pol.order_quantity),
        pl.Series("order_up_to", pol.order_up_to),
        pl.Series("suggested_order", order),
        pl.Series("stockout_risk", risk),
        pl.Series("expected_fill_rate", pol.expected_fill_rate),
        pl.Series("cycle_service_level", pol.cycle_service_level),
    ).with_columns((pl.col("suggested_order") * pl.col("unit_cost")).alias("order_value"))
    # rank of the suggested orders: highest stockout risk first, then highest order value
    ranked = (
        frame.filter(pl.col("suggested_order") > 0)
        .sort(
            ["stockout_risk", "order_value", "unique_id"],
            descending=[True, True, False],
            nulls_last=True,
        )
        .select("unique_id", pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("order_rank"))
    )
    frame = frame.join(ranked, on="unique_id", how="left", maintain_order="left")
    assert frame.height == n
    # the stocking-rule columns are added by compute_plan
    return frame.select(
        [pl.col(c).cast(t) for c, t in POLICY_COLUMNS.items() if c in frame.columns]
    )
