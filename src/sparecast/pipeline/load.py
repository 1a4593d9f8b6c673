"""Loading: read a source, validate the items and demand rows and build the DemandPanel
(bucketed to weeks/months when asked). A long-format demand file can come with an items file
(``sparecast plan --items``, :mod:`sparecast.data.items`): its rows are validated like the ERP's
items table and turned into the plan's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import polars as pl

from sparecast.config import Settings
from sparecast.data.extract import extract_incremental, read_extract
from sparecast.data.items import PlanInputs, plan_tables, read_items_file, validate_items_file
from sparecast.data.mapping import ErpMapping
from sparecast.data.panel import DemandPanel
from sparecast.data.schema import ValidationReport, validate_demand, validate_table
from sparecast.data.sources import Source, open_source
from sparecast.errors import DataValidationError, SourceError
from sparecast.pipeline.progress import Progress

__all__ = ["LoadedData", "load_panel"]


@dataclass
class LoadedData:
    """What the source gave, after validation: the tables, the panel, the validation report and
    the rejected rows per table (items, demand), and the source itself (to read more tables).
    ``plan_inputs``: the plan's tables made of an items file (long-format sources with
    ``items_file``), else None."""

    panel: DemandPanel
    tables: dict[str, pl.DataFrame]
    reports: dict[str, ValidationReport]
    rejected: dict[str, pl.DataFrame]
    source_kind: str
    source: Source
    extract_info: dict[str, Any] = field(default_factory=dict)
    plan_inputs: PlanInputs | None = None


# The canonical tables the forecasting core reads; the others (suppliers, purchase orders,
# receipts, stock) are not needed to forecast and may be absent from the source.
_CORE_TABLES = ("items", "demand")


def load_panel(
    source: str,
    settings: Settings,
    output_dir: Path | None = None,
    *,
    full_extract: bool = False,
    progress: Progress | None = None,
    extra_tables: tuple[str, ...] = (),
    items_file: str | Path | None = None,
) -> LoadedData:
    """Read a source (SQLAlchemy URL, SQLite/CSV/Parquet path), validate the items and demand
    rows and build the DemandPanel.

    A database is extracted incrementally into ``output_dir/extract`` (``full_extract`` re-reads
    everything). With ``data.window_days`` the window ends at ``data.end_date`` or else at the
    last valid demand date (future-dated rows cannot move it). ``extra_tables``: canonical tables
    read besides items and demand (the plan step adds the purchasing tables), returned as read
    (not validated) in ``LoadedData.tables``. ``items_file``: the items file of a long-format
    source (:mod:`sparecast.data.items`; a database source refuses it): validated (its rejected
    rows under ``items``), its items without demand added to the panel with zero demand, and
    turned into ``LoadedData.plan_inputs``.
    """
    mapping = ErpMapping.from_dict(settings.data.erp_mapping)
    today = settings.data.today or date.today()
    names = _CORE_TABLES + tuple(t for t in extra_tables if t not in _CORE_TABLES)
    src = open_source(source, mapping=mapping)
    extract_info: dict[str, Any] = {}
    if src.url is not None and output_dir is not None:
        result = extract_incremental(
            src.url,
            output_dir,
            mapping=mapping,
            full=full_extract,
            tables=names,
            today=today,
            progress=(lambda t, done, total: progress(f"extract {t}", done, total))
            if progress is not None
            else None,
        )
        tables, kind = read_extract(output_dir, tables=names), "database"
        extract_info = result.to_dict()
    else:
        data = src.load(validate=False, tables=names)
        tables, kind = data.tables, data.kind
    reports: dict[str, ValidationReport] = {}
    rejected: dict[str, pl.DataFrame] = {}
    known: list[str] | None = None
    attributes = None
    item_file_rows: pl.DataFrame | None = None
    item_file_columns: list[str] = []
    if items_file is not None:
        if kind != "long_file":
            raise SourceError(
                f"--items is for a long-format demand file; {src.describe()} is a database: map "
                "its item master's lead_time_days, lead_time_std_days, moq and lot_size columns "
                "in [data.erp_mapping.items.columns] instead"
            )
        raw_items = read_items_file(items_file)
        item_file_columns = list(raw_items.columns)
        items_checked = validate_items_file(
            raw_items, target_column=settings.inventory.item_target_column
        )
        reports["items"], rejected["items"] = items_checked.report, items_checked.rejected
        item_file_rows = items_checked.valid
        attributes = item_file_rows.select(
            pl.col("item_id").alias("unique_id"), "category", "unit_cost"
        )
    if kind != "long_file" and "items" in tables:
        items_checked = validate_table("items", tables["items"])
        reports["items"], rejected["items"] = items_checked.report, items_checked.rejected
        items = items_checked.valid
        known = items["item_id"].to_list()
        attr_cols = [c for c in ("category", "unit_cost", "unit") if c in items.columns]
        attributes = items.select(pl.col("item_id").alias("unique_id"), *attr_cols)

    demand = tables["demand"]
    end = settings.data.end_date
    start = None
    if settings.data.window_days is not None:
        last = end
        if last is None:
            probe = validate_demand(demand, known_items=known, today=today).valid
            last = cast(date | None, probe["date"].max()) if probe.height else None
        if last is not None:
            start = last - timedelta(days=settings.data.window_days - 1)  # type: ignore[operator]
    checked = validate_demand(
        demand,
        known_items=known,
        window_start=start,
        window_end=end,
        today=today,
        categories=attributes,
        outlier_factor=settings.data.outlier_factor,
        outlier_action=settings.data.outlier_action,
    )
    reports["demand"] = checked.report
    rejected["demand"] = checked.rejected
    if kind == "long_file":  # give rejected rows back under the names they came with
        rejected["demand"] = checked.rejected.rename(
            {"item_id": "unique_id", "date": "ds", "quantity": "y"}, strict=False
        )
    if settings.data.strict:
        for report in reports.values():
            report.raise_if_rejected()
    valid = checked.valid
    if valid.height == 0:
        raise DataValidationError(
            f"no valid demand rows in {src.describe()}: "
            + "; ".join(checked.report.summary_lines())
        )
    plan_inputs = None
    if item_file_rows is not None:
        demand_ids = sorted(set(valid["item_id"].to_list()))
        plan_inputs = plan_tables(
            item_file_rows,
            demand_ids,
            columns=item_file_columns,
            today=today,
            moq_column=settings.inventory.moq_column,
            lot_size_column=settings.inventory.lot_size_column,
        )
        # every item of the demand and of the items file, the latter with zero demand
        known = sorted(set(demand_ids) | set(item_file_rows["item_id"].to_list()))
        attributes = (
            pl.DataFrame({"unique_id": known}).join(
                attributes, on="unique_id", how="left", maintain_order="left"
            )
            if attributes is not None
            else None
        )
    # ERP consumption is daily: bucket it to complete weeks/months when asked. A long file is
    # read at its own frequency (inferred, or data.freq).
    daily_source = kind != "long_file"
    panel = DemandPanel.from_long(
        valid.rename({"item_id": "unique_id", "date": "ds", "quantity": "y"}),
        freq="D" if daily_source else settings.data.freq,
        start=start,
        end=end,
        item_ids=known,
        attributes=attributes,
    )
    if daily_source and settings.data.freq not in (None, "D"):
        daily = panel
        panel = daily.bucket(settings.data.freq, complete_only=True)
        first = int((panel.start - daily.start).astype(int))
        kept = int((panel.future_dates(1)[0] - panel.start).astype(int))
        extract_info["bucketing"] = {
            "freq": panel.freq,
            "partial_days_dropped_at_start": first,
            "partial_days_dropped_at_end": daily.n_periods - first - kept,
            "demand_in_dropped_days": float(
                daily.y[:, :first].sum() + daily.y[:, first + kept :].sum()
            ),
        }
    return LoadedData(panel, tables, reports, rejected, kind, src, extract_info, plan_inputs)
