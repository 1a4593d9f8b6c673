"""Tables of the forecast history store (SQLAlchemy Core metadata).

A run's per-period values are stored as arrays, one row per item: the periods are the run's
``forecast_dates`` / ``actuals_dates``, the same for every item, and the quantiles are the
run's ``quantile_levels`` one after the other. Arrays
are ``double precision[]`` on PostgreSQL (``unnest`` them in SQL) and little-endian float64
BLOBs on SQLite; one row per item keeps a 100,000-item run at 100,000 rows and an item's
forecast (point and quantiles) one index lookup away.

The Alembic migrations in ``store/migrations/versions`` create exactly this schema; a test
compares them on SQLite and PostgreSQL. Change both together (new migration + this file).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "metadata",
    "FloatArray",
    "forecast_runs",
    "forecasts",
    "actual_demand",
    "run_accuracy",
    "model_aliases",
    "alias_events",
    "observed_demand",
    "run_items",
    "alerts",
    "monitor_runs",
    "order_decisions",
    "item_overrides",
    "override_history",
]


class FloatArray(TypeDecorator[list[float]]):
    """A list of float64: ``double precision[]`` on PostgreSQL, a float64 BLOB elsewhere."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(DOUBLE_PRECISION))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        array = np.asarray(value, dtype="<f8")
        return array.tolist() if dialect.name == "postgresql" else array.tobytes()

    def process_result_value(self, value: Any, dialect: Any) -> list[float] | None:
        if value is None:
            return None
        if isinstance(value, bytes | memoryview):
            return np.frombuffer(value, dtype="<f8").tolist()  # type: ignore[no-any-return]
        return list(value)


metadata = MetaData()

forecast_runs = Table(
    "forecast_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("sparecast_version", String(50), nullable=False),
    Column("config", Text, nullable=False),  # JSON
    Column("source", Text, nullable=False),
    Column("data_start", Date, nullable=False),
    Column("data_end", Date, nullable=False),
    Column("freq", String(1), nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("n_periods", Integer, nullable=False),
    Column("horizon", Integer, nullable=False),
    Column("forecast_start", Date, nullable=False),
    Column("forecast_dates", Text, nullable=False),  # JSON list of ISO dates
    Column("quantile_levels", Text, nullable=False),  # JSON list of percent levels
    Column("actuals_start", Date, nullable=True),
    Column("actuals_dates", Text, nullable=False),  # JSON list of ISO dates ([] without actuals)
    Column("notes", Text, nullable=False),  # JSON list of strings
    UniqueConstraint("model_version", name="uq_forecast_runs_model_version"),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("unique_id", String(200), primary_key=True),
    Column("method", String(50), nullable=False),
    Column("forecast", FloatArray, nullable=False),  # one value per forecast date
    # quantiles: the run's quantile_levels one after the other, each one value per forecast
    # date (level-major, NaN where the run has no value); empty when the run has none
    Column("quantiles", FloatArray, nullable=False),
)

actual_demand = Table(
    "actual_demand",
    metadata,
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("unique_id", String(200), primary_key=True),
    Column("y", FloatArray, nullable=False),  # per actuals date of the run
)

run_accuracy = Table(
    "run_accuracy",
    metadata,
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("grouping", String(20), primary_key=True),
    Column("group_name", String(50), primary_key=True),
    Column("method", String(50), primary_key=True),
    Column("metric", String(50), primary_key=True),
    Column("value", Float, nullable=True),
    Column("chosen", Boolean, nullable=False),
    Column("row_order", Integer, nullable=False),  # row of the summary, to give it back in order
)

# Planner overrides (migration 0003): the current override per item, and every change to it
# (set, changed, deleted, expired) appended to override_history, never updated.
_OVERRIDE_VALUES = (
    ("forecast_level", Float),
    ("forecast_multiplier", Float),
    ("reorder_point", Float),
    ("order_up_to", Float),
)

item_overrides = Table(
    "item_overrides",
    metadata,
    Column("unique_id", String(200), primary_key=True),
    *[Column(name, kind, nullable=True) for name, kind in _OVERRIDE_VALUES],
    Column("do_not_order", Boolean, nullable=False),
    Column("phase_out_date", Date, nullable=True),
    Column("set_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires", Date, nullable=False),
    Column("revision", Integer, nullable=False),  # override_history.id of the last change
)

override_history = Table(
    "override_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unique_id", String(200), nullable=False),
    Column("action", String(10), nullable=False),  # set | changed | deleted | expired
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(200), nullable=False),  # who set/deleted it ("system": expiry)
    Column("note", Text, nullable=False),  # the reason given for a deletion, else ""
    *[Column(name, kind, nullable=True) for name, kind in _OVERRIDE_VALUES],
    Column("do_not_order", Boolean, nullable=False),
    Column("phase_out_date", Date, nullable=True),
    Column("set_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires", Date, nullable=False),
)

# Item lookups across runs: "every forecast / every actual stored for item X".
Index("ix_forecasts_unique_id", forecasts.c.unique_id, forecasts.c.run_id)
Index("ix_actual_demand_unique_id", actual_demand.c.unique_id, actual_demand.c.run_id)

# The served-model pointer of the production loop (sparecast.pipeline.loop): which run the API
# serves (alias ``champion``; ``challenger``: the newest trained candidate), and every move of
# an alias with its reason. The service reads only these tables, never MLflow.
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("alias", String(50), primary_key=True),
    Column("model_version", String(200), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column(
        "action", String(20), nullable=False
    ),  # bootstrap | train | promote | keep | refresh | rollback
    Column("alias", String(50), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("previous_version", String(200), nullable=True),
    Column("reason", Text, nullable=False),
)
# ---------------------------------------------------------------- accuracy monitoring (0002)

# Demand that arrived after the runs, one row per period (the incremental load of
# sparecast.pipeline.monitor.record_actuals): a reload writes only new or corrected values.
observed_demand = Table(
    "observed_demand",
    metadata,
    Column("freq", String(1), primary_key=True),
    Column("unique_id", String(200), primary_key=True),
    Column("ds", Date, primary_key=True),
    Column("y", Float, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
)

# What monitoring needs of every item of a run: its groups, the in-sample scales of MASE and
# RMSSE (of the history the run was fitted on) and the backtest scores of its served method.
run_items = Table(
    "run_items",
    metadata,
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("unique_id", String(200), primary_key=True),
    Column("sb_class", String(50), nullable=True),
    Column("tier", String(50), nullable=True),
    Column("category", String(200), nullable=True),
    Column("scale_mase", Float, nullable=True),
    Column("scale_rmsse", Float, nullable=True),
    Column("expected_mae", Float, nullable=True),
    Column("expected_mase", Float, nullable=True),
    Column("expected_rmsse", Float, nullable=True),
    Column("expected_mape", Float, nullable=True),
    Column("expected_error_sum", Float, nullable=True),
    Column("expected_actual_sum", Float, nullable=True),
)

# Accuracy alerts: open while a group of a model version stays degraded, then closed. No
# foreign key: the history of alerts outlives pruned runs.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("model_version", String(200), nullable=False),
    Column("grouping", String(20), nullable=False),
    Column("group_name", String(200), nullable=False),
    Column("metric", String(50), nullable=False),
    Column("value", Float, nullable=True),
    Column("expected", Float, nullable=True),
    Column("threshold", Float, nullable=False),
    Column("periods", Integer, nullable=False),  # degraded periods in a row when last seen
    Column("period_end", Date, nullable=True),  # last scored forecast date when last seen
    Column("status", String(10), nullable=False),  # open | closed
    Column("reason", Text, nullable=False),
)

# One row per monitoring pass: when, what it scored, the verdict.
monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ran_at", DateTime(timezone=True), nullable=False),
    Column("model_version", String(200), nullable=True),
    Column("as_of", Date, nullable=False),
    Column("periods_scored", Integer, nullable=False),
    Column("degraded", Boolean, nullable=False),
    Column("open_alerts", Integer, nullable=False),
    Column("reason", Text, nullable=False),
)

Index("ix_observed_demand_ds", observed_demand.c.freq, observed_demand.c.ds)
Index("ix_alerts_status", alerts.c.status, alerts.c.model_version)
# The planner's decisions on suggested orders (web app's order workbench; migration 0005).
# One row per order line: ``line_key`` = plan id + item, so deciding again updates the row and
# the ERP write-back (keyed by line_key) never duplicates a line.
order_decisions = Table(
    "order_decisions",
    metadata,
    Column("line_key", String(250), primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("unique_id", String(200), nullable=False),
    Column("supplier_id", String(200), nullable=True),
    Column("suggested_quantity", Float, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("unit_cost", Float, nullable=True),
    Column("decision", String(20), nullable=False),  # approved | rejected
    Column("reason", Text, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=True),  # ERP write-back done
)
Index("ix_order_decisions_plan", order_decisions.c.plan_id, order_decisions.c.unique_id)
Index("ix_override_history_unique_id", override_history.c.unique_id, override_history.c.id)
