"""Agent-created secrets: a memo, and the one-time claim token (hashed) and claim time.

Revision ID: 0002_agents
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_agents"
down_revision: str | None = "0002_markets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("secrets") as batch:
        batch.add_column(sa.Column("memo", sa.Text(), nullable=True))
        batch.add_column(sa.Column("claim_token_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            batch.f("ix_secrets_claim_token_hash"), ["claim_token_hash"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("secrets") as batch:
        batch.drop_index(batch.f("ix_secrets_claim_token_hash"))
        batch.drop_column("claimed_at")
        batch.drop_column("claim_token_hash")
        batch.drop_column("memo")
