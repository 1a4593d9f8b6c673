"""``sparecast evaluate-plan``: the decision backtest of a source, written to a directory.

Reads the source as ``plan`` does (an ERP database or SQLite file with purchase orders and
receipts, the demo's included), learns each item's lead times from its purchase orders
(:func:`sparecast.inventory.leadtime.lead_time_stats`, converted to the panel's periods), takes
unit cost, MOQ and lot size from the items table, runs
:func:`sparecast.inventory.decisions.evaluate_plan` and writes ``decisions_per_item.parquet``,
``decisions_summary.parquet``, ``decisions_curve.parquet``, ``decisions_goals.parquet``,
``decisions.json`` (goals and notes) and ``decisions_report.html``. Each file is written beside
and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.classify import classify
from sparecast.config import Settings
from sparecast.errors import SourceError
from sparecast.inventory.decisions import DecisionBacktest, evaluate_plan
from sparecast.inventory.decisions_report import render_decisions_report
from sparecast.inventory.plan import plan_lead_times
from sparecast.inventory.policy import resolve_item_column
from sparecast.pipeline.load import load_panel
from sparecast.pipeline.plan import PLAN_TABLES
from sparecast.pipeline.staging import ensure_output_dir
from sparecast.urls import redact_url

__all__ = ["DECISION_FILES", "EvaluatePlanOutcome", "run_evaluate_plan"]

PERIOD_DAYS = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0}
DECISION_FILES = (
    "decisions_per_item.parquet",
    "decisions_summary.parquet",
    "decisions_curve.parquet",
    "decisions_goals.parquet",
    "decisions.json",
    "decisions_report.html",
)


@dataclass(frozen=True)
class EvaluatePlanOutcome:
    backtest: DecisionBacktest
    paths: dict[str, str]


def _write(path: Path, write: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(write, pl.DataFrame):
        write.write_parquet(tmp)
    else:
        tmp.write_text(str(write), encoding="utf-8")
    os.replace(tmp, path)


def run_evaluate_plan(
    source: str,
    output_dir: Path,
    settings: Settings,
    *,
    targets: Sequence[float] = (0.9, 0.95, 0.98),
    split: int | None = None,
) -> EvaluatePlanOutcome:
    """Load ``source``, backtest the plan's decisions, write the results into ``output_dir``."""
    ensure_output_dir(output_dir)
    today = settings.data.today or date.today()
    loaded = load_panel(source, settings, None, extra_tables=PLAN_TABLES)
    tables = loaded.tables
    missing = [t for t in ("purchase_orders", "receipts") if t not in tables]
    if loaded.source_kind == "long_file" or missing:
        raise SourceError(
            f"{redact_url(source)} has no purchase orders and receipts to learn lead times from; "
            "`sparecast evaluate-plan` needs an ERP database or SQLite file with the "
            "purchase_orders and receipts tables (the demo's erp.sqlite has them)"
        )
    panel = loaded.panel
    ids = [str(i) for i in panel.item_ids]
    inv = settings.inventory
    items, lt = plan_lead_times(tables, ids, inv, today)  # the same inputs as `plan`
    period_days = PERIOD_DAYS[panel.freq]
    samples = [s / period_days for s in lt.samples_for(ids)]
    cost = resolve_item_column(items, ids, "unit_cost", 1.0)
    # the tiers of the training cut (the aggregate mode's per-tier minimum fill rates)
    cut = panel.n_periods * 2 // 3 if split is None else split
    tiers = None
    if 0 < cut < panel.n_periods:
        train = panel.slice_periods(cut)
        tiers = (
            pl.DataFrame({"unique_id": ids})
            .join(
                classify(train, thresholds=settings.tiers.thresholds()).select(
                    pl.col("unique_id").cast(pl.String), "tier"
                ),
                on="unique_id",
                how="left",
                maintain_order="left",
            )["tier"]
            .fill_null("very_intermittent")
            .to_list()
        )
    bt = evaluate_plan(
        panel.y,
        samples,
        targets=targets,
        settings=settings,
        split=split,
        period_days=period_days,
        unit_cost=np.where(np.isfinite(cost), cost, 1.0),
        moq=resolve_item_column(items, ids, inv.moq_column, inv.moq),
        lot_size=resolve_item_column(items, ids, inv.lot_size_column, inv.lot_size),
        item_ids=ids,
        tiers=tiers,
    )
    paths: dict[str, str] = {}
    frames = {
        "decisions_per_item.parquet": bt.per_item,
        "decisions_summary.parquet": bt.summary,
        "decisions_curve.parquet": bt.curve,
        "decisions_goals.parquet": bt.goals,
    }
    for name, frame in frames.items():
        _write(output_dir / name, frame)
        paths[name] = str(output_dir / name)
    meta = {
        "source": redact_url(source),
        "split": bt.split,
        "n_periods": bt.n_periods,
        "freq": panel.freq,
        "targets": list(targets),
        "goals": bt.goals.to_dicts(),
        "notes": bt.notes,
    }
    _write(output_dir / "decisions.json", json.dumps(meta, indent=2, default=str))
    paths["decisions.json"] = str(output_dir / "decisions.json")
    html = render_decisions_report(bt, source=redact_url(source))
    _write(output_dir / "decisions_report.html", html)
    paths["decisions_report.html"] = str(output_dir / "decisions_report.html")
    return EvaluatePlanOutcome(bt, paths)
