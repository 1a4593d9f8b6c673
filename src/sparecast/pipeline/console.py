"""Console text: the lines the CLI prints after a run (scores per class and tier, the
router's choices) and after a plan.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import polars as pl

from sparecast.config import Settings
from sparecast.core import horizon_text
from sparecast.evaluate.backtest import BacktestResult
from sparecast.inventory.plan import HIGH_RISK, PlanResult
from sparecast.pipeline.outputs import REJECTED_FILE

__all__ = [
    "horizon_line",
    "format_summary_lines",
    "not_better_than_zero",
    "selection_score",
    "summary_lines",
    "router_lines",
    "plan_summary_lines",
]


_REFERENCE = "zero"  # the reference row every group shows: forecasting nothing
_LABEL_WIDTH = 26
_LINE_WIDTH = 94  # the lines are indented by the CLI: 100 columns in all


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


def _wrap(names: list[str], width: int) -> list[str]:
    """``names`` comma-separated on lines of at most ``width`` characters, indented by 2."""
    lines: list[str] = []
    line = ""
    for name in names:
        if line and len(line) + len(name) + 2 > width:
            lines.append(line + ",")
            line = ""
        line = f"{line}, {name}" if line else f"  {name}"
    return [*lines, line] if line else lines


_TABLE_HEAD = (
    f"{'group':<17} {'items':>7}  {'method':<{_LABEL_WIDTH}} {'RMSSE':>6} {'median':>6} "
    f"{'MAE':>7} {'bias %':>7} {'vs zero %':>9}"
)


def _num(value: float | None, fmt: str, width: int) -> str:
    ok = value is not None and np.isfinite(value)
    return f"{value:{fmt}}".rjust(width) if ok else "n/a".rjust(width)


def _label(row: dict[str, Any]) -> str:
    label = str(row.get("label") or row["method"])
    room = _LABEL_WIDTH - 2  # the chosen method's " *"
    if len(label) > room:
        label = label[: room - 3] + "..."
    return label + (" *" if row["chosen"] else "")


def _table_row(group: str, n: str, row: dict[str, Any]) -> str:
    rel_bias = row.get("rel_bias")
    vs_zero = None if row["method"] == _REFERENCE else row.get("rmsse_vs_zero_pct")
    return (
        f"{group[:17]:<17} {n:>7}  {_label(row):<{_LABEL_WIDTH}} "
        f"{_num(row.get('rmsse'), '.2f', 6)} {_num(row.get('rmsse_median'), '.2f', 6)} "
        f"{_num(row.get('mae'), '.2f', 7)} "
        f"{_num(None if rel_bias is None else rel_bias * 100, '+.1f', 7)} "
        + ("" if row["method"] == _REFERENCE else _num(vs_zero, "+.1f", 9))
    ).rstrip()


def format_summary_lines(summary: pl.DataFrame) -> list[str]:
    """A table of a backtest summary (one group column, ``sb_class`` or ``tier``): per group the
    chosen method (marked ``*``) and the zero forecast's row, with the mean and median RMSSE,
    MAE, relative bias in % (sum of forecast minus actual over the sum of actuals: -100 is the
    zero forecast's) and the RMSSE improvement over the zero forecast in % (negative: worse than
    forecasting nothing). Fits in 100 columns."""
    group_col = "sb_class" if "sb_class" in summary.columns else "tier"
    shown = summary.filter(pl.col("chosen") | (pl.col("method") == _REFERENCE))
    lines = [_TABLE_HEAD]
    for (group,), rows in shown.group_by(group_col, maintain_order=True):
        ordered = rows.sort(pl.col("chosen"), descending=True, maintain_order=True)
        for k, row in enumerate(ordered.iter_rows(named=True)):
            n = f"{row['n_items']:,}" if k == 0 else ""
            lines.append(_table_row(str(group) if k == 0 else "", n, row))
    return lines


def not_better_than_zero(summary: pl.DataFrame) -> list[str]:
    """Labels of the methods whose mean RMSSE over all items is not below the zero
    forecast's (the summary's ``all`` group; empty when there is no zero row)."""
    group_col = "sb_class" if "sb_class" in summary.columns else "tier"
    rows = summary.filter(
        (pl.col(group_col) == "all")
        & (pl.col("method") != _REFERENCE)
        & (pl.col("rmsse_vs_zero_pct") <= 0)
    )
    return [str(r["label"] or r["method"]) for r in rows.iter_rows(named=True)]


def selection_score(bt: BacktestResult, selection: pl.DataFrame) -> dict[str, float | None]:
    """Mean backtest MASE/RMSSE of the selected method per item, and of zero, naive and ma."""
    chosen = bt.scores.join(
        selection.select("unique_id", pl.col("method").alias("_chosen")), on="unique_id"
    ).filter(pl.col("method") == pl.col("_chosen"))
    out: dict[str, float | None] = {
        f"selected_{m}": cast(float | None, chosen[m].mean()) for m in ("mase", "rmsse")
    }
    for ref in ("zero", "naive", "ma"):
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
        # the "all" group once, under the classes
        part = summary.filter(
            (pl.col("grouping") == grouping) & ((grouping == "class") | (pl.col("group") != "all"))
        )
        lines.append(f"{title} (* best by backtest {metric}; zero = forecasting nothing):")
        lines += [
            "  " + line
            for line in format_summary_lines(part.drop("grouping").rename({"group": "sb_class"}))
        ]
    losers = not_better_than_zero(
        summary.filter(pl.col("grouping") == "class").rename({"group": "sb_class"})
    )
    if losers:
        n_methods = summary.filter(
            (pl.col("grouping") == "class")
            & (pl.col("group") == "all")
            & (pl.col("method") != _REFERENCE)
        ).height
        head = (
            f"{len(losers)} of {n_methods} methods not better than zero on mean RMSSE over all "
            "items:"
        )
        lines += [head, *_wrap(losers, _LINE_WIDTH)]
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
        for ref, label in (("zero", "zero"), ("ma", "MA"), ("naive", "naive")):
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
        else (
            f"router auto: robust default {r.default} per {r.select_by} unless a method's backtest "
            f"{r.metric} is {r.margin:.0%} better (p < {r.alpha})"
            if r.default is not None
            else f"router auto: lowest backtest {r.metric} per {r.select_by}"
        )
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
