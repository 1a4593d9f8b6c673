"""Initial schema: forecast runs, forecasts with quantiles, actual demand, run accuracy.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sparecast.store.schema import FloatArray

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("sparecast_version", sa.String(50), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("data_start", sa.Date(), nullable=False),
        sa.Column("data_end", sa.Date(), nullable=False),
        sa.Column("freq", sa.String(1), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("n_periods", sa.Integer(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("forecast_start", sa.Date(), nullable=False),
        sa.Column("forecast_dates", sa.Text(), nullable=False),
        sa.Column("quantile_levels", sa.Text(), nullable=False),
        sa.Column("actuals_start", sa.Date(), nullable=True),
        sa.Column("actuals_dates", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.UniqueConstraint("model_version", name="uq_forecast_runs_model_version"),
    )
    op.create_table(
        "forecasts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("unique_id", sa.String(200), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("forecast", FloatArray(), nullable=False),
        sa.Column("quantiles", FloatArray(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["forecast_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "unique_id"),
    )
    op.create_index("ix_forecasts_unique_id", "forecasts", ["unique_id", "run_id"])
    op.create_table(
        "actual_demand",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("unique_id", sa.String(200), nullable=False),
        sa.Column("y", FloatArray(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["forecast_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "unique_id"),
    )
    op.create_index("ix_actual_demand_unique_id", "actual_demand", ["unique_id", "run_id"])
    op.create_table(
        "run_accuracy",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("grouping", sa.String(20), nullable=False),
        sa.Column("group_name", sa.String(50), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("metric", sa.String(50), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("row_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["forecast_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "grouping", "group_name", "method", "metric"),
    )


def downgrade() -> None:
    op.drop_table("run_accuracy")
    op.drop_index("ix_actual_demand_unique_id", table_name="actual_demand")
    op.drop_table("actual_demand")
    op.drop_index("ix_forecasts_unique_id", table_name="forecasts")
    op.drop_table("forecasts")
    op.drop_table("forecast_runs")
