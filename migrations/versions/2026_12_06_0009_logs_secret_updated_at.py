"""transaction_logs(secret_id, updated_at): the rule claim's BUY check reads only recent rows.

A rule's sell with a position read earlier requires, in its claim's UPDATE (``bet_inputs``
``inputs_guard``; the full read has the same check), that the secret wrote no BUY of the
token since the read: a row of the secret, EXECUTED, PENDING or UNKNOWN, updated after it.
The only index with ``secret_id`` was (secret_id, status, created_at), so the check read
every row of the secret in those statuses, from the table, to compare ``updated_at``: its
cost grew with the secret's history (issue 14, round 12: ~1.3 ms of PostgreSQL CPU per
claim at 1,000 earlier rows per secret). With this index it reads the rows updated since.

Revision ID: 0009_logs_secret_updated_at
Revises: 0008_policies_version
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_logs_secret_updated_at"
down_revision: str | None = "0008_policies_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_transaction_logs_secret_id_updated_at"


def upgrade() -> None:
    op.create_index(_INDEX, "transaction_logs", ["secret_id", "updated_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="transaction_logs")
