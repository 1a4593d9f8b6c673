"""Console text: the lines the CLI prints after a run (scores per class and tier, the
router's choices) and after a plan.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import polars as pl

from sparecast.config import Settings
from sparecast.core import horizon_text
from sparecast.errors import ConfigError
from sparecast.evaluate.backtest import BacktestResult
from sparecast.inventory.plan import HIGH_RISK, PlanResult
from sparecast.pipeline.outputs import REJECTED_FILE

__all__ = [
    "horizon_line",
    "format_summary_lines",
    "selection_score",
    "summary_lines",
    "router_lines",
    "plan_summary_lines",
]


def _pct_phrase(value: float | None, ref_label: str) -> str | None:
    if value is None or not np.isfinite(value):
        return None
    word = "better" if value >= 0 else "worse"
    return f"{abs(value):.1f}% {word} than {ref_label}"


def horizon_line(h: int, freq: str, bt: BacktestResult | None = None) -> str:
    """The horizon in periods and their unit, and the backtest's windows: ``"horizon 6 periods
    (months); backtest on 3 windows, origins 6 periods apart"``."""
    line = f"horizon {horizon_text(h, freq)}"
    if bt is None:
        return line + "; no backtest"
    n = len(bt.origins)
    line += f"; backtest on {n} window{'' if n == 1 else 's'}"
    if n > 1:
        step = bt.origins[1] - bt.origins[0]
        line += f", origins {step} period{'' if step == 1 else 's'} apart"
    return line


def format_summary_lines(summary: pl.DataFrame, *, metric: str = "mase") -> list[str]:
    """One line per class of the chosen method, e.g. ``"lumpy (1,234 items): SBA: MASE 0.81,
    12.3% better than MA(28), 30.1% better than naive"``; ``metric`` is "mase" or "rmsse"."""
    if metric not in ("mase", "rmsse"):
        raise ConfigError(f"metric must be 'mase' or 'rmsse', got {metric!r}")
    labels = dict(zip(summary["method"].to_list(), summary["label"].to_list(), strict=True))
    lines = []
    for row in summary.filter(pl.col("chosen")).iter_rows(named=True):
        value = row[metric]
        parts = [f"{metric.upper()} {value:.2f}" if value is not None else f"{metric.upper()} n/a"]
        for ref in ("ma", "naive"):
            if row["method"] != ref and ref in labels:
                phrase = _pct_phrase(row[f"{metric}_vs_{ref}_pct"], labels[ref])
                if phrase:
                    parts.append(phrase)
        n = row["n_items"]
        group = row["sb_class"] if "sb_class" in row else row["tier"]
        head = f"{group} ({n:,} item{'' if n == 1 else 's'}): {row['label']}: "
        lines.append(head + ", ".join(parts))
    return lines


def selection_score(bt: BacktestResult, selection: pl.DataFrame) -> dict[str, float | None]:
    """Mean backtest MASE/RMSSE of the selected method per item, and of naive and ma."""
    chosen = bt.scores.join(
        selection.select("unique_id", pl.col("method").alias("_chosen")), on="unique_id"
    ).filter(pl.col("method") == pl.col("_chosen"))
    out: dict[str, float | None] = {
        f"selected_{m}": cast(float | None, chosen[m].mean()) for m in ("mase", "rmsse")
    }
    for ref in ("naive", "ma"):
        ref_rows = bt.scores.filter(pl.col("method") == ref)
        for m in ("mase", "rmsse"):
            out[f"{ref}_{m}"] = cast(float | None, ref_rows[m].mean()) if ref_rows.height else None
    return out


def summary_lines(
    summary: pl.DataFrame,
    settings: Settings,
    overall: dict[str, float | None] | None = None,
    selection: pl.DataFrame | None = None,
) -> list[str]:
    """Human lines: per demand class, per frequency tier, the router's choice (items per method
    and why) and the served forecasts' score over all items."""
    metric = settings.router.metric
    shown = metric if metric in ("mase", "rmsse") else "mase"
    lines = []
    for grouping, title in (("class", "per demand class"), ("tier", "per frequency tier")):
        part = summary.filter((pl.col("grouping") == grouping) & (pl.col("group") != "all"))
        lines.append(f"{title} (best method of the group):")
        lines += [
            "  " + line
            for line in format_summary_lines(
                part.drop("grouping").rename({"group": "sb_class"}), metric=shown
            )
        ]
    if selection is not None:
        lines += router_lines(selection, settings)
    if overall:
        value = overall.get(f"selected_{shown}")
        how = (
            "methods by tier rules"
            if settings.router.mode == "rules"
            else f"method chosen per {settings.router.select_by}"
        )
        text = f"all items, {how}: {shown.upper()} "
        text += f"{value:.3f}" if value is not None else "n/a"
        for ref, label in (("ma", "MA"), ("naive", "naive")):
            ref_value = overall.get(f"{ref}_{shown}")
            if value is not None and ref_value:
                gain = (ref_value - value) / ref_value * 100
                text += f", {abs(gain):.1f}% {'better' if gain >= 0 else 'worse'} than {label}"
        lines.append(text)
    return lines


def router_lines(selection: pl.DataFrame, settings: Settings, top: int = 8) -> list[str]:
    """What the hybrid router chose: the mode, then per served method the number of items and
    the most common reason (largest first, at most ``top`` lines)."""
    r = settings.router
    head = (
        "router rules (tier -> method): " + ", ".join(f"{t} -> {m}" for t, m in r.rules.items())
        if r.mode == "rules"
        else f"router auto: lowest backtest {r.metric} per {r.select_by}"
        + (f" (own choice from {r.min_history} demand periods)" if r.select_by == "item" else "")
        + (f", mean of the best {r.top_k}" if r.top_k > 1 else "")
    )
    counts = (
        selection.group_by("method")
        .agg(pl.len().alias("n"), pl.col("reason").mode().first().alias("reason"))
        .sort(["n", "method"], descending=[True, False])
    )
    lines = [head + "; items per method (selection.parquet has every item's reason):"]
    for row in counts.head(top).iter_rows(named=True):
        lines.append(f"  {row['method']}: {row['n']:,} items (e.g. {row['reason']})")
    if counts.height > top:
        rest = int(counts["n"].slice(top).sum())
        lines.append(f"  {counts.height - top} more method(s): {rest:,} items")
    return lines


def plan_summary_lines(plan: PlanResult) -> list[str]:
    """Human lines for the console."""
    s = plan.summary
    lines = [
        f"policy {s['policy']} ({s['target_type']} targets), {s['n_items']:,} items: "
        f"{s['n_to_order']:,} to order now, order value {s['order_value']:,.2f}; "
        f"stock value {s['stock_value']:,.2f}",
        f"stockout risk >= {HIGH_RISK:.0%}: {s['n_at_risk']:,} items; mean expected fill rate "
        f"{s['mean_expected_fill_rate']:.1%}",
        f"open purchase orders: {s['n_open_orders']:,} ({s['n_overdue_orders']:,} overdue)",
        "lead times from: " + ", ".join(f"{k} {v:,}" for k, v in s["lead_time_sources"].items()),
    ]
    if s["rejected_rows"]:
        lines.append(
            f"rejected purchasing/stock rows: {s['rejected_rows']:,} ("
            + ", ".join(f"{k} {v}" for k, v in s["rejected_by_reason"].items())
            + f"), listed in {REJECTED_FILE}"
        )
    return lines
