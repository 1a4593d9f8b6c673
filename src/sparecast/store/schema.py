"""Tables of the forecast history store (SQLAlchemy Core metadata).

The Alembic migrations in ``store/migrations/versions`` create exactly this schema; a test
compares them on SQLite and PostgreSQL. Change both together (new migration + this file).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "metadata",
    "forecast_runs",
    "forecasts",
    "forecast_quantiles",
    "actual_demand",
    "run_accuracy",
]

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
    Column("quantile_levels", Text, nullable=False),  # JSON list of percent levels
    Column("actuals_start", Date, nullable=True),
    Column("actuals_end", Date, nullable=True),
    Column("notes", Text, nullable=False),  # JSON list of strings
    UniqueConstraint("model_version", name="uq_forecast_runs_model_version"),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("unique_id", String(200), primary_key=True),
    Column("step", SmallInteger, primary_key=True),  # 1..horizon
    Column("ds", Date, nullable=False),
    Column("forecast", Float, nullable=False),
    Column("method", String(50), nullable=False),
)

forecast_quantiles = Table(
    "forecast_quantiles",
    metadata,
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("unique_id", String(200), primary_key=True),
    Column("level", Float, primary_key=True),  # percent, e.g. 97.5
    Column("step", SmallInteger, primary_key=True),
    Column("value", Float, nullable=False),
)

actual_demand = Table(
    "actual_demand",
    metadata,
    Column("unique_id", String(200), primary_key=True),
    Column("freq", String(1), primary_key=True),
    Column("ds", Date, primary_key=True),
    Column("y", Float, nullable=False),
    Column("run_id", Integer, ForeignKey("forecast_runs.id", ondelete="SET NULL"), nullable=True),
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

# Item lookups across runs ("every forecast ever made for item X") and actuals by run.
Index("ix_forecasts_unique_id", forecasts.c.unique_id, forecasts.c.run_id)
Index("ix_actual_demand_run_id", actual_demand.c.run_id)
