"""Trade rules that know their market: trailing activation and amount, OCO groups, and the
RULE_EXPIRED event type.

Revision ID: 0002_markets
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_markets"
down_revision: str | None = "0002_failover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A new event type; SQLite stores the enum as plain text.
        with op.get_context().autocommit_block():
            op.execute("ALTER TYPE \"TradeRuleEventType\" ADD VALUE IF NOT EXISTS 'RULE_EXPIRED'")
    with op.batch_alter_table("trade_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trailing_amount", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("activation_price", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("oco_group_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("oco_paused_by", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_trade_rules_oco_group_id"), ["oco_group_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_trade_rules_oco_paused_by"), ["oco_paused_by"], unique=False
        )


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value; RULE_EXPIRED stays in "TradeRuleEventType".
    with op.batch_alter_table("trade_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trade_rules_oco_paused_by"))
        batch_op.drop_index(batch_op.f("ix_trade_rules_oco_group_id"))
        batch_op.drop_column("oco_paused_by")
        batch_op.drop_column("oco_group_id")
        batch_op.drop_column("activated_at")
        batch_op.drop_column("activation_price")
        batch_op.drop_column("trailing_amount")
