"""The decision-backtest page: ``decisions_report.html`` (self-contained, inline SVG, no CDN).

A trade-off chart (achieved fill rate on items with history against average stock value, one
line per policy over the targets, plus the textbook's curve over its nominal ladder), the goal
check, the summary per policy, target and demand-frequency group, and the items the plan flagged
obsolete at the cut (not replenished) with their demand after it.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from sparecast.inventory.decisions import DecisionBacktest
from sparecast.inventory.report import _environment

__all__ = ["decisions_context", "render_decisions_report"]

_COLORS = {
    "textbook ladder": "#999999",
    "sparecast ladder": "#a6dba0",
    "textbook": "#b2182b",
    "empirical": "#2166ac",
    "sparecast": "#1b7837",
    "aggregate": "#e08214",
}
_W, _H, _PAD = 640, 360, 56


def _chart(bt: DecisionBacktest) -> dict[str, Any]:
    pts = [
        r
        for r in bt.curve.iter_rows(named=True)
        if math.isfinite(r["fill_rate_with_history"] or math.nan)
        and math.isfinite(r["avg_stock_value"])
    ]
    if not pts:
        return {"lines": [], "width": _W, "height": _H, "xticks": [], "yticks": []}
    xs = [r["avg_stock_value"] for r in pts]
    ys = [r["fill_rate_with_history"] for r in pts]
    x0, x1 = 0.0, max(xs) * 1.05 or 1.0
    y0, y1 = max(0.0, math.floor(min(ys) * 20) / 20), 1.0

    def px(x: float) -> float:
        return round(_PAD + (x - x0) / (x1 - x0) * (_W - 2 * _PAD), 1)

    def py(y: float) -> float:
        return round(_H - _PAD - (y - y0) / max(y1 - y0, 1e-9) * (_H - 2 * _PAD), 1)

    lines = []
    for policy in _COLORS:
        mine = sorted((r for r in pts if r["policy"] == policy), key=lambda r: r["target"])
        if mine:
            coords = [(px(r["avg_stock_value"]), py(r["fill_rate_with_history"])) for r in mine]
            lines.append(
                {
                    "policy": policy,
                    "color": _COLORS[policy],
                    "dashed": policy.endswith("ladder"),
                    "points": " ".join(f"{x},{y}" for x, y in coords),
                    "dots": [
                        (x, y, f"{policy} {r['target']:.2%}: fill {r['fill_rate_with_history']:.1%}"
                         f", stock {r['avg_stock_value']:,.0f}")
                        for (x, y), r in zip(coords, mine, strict=True)
                    ],
                }
            )  # fmt: skip
    xticks = [(px(x1 * k / 4), f"{x1 * k / 4:,.0f}") for k in range(5)]
    steps = max(1, round((y1 - y0) / 0.05))
    yticks = [(py(y0 + (y1 - y0) * k / steps), f"{y0 + (y1 - y0) * k / steps:.0%}") for k in
              range(steps + 1)]  # fmt: skip
    return {"lines": lines, "width": _W, "height": _H, "pad": _PAD, "xticks": xticks,
            "yticks": yticks}  # fmt: skip


def decisions_context(bt: DecisionBacktest, *, source: str = "") -> dict[str, Any]:
    """Everything the template shows, as plain Python values."""
    return {
        "source": source,
        "split": bt.split,
        "n_periods": bt.n_periods,
        "n_items": bt.per_item["unique_id"].n_unique(),
        "chart": _chart(bt),
        "goals": bt.goals.to_dicts(),
        "summary": bt.summary.to_dicts(),
        "notes": bt.notes,
        **obsolete_context(bt),
    }


def obsolete_context(bt: DecisionBacktest, limit: int = 50) -> dict[str, Any]:
    """The items the plan (policy ``sparecast``, first target) flagged obsolete at the cut and
    stopped replenishing: how many, their demand after the cut (what the rule cost in service)
    and the first ``limit`` of them, most demanded after the cut first."""
    pi = bt.per_item
    if pi.height == 0:
        return {"obsolete": [], "obsolete_count": 0, "obsolete_demand": 0.0,
                "obsolete_demand_share": 0.0, "obsolete_revived": 0}  # fmt: skip
    first = pi.filter(pl.col("policy") == "sparecast")
    first = first.filter(pl.col("target") == first["target"].min())
    obs = first.filter(pl.col("stocking_rule") == "obsolete").sort(
        ["demand", "unique_id"], descending=[True, False]
    )
    hist = float(first.filter(pl.col("has_history"))["demand"].sum())
    dem = float(obs["demand"].sum())
    rows = obs.head(limit).select("unique_id", "group", "demand", "demand_days", "filled")
    return {
        "obsolete": rows.to_dicts(),
        "obsolete_count": obs.height,
        "obsolete_demand": dem,
        "obsolete_demand_share": dem / hist if hist > 0 else 0.0,
        "obsolete_revived": int((obs["demand"] > 0).sum()),
    }


def render_decisions_report(bt: DecisionBacktest, *, source: str = "") -> str:
    """The HTML page of a decision backtest."""
    template = _environment().get_template("decisions_report.html.j2")
    return template.render(**decisions_context(bt, source=source))
