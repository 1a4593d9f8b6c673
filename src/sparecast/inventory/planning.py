"""``sparecast.plan``: the inventory plan of a demand panel and an items table, from Python.

The library side of ``sparecast plan --source demand.csv --items items.csv``: the items (a
frame or a CSV/Parquet file with ``unique_id`` and any of lead_time_days, lead_time_std_days,
moq, lot_size, unit_cost, on_hand, on_order) are validated (:mod:`sparecast.data.items`), the
missing values take their documented defaults, and :func:`sparecast.inventory.plan.compute_plan`
computes the policy of every item. No purchase orders: lead times are the quoted ones of the
items, else ``inventory.default_lead_time_days``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from sparecast.classify import classify
from sparecast.config import Settings, load_settings
from sparecast.data.items import plan_tables, read_items_file, validate_items_file
from sparecast.data.panel import DemandPanel
from sparecast.inventory.overrides import (
    Override,
    apply_forecast_overrides,
    apply_policy_overrides,
)
from sparecast.inventory.plan import PlanResult, compute_plan

__all__ = ["Plan", "plan"]


@dataclass
class Plan:
    """The result of :func:`plan`: ``policy`` (one row per item, the columns of policy.parquet,
    ``sparecast.inventory.plan.POLICY_COLUMNS``), ``notes`` (every default applied and what
    changed the result), ``rejected`` (the rejected item rows as they came, with
    ``input_row`` and ``reason``), ``summary`` (headline figures) and the full ``result``."""

    policy: pl.DataFrame
    notes: list[str]
    rejected: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    result: PlanResult | None = None


def _with_items(panel: DemandPanel, extra: list[str]) -> DemandPanel:
    """``panel`` with the items ``extra`` added with zero demand."""
    if not extra:
        return panel
    y = np.vstack([panel.y, np.zeros((len(extra), panel.n_periods), dtype=panel.y.dtype)])
    ids = np.concatenate([panel.item_ids, np.asarray(extra, dtype=object)])
    attrs = None
    if panel.attributes is not None:
        attrs = pl.DataFrame({"unique_id": [str(i) for i in ids]}).join(
            panel.attributes, on="unique_id", how="left", maintain_order="left"
        )
    return DemandPanel(y, ids, panel.start, panel.freq, attrs)


def plan(
    panel: DemandPanel | pl.DataFrame | pd.DataFrame,
    items: pl.DataFrame | pd.DataFrame | str | Path | None = None,
    *,
    settings: Settings | None = None,
    today: date | None = None,
    forecasts: pl.DataFrame | None = None,
    classification: pl.DataFrame | None = None,
    overrides: Mapping[str, Override] | None = None,
) -> Plan:
    """The inventory policy of every item of ``panel`` (a DemandPanel, or long-format rows
    ``unique_id, ds, y``) and of ``items`` (a frame or an items file; None: every default).

    Item rows are validated (rejected ones are returned in ``Plan.rejected`` and take the
    defaults, like items without a row); items only in ``items`` are planned with zero demand
    history. ``settings``: default ``load_settings()`` ([inventory] targets, policy, MOQ and
    lot-size defaults, ``default_lead_time_days``); ``today``: default ``data.today`` or the
    current date; ``forecasts``: long format with ``unique_id`` and ``forecast`` (it sets the
    lot sizes; default: the history mean); ``classification``: default ``classify(panel)``;
    ``overrides``: planner overrides by item (e.g. ``ForecastStore.overrides()``), those that
    apply on ``today`` are applied as ``sparecast plan`` does (forecast levels/multipliers to
    ``forecasts`` before planning, the rest to the policy: see
    :mod:`sparecast.inventory.overrides`).
    """
    settings = settings if settings is not None else load_settings()
    inv = settings.inventory
    today = today or settings.data.today or date.today()
    if not isinstance(panel, DemandPanel):
        panel = DemandPanel.from_long(panel)
    if items is None:
        raw = pl.DataFrame({"unique_id": []}, schema={"unique_id": pl.String})
    elif isinstance(items, str | Path):
        raw = read_items_file(items)
    else:
        raw = pl.from_pandas(items) if isinstance(items, pd.DataFrame) else items
    checked = validate_items_file(raw, target_column=inv.item_target_column)
    inputs = plan_tables(
        checked.valid,
        [str(i) for i in panel.item_ids],
        columns=raw.columns,
        today=today,
        moq_column=inv.moq_column,
        lot_size_column=inv.lot_size_column,
    )
    panel = _with_items(panel, inputs.only_in_items)
    if classification is None or inputs.only_in_items:
        classification = classify(panel, thresholds=settings.tiers.thresholds())
    active = {k: o for k, o in (overrides or {}).items() if o.is_active(today)}
    if active and forecasts is not None:
        forecasts = apply_forecast_overrides(forecasts, active, today)
    result = compute_plan(panel, classification, forecasts, inputs.tables, settings, today=today)
    if active:
        result.policy = apply_policy_overrides(result.policy, active, today)
        n = int(result.policy["override"].is_not_null().sum())
        result.notes.append(f"{n} item(s) with a planner override (policy column override)")
        result.summary["n_overrides"] = n
        result.summary["n_to_order"] = int((result.policy["suggested_order"] > 0).sum())
    notes = [*inputs.notes, *result.notes]
    if checked.rejected.height:
        counts = ", ".join(f"{r} {n}" for r, n in checked.report.counts.items())
        notes.insert(
            0,
            f"{checked.report.rows_rejected} row(s) of the items file rejected ({counts}), "
            "in Plan.rejected: not used (an item without a kept row takes the defaults)",
        )
    return Plan(result.policy, notes, checked.rejected, dict(result.summary), result)
