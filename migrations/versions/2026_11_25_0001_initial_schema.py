"""Initial schema: the Vincent core tables and the seed's trade-manager tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.Enum("POLYMARKET_WALLET", name="SecretType"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("encrypted_private_key", sa.Text(), nullable=False),
        sa.Column("eoa_address", sa.String(length=42), nullable=False),
        sa.Column("funder_address", sa.String(length=42), nullable=False),
        sa.Column("signature_type", sa.Integer(), nullable=False),
        sa.Column("encrypted_api_credentials", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_api_keys_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_secret_id"), ["secret_id"], unique=False)

    op.create_table(
        "paper_fills",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("condition_id", sa.String(length=80), nullable=True),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("shares", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("usd_amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("transaction_log_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_paper_fills_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_fills")),
    )
    with op.batch_alter_table("paper_fills", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_paper_fills_secret_id_token_id"), ["secret_id", "token_id"], unique=False
        )

    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column(
            "policy_type",
            sa.Enum(
                "SPENDING_LIMIT_PER_TX",
                "SPENDING_LIMIT_DAILY",
                "SPENDING_LIMIT_WEEKLY",
                "MARKET_ALLOWLIST",
                "REQUIRE_APPROVAL",
                "APPROVAL_THRESHOLD",
                name="PolicyType",
            ),
            nullable=False,
        ),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_policies_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint(
            "secret_id", "policy_type", name=op.f("uq_policies_secret_id_policy_type")
        ),
    )
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policies_secret_id"), ["secret_id"], unique=False)

    op.create_table(
        "trade_monitored_positions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("market_id", sa.String(length=200), nullable=False),
        sa.Column("market_slug", sa.String(length=400), nullable=True),
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("avg_entry_price", sa.Double(), nullable=True),
        sa.Column("current_price", sa.Double(), nullable=False),
        sa.Column("market_title", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=True),
        sa.Column("end_date", sa.String(length=64), nullable=True),
        sa.Column("redeemable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_trade_monitored_positions_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_monitored_positions")),
        sa.UniqueConstraint(
            "secret_id",
            "market_id",
            "token_id",
            "side",
            name=op.f("uq_trade_monitored_positions_secret_id_market_id_token_id_side"),
        ),
    )
    op.create_table(
        "trade_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column(
            "rule_type",
            sa.Enum("STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", name="TradeRuleType"),
            nullable=False,
        ),
        sa.Column("market_id", sa.String(length=200), nullable=False),
        sa.Column("market_slug", sa.String(length=400), nullable=True),
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=8), server_default="BUY", nullable=False),
        sa.Column("trigger_price", sa.Double(), nullable=False),
        sa.Column("trailing_percent", sa.Double(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "ACTIVE",
                "TRIGGERED",
                "PENDING_APPROVAL",
                "CANCELED",
                "EXPIRED",
                "FAILED",
                name="TradeRuleStatus",
            ),
            server_default="ACTIVE",
            nullable=False,
        ),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger_tx_hash", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "trigger_source",
            sa.Enum("MIDPOINT", "BEST_BID", "LAST_TRADE", name="TriggerSource"),
            server_default="MIDPOINT",
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_approval_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_trade_rules_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_rules")),
    )
    with op.batch_alter_table("trade_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trade_rules_secret_id_status"), ["secret_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trade_rules_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_trade_rules_token_id"), ["token_id"], unique=False)

    op.create_table(
        "transaction_logs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("action_type", sa.String(length=64), nullable=False),
        sa.Column(
            "request_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "response_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "DENIED",
                "PENDING_APPROVAL",
                "EXECUTED",
                "FAILED",
                "UNKNOWN",
                name="TransactionStatus",
            ),
            nullable=False,
        ),
        sa.Column("usd_value", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("order_id", sa.String(length=80), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column(
            "signed_order",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_transaction_logs_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_logs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_transaction_logs_idempotency_key")),
    )
    with op.batch_alter_table("transaction_logs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transaction_logs_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transaction_logs_secret_id_status_created_at"),
            ["secret_id", "status", "created_at"],
            unique=False,
        )

    op.create_table(
        "pending_approvals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("transaction_log_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("action_type", sa.String(length=64), nullable=False),
        sa.Column(
            "request_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("PENDING", "APPROVED", "DENIED", "EXPIRED", name="ApprovalStatus"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_pending_approvals_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_log_id"],
            ["transaction_logs.id"],
            name=op.f("fk_pending_approvals_transaction_log_id_transaction_logs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_approvals")),
    )
    with op.batch_alter_table("pending_approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_approvals_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pending_approvals_secret_id"), ["secret_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pending_approvals_status_expires_at"),
            ["status", "expires_at"],
            unique=False,
        )

    op.create_table(
        "trade_rule_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column(
            "event_type",
            sa.Enum(
                "RULE_CREATED",
                "RULE_EVALUATED",
                "RULE_TRIGGERED",
                "RULE_FAILED",
                "RULE_CANCELED",
                "RULE_TRAILING_UPDATED",
                "ACTION_ATTEMPT",
                "ACTION_PENDING_APPROVAL",
                "ACTION_EXECUTED",
                "ACTION_FAILED",
                name="TradeRuleEventType",
            ),
            nullable=False,
        ),
        sa.Column(
            "event_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["trade_rules.id"],
            name=op.f("fk_trade_rule_events_rule_id_trade_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_rule_events")),
    )
    with op.batch_alter_table("trade_rule_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trade_rule_events_rule_id_created_at"),
            ["rule_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("trade_rule_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trade_rule_events_rule_id_created_at"))

    op.drop_table("trade_rule_events")
    with op.batch_alter_table("pending_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_approvals_status_expires_at"))
        batch_op.drop_index(batch_op.f("ix_pending_approvals_secret_id"))
        batch_op.drop_index(batch_op.f("ix_pending_approvals_rule_id"))

    op.drop_table("pending_approvals")
    with op.batch_alter_table("transaction_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transaction_logs_secret_id_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_transaction_logs_order_id"))

    op.drop_table("transaction_logs")
    with op.batch_alter_table("trade_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trade_rules_token_id"))
        batch_op.drop_index(batch_op.f("ix_trade_rules_status"))
        batch_op.drop_index(batch_op.f("ix_trade_rules_secret_id_status"))

    op.drop_table("trade_rules")
    op.drop_table("trade_monitored_positions")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policies_secret_id"))

    op.drop_table("policies")
    with op.batch_alter_table("paper_fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_paper_fills_secret_id_token_id"))

    op.drop_table("paper_fills")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_secret_id"))

    op.drop_table("api_keys")
    op.drop_table("secrets")
    # PostgreSQL keeps the enum types after their tables are gone.
    for name in ENUM_TYPES:
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)


ENUM_TYPES = (
    "SecretType",
    "PolicyType",
    "TransactionStatus",
    "ApprovalStatus",
    "TradeRuleType",
    "TradeRuleStatus",
    "TradeRuleEventType",
    "TriggerSource",
)
