"""Order decisions: the planner's approvals and rejections of suggested orders (web app).

Revision ID: 0005
Revises: 0004 (0001 before the merge of the overrides branch)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_decisions",
        sa.Column("line_key", sa.String(250), nullable=False),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("unique_id", sa.String(200), nullable=False),
        sa.Column("supplier_id", sa.String(200), nullable=True),
        sa.Column("suggested_quantity", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("line_key"),
    )
    op.create_index("ix_order_decisions_plan", "order_decisions", ["plan_id", "unique_id"])


def downgrade() -> None:
    op.drop_index("ix_order_decisions_plan", table_name="order_decisions")
    op.drop_table("order_decisions")
