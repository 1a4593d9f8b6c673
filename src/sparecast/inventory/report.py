"""The inventory report: one self-contained HTML file (inline CSS and SVG, no external assets).

Sections (each an element with a stable id, so tests and the dashboard can find them):
``summary``, ``suggested-orders`` (ranked by stockout risk, then order value), ``stockout-risk``,
``stock-vs-forecast`` (per category), ``supplier-performance``, ``open-orders`` (overdue purchase
orders to chase), ``lead-times``, ``data-quality``
(rejected purchase-order, receipt and stock rows) and ``notes``.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from sparecast._version import __version__
from sparecast.inventory.plan import PlanResult

__all__ = ["RISK_BANDS", "report_context", "render_inventory_report"]

RISK_BANDS: tuple[tuple[str, float, float], ...] = (
    ("under 5%", 0.0, 0.05),
    ("5-20%", 0.05, 0.20),
    ("20-50%", 0.20, 0.50),
    ("50% or more", 0.50, 1.01),
)
"""Stockout-risk bands of the report's histogram: (label, lower bound, upper bound excl.)."""

_MAX_ORDER_ROWS = 200
_MAX_RISK_ROWS = 25
_MAX_SUPPLIER_ROWS = 100
_MAX_OVERDUE_ROWS = 50


def _num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators; an em dash for null/NaN, "inf" for infinity."""
    if value is None:
        return "\u2014"
    x = float(value)
    if math.isnan(x):
        return "\u2014"
    if math.isinf(x):
        return "\u221e"
    return f"{x:,.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    return f"{100.0 * float(value):.{digits}f}%"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sparecast.inventory", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    return env


def _bar_chart(rows: list[tuple[str, list[float]]], series: list[str], unit: str = "") -> dict:
    """Geometry of a horizontal grouped bar chart (one group per row, one bar per series),
    rendered as inline SVG by the template."""
    top = max((v for _, vals in rows for v in vals if math.isfinite(v)), default=0.0) or 1.0
    bar_h, gap, label_w, width = 14, 10, 160, 420
    groups = []
    y = 0
    for label, vals in rows:
        bars = []
        for k, v in enumerate(vals):
            v = v if math.isfinite(v) else 0.0
            bars.append(
                {
                    "y": y + k * bar_h,
                    "w": round(max(0.0, v / top * width), 1),
                    "value": _num(v) + unit,
                    "series": k,
                }
            )
        groups.append({"label": label, "y": y, "bars": bars})
        y += len(vals) * bar_h + gap
    return {
        "groups": groups,
        "series": series,
        "height": y + 20,
        "label_w": label_w,
        "width": width,
        "bar_h": bar_h,
    }


def report_context(plan: PlanResult, *, source: str) -> dict[str, Any]:
    """Everything the template shows, as plain Python values (tested on its own)."""
    pol = plan.policy
    lt = plan.lead_times
    orders = pol.filter(pl.col("suggested_order") > 0).sort("order_rank")
    risk_top = pol.sort(["stockout_risk", "unique_id"], descending=[True, False]).head(
        _MAX_RISK_ROWS
    )
    risk = pol["stockout_risk"]
    counts = [int(((risk >= lo) & (risk < hi)).sum()) for _, lo, hi in RISK_BANDS]
    bands = [
        {"label": label, "count": n} for (label, _, _), n in zip(RISK_BANDS, counts, strict=True)
    ]
    risk_chart = _bar_chart(
        [(label, [float(n)]) for (label, _, _), n in zip(RISK_BANDS, counts, strict=True)],
        ["items"],
    )

    cat = (
        pol.with_columns(
            pl.col("category").fill_null("(none)"),
            (pl.col("on_hand") * pl.col("unit_cost")).alias("_stock_value"),
            (pl.col("forecast_horizon_total") * pl.col("unit_cost")).alias("_fc_value"),
            (pl.col("mean_lead_time_demand") * pl.col("unit_cost")).alias("_ltd_value"),
        )
        .group_by("category")
        .agg(
            pl.len().alias("items"),
            pl.col("on_hand").sum().alias("on_hand"),
            pl.col("forecast_horizon_total").sum().alias("forecast"),
            pl.col("_stock_value").sum().alias("stock_value"),
            pl.col("_fc_value").sum().alias("forecast_value"),
            pl.col("_ltd_value").sum().alias("ltd_value"),
            pl.col("days_of_cover")
            .filter(pl.col("days_of_cover").is_finite())
            .median()
            .alias("median_cover_days"),
            (pl.col("suggested_order") > 0).sum().alias("to_order"),
            pl.col("order_value").sum().alias("order_value"),
        )
        .sort("stock_value", descending=True, nulls_last=True)
    )
    stock_chart = _bar_chart(
        [
            (r["category"], [r["stock_value"] or 0.0, r["forecast_value"] or 0.0])
            for r in cat.iter_rows(named=True)
        ],
        ["stock value", "forecast demand value over the horizon"],
    )
    suppliers = lt.suppliers.sort(["n_orders", "supplier_id"], descending=[True, False])
    rejected = plan.rejected
    by_reason = (
        rejected.group_by("table", "reason")
        .agg(
            pl.len().alias("count"),
            pl.format(
                "row {} ({} {})",
                pl.col("input_row"),
                pl.col("po_id").fill_null("-"),
                pl.col("item_id").fill_null("-"),
            )
            .head(3)
            .str.join("; ")
            .alias("examples"),
        )
        .sort("table", "reason")
        if rejected.height
        else pl.DataFrame()
    )
    overdue = (
        lt.open_orders.filter("overdue")
        .with_columns(
            (pl.lit(plan.today) - pl.col("expected_date")).dt.total_days().alias("days_overdue")
        )
        .join(
            lt.suppliers.select("supplier_id", pl.col("name").alias("supplier_name")),
            on="supplier_id",
            how="left",
        )
        .sort(["days_overdue", "po_id", "item_id"], descending=[True, False, False])
    )
    sources = lt.per_item.group_by("lead_time_source").agg(
        pl.len().alias("items"),
        pl.col("lead_time_mean_days").mean().alias("mean_days"),
    )
    order_src = {"item_supplier": 0, "quoted": 1, "supplier": 2, "global": 3, "default": 4}
    source_rows = sorted(
        sources.iter_rows(named=True), key=lambda r: order_src.get(r["lead_time_source"], 9)
    )
    return {
        "version": __version__,
        "source": source,
        "summary": plan.summary,
        "notes": plan.notes,
        "orders": orders.head(_MAX_ORDER_ROWS).to_dicts(),
        "n_orders": orders.height,
        "max_order_rows": _MAX_ORDER_ROWS,
        "risk_bands": bands,
        "risk_chart": risk_chart,
        "risk_top": risk_top.to_dicts(),
        "categories": cat.to_dicts(),
        "stock_chart": stock_chart,
        "suppliers": suppliers.head(_MAX_SUPPLIER_ROWS).to_dicts(),
        "n_suppliers": suppliers.height,
        "open_orders": lt.open_orders.height,
        "overdue_orders": overdue.height,
        "overdue": overdue.head(_MAX_OVERDUE_ROWS).to_dicts(),
        "max_overdue_rows": _MAX_OVERDUE_ROWS,
        "lead_time_sources": source_rows,
        "rejected_total": rejected.height,
        "rejected_by_reason": by_reason.to_dicts(),
    }


def render_inventory_report(plan: PlanResult, *, source: str) -> str:
    """The report as one HTML document (UTF-8 text, no external references)."""
    template = _environment().get_template("inventory_report.html.j2")
    return template.render(**report_context(plan, source=source))
