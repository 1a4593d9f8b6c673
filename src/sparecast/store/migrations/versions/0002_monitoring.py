"""Accuracy monitoring: observed demand, per-run item attributes, alerts, monitoring passes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observed_demand",
        sa.Column("freq", sa.String(1), nullable=False),
        sa.Column("unique_id", sa.String(200), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("freq", "unique_id", "ds"),
    )
    op.create_index("ix_observed_demand_ds", "observed_demand", ["freq", "ds"])
    op.create_table(
        "run_items",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("unique_id", sa.String(200), nullable=False),
        sa.Column("sb_class", sa.String(50), nullable=True),
        sa.Column("tier", sa.String(50), nullable=True),
        sa.Column("category", sa.String(200), nullable=True),
        sa.Column("scale_mase", sa.Float(), nullable=True),
        sa.Column("scale_rmsse", sa.Float(), nullable=True),
        sa.Column("expected_mae", sa.Float(), nullable=True),
        sa.Column("expected_mase", sa.Float(), nullable=True),
        sa.Column("expected_rmsse", sa.Float(), nullable=True),
        sa.Column("expected_mape", sa.Float(), nullable=True),
        sa.Column("expected_error_sum", sa.Float(), nullable=True),
        sa.Column("expected_actual_sum", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["forecast_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "unique_id"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("grouping", sa.String(20), nullable=False),
        sa.Column("group_name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(50), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_alerts_status", "alerts", ["status", "model_version"])
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("periods_scored", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False),
        sa.Column("open_alerts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitor_runs")
    op.drop_index("ix_alerts_status", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("run_items")
    op.drop_index("ix_observed_demand_ds", table_name="observed_demand")
    op.drop_table("observed_demand")
