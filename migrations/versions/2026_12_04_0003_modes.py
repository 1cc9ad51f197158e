"""Execution mode (live or paper) on audit rows, approvals and trade rules.

Existing rows were all made before paper and live were told apart: they are ``live``.

Revision ID: 0002_modes
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_modes"
down_revision: str | None = "0002_exec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("transaction_logs", "pending_approvals", "trade_rules")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "execution_mode", sa.String(length=8), server_default="live", nullable=False
                )
            )


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("execution_mode")
