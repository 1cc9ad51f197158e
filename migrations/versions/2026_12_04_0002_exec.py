"""Trade rule events: ACTION_SETTLING (a sale matched, waiting for on-chain settlement).

Revision ID: 0002_exec
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_exec"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite stores the enum as text without a constraint: only PostgreSQL's type changes.
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(
                'ALTER TYPE "TradeRuleEventType" ADD VALUE IF NOT EXISTS \'ACTION_SETTLING\''
            )


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value; rows using it would be left without a meaning.
    pass
