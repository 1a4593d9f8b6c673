"""``sparecast evaluate-plan``: the decision backtest of a source, written to a directory.

Reads the source as ``plan`` does (an ERP database or SQLite file with purchase orders and
receipts, the demo's included, or a long-format demand file with its items file: lead times,
MOQ, lot size, unit cost per item), learns each item's lead times from its purchase orders
(:func:`sparecast.inventory.leadtime.lead_time_stats`, converted to the panel's periods; the
quoted ones where there are none), takes unit cost, MOQ and lot size from the items table, runs
:func:`sparecast.inventory.decisions.evaluate_plan` and writes ``decisions_per_item.parquet``,
``decisions_summary.parquet``, ``decisions_curve.parquet``, ``decisions_goals.parquet``,
``decisions.json`` (goals and notes) and ``decisions_report.html``. The files are one set: written
into a staging folder and moved into place together when all are complete
(:mod:`sparecast.pipeline.staging`), so a crash midway leaves the previous set intact.
"""

from __future__ import annotations

import json
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
from sparecast.pipeline.outputs import REJECTED_ITEMS_FILE
from sparecast.pipeline.plan import PLAN_TABLES, plan_inputs_of
from sparecast.pipeline.staging import Staging, ensure_output_dir
from sparecast.urls import redact_url

__all__ = ["DECISION_FILES", "EvaluatePlanOutcome", "run_evaluate_plan", "write_decisions"]

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


def run_evaluate_plan(
    source: str,
    output_dir: Path,
    settings: Settings,
    *,
    targets: Sequence[float] = (0.9, 0.95, 0.98),
    split: int | None = None,
    items_file: str | Path | None = None,
) -> EvaluatePlanOutcome:
    """Load ``source``, backtest the plan's decisions, write the results into ``output_dir``.
    ``items_file``: the items file of a long-format ``source``, as ``sparecast plan --items``
    (its rejected rows written to ``rejected_items.parquet``)."""
    ensure_output_dir(output_dir)
    today = settings.data.today or date.today()
    loaded = load_panel(source, settings, None, extra_tables=PLAN_TABLES, items_file=items_file)
    tables, item_notes = plan_inputs_of(loaded)
    missing = [t for t in ("purchase_orders", "receipts") if t not in tables]
    if (loaded.source_kind == "long_file" and loaded.plan_inputs is None) or missing:
        raise SourceError(
            f"{redact_url(source)} has no purchase orders and receipts to learn lead times from; "
            "`sparecast evaluate-plan` needs an ERP database or SQLite file with the "
            "purchase_orders and receipts tables (the demo's erp.sqlite has them), or a "
            "long-format demand file with --items FILE: the items' lead_time_days, "
            "lead_time_std_days, moq, lot_size and unit_cost"
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
    bt.notes[:0] = item_notes
    rejected = None  # no items file: an earlier run's rejected_items.parquet is left alone
    if items_file is not None:
        rejected = loaded.rejected.get("items", pl.DataFrame())
    return EvaluatePlanOutcome(
        bt, write_decisions(bt, output_dir, source, panel.freq, targets, rejected_items=rejected)
    )


def write_decisions(
    bt: DecisionBacktest,
    output_dir: Path,
    source: str,
    freq: str,
    targets: Sequence[float],
    *,
    rejected_items: pl.DataFrame | None = None,
) -> dict[str, str]:
    """Write the backtest's files (:data:`DECISION_FILES`) into ``output_dir`` as one set:
    they are written into a staging folder and moved into place only when all are complete
    (:class:`sparecast.pipeline.staging.Staging`), so a crash midway leaves the previous set
    as it was. ``rejected_items``: the items file's rejected rows (written when there are
    some; an earlier run's file is removed when there are none; None: no items file).
    Returns the paths by file name."""
    stale = (REJECTED_ITEMS_FILE,) if rejected_items is not None else ()
    with Staging(output_dir, remove=stale) as staging:
        if rejected_items is not None and rejected_items.height:
            rejected_items.write_parquet(staging.dir / REJECTED_ITEMS_FILE)
        frames = {
            "decisions_per_item.parquet": bt.per_item,
            "decisions_summary.parquet": bt.summary,
            "decisions_curve.parquet": bt.curve,
            "decisions_goals.parquet": bt.goals,
        }
        for name, frame in frames.items():
            frame.write_parquet(staging.dir / name)
        meta = {
            "source": redact_url(source),
            "split": bt.split,
            "n_periods": bt.n_periods,
            "freq": freq,
            "targets": list(targets),
            "goals": bt.goals.to_dicts(),
            "notes": bt.notes,
        }
        (staging.dir / "decisions.json").write_text(
            json.dumps(meta, indent=2, default=str), encoding="utf-8"
        )
        html = render_decisions_report(bt, source=redact_url(source))
        (staging.dir / "decisions_report.html").write_text(html, encoding="utf-8")
        staging.prepare()
        staging.commit()
    return {name: str(output_dir / name) for name in DECISION_FILES}
