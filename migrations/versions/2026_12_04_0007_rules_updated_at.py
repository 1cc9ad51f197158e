"""An index on trade_rules.updated_at: the worker's poll tick reads only the rules changed
since its previous read (the delta sync), in time proportional to the changes.

Revision ID: 0007_rules_updated_at
Revises: 0002_agents
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_rules_updated_at"
down_revision: str | None = "0002_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trade_rules") as batch:
        batch.create_index(batch.f("ix_trade_rules_updated_at"), ["updated_at"])


def downgrade() -> None:
    with op.batch_alter_table("trade_rules") as batch:
        batch.drop_index(batch.f("ix_trade_rules_updated_at"))
