"""Planner overrides: the current override per item and its append-only history.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def _values() -> list[sa.Column[object]]:
    """The override's own columns, shared by the current table and the history."""
    return [
        sa.Column("forecast_level", sa.Float(), nullable=True),
        sa.Column("forecast_multiplier", sa.Float(), nullable=True),
        sa.Column("reorder_point", sa.Float(), nullable=True),
        sa.Column("order_up_to", sa.Float(), nullable=True),
        sa.Column("do_not_order", sa.Boolean(), nullable=False),
        sa.Column("phase_out_date", sa.Date(), nullable=True),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.Date(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "item_overrides",
        sa.Column("unique_id", sa.String(200), primary_key=True),
        *_values(),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    op.create_table(
        "override_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("unique_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        *_values(),
    )
    op.create_index("ix_override_history_unique_id", "override_history", ["unique_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_override_history_unique_id", table_name="override_history")
    op.drop_table("override_history")
    op.drop_table("item_overrides")
