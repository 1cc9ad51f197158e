"""secrets.policies_version: a counter the database raises on every change of the secret's
policies (triggers on ``policies``, whoever writes them: the API, the CLI, a raw UPDATE).

A bet that decided with cached policies checks the counter in the transaction that writes
its action (issue 14: no policy read before a rule's sell), so a change made by any process
is never decided around. Note for later migrations: on SQLite, a ``batch_alter_table`` on
``policies`` recreates the table and drops these triggers; create them again after one.

Revision ID: 0008_policies_version
Revises: 0007_rules_updated_at
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_policies_version"
down_revision: str | None = "0007_rules_updated_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUMP = "UPDATE secrets SET policies_version = policies_version + 1 WHERE id IN ({rows})"
_INSERTED = _BUMP.format(rows="NEW.secret_id")
_UPDATED = _BUMP.format(rows="OLD.secret_id, NEW.secret_id")  # once each, even if moved
_DELETED = _BUMP.format(rows="OLD.secret_id")

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION bump_policies_version() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_INSERTED};
    ELSIF TG_OP = 'UPDATE' THEN
        {_UPDATED};
    ELSE
        {_DELETED};
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""

_SQLITE_TRIGGERS = {
    "policies_version_insert": ("INSERT", _INSERTED),
    "policies_version_update": ("UPDATE", _UPDATED),
    "policies_version_delete": ("DELETE", _DELETED),
}


def upgrade() -> None:
    op.add_column(
        "secrets",
        sa.Column("policies_version", sa.Integer(), nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER policies_version AFTER INSERT OR UPDATE OR DELETE ON policies "
            "FOR EACH ROW EXECUTE FUNCTION bump_policies_version()"
        )
        return
    for name, (event, bump) in _SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} AFTER {event} ON policies BEGIN {bump}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER policies_version ON policies")
        op.execute("DROP FUNCTION bump_policies_version()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("secrets") as batch:
        batch.drop_column("policies_version")
