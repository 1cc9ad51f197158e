"""Every table: the Vincent core the trade manager needs, then the seed's three tables.

The trade-manager tables keep the seed's table, column and enum names exactly; columns we
added are marked as such.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vincent.db.base import Base, UTCDateTime, new_id, utcnow
from vincent.enums import (
    ApprovalStatus,
    ExecutionMode,
    PolicyType,
    SecretType,
    TradeRuleEventType,
    TradeRuleStatus,
    TradeRuleType,
    TransactionStatus,
    TriggerSource,
)

__all__ = [
    "ApiKey",
    "ApprovalStatus",
    "Base",
    "PaperFill",
    "PendingApproval",
    "Policy",
    "PolicyType",
    "Secret",
    "SecretType",
    "TradeMonitoredPosition",
    "TradeRule",
    "TradeRuleEvent",
    "TradeRuleEventType",
    "TradeRuleStatus",
    "TradeRuleType",
    "TransactionLog",
    "TransactionStatus",
    "TriggerSource",
    "WorkerLeadership",
]

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
Money = sa.Numeric(38, 18)


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    return sa.Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


def _execution_mode() -> Mapped[ExecutionMode]:
    """Added column: the mode (live or paper) a row was made in; rows from before it are live.

    Stored as VARCHAR, not a database enum type.
    """
    return mapped_column(
        sa.Enum(
            ExecutionMode,
            native_enum=False,
            create_constraint=False,
            length=8,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=ExecutionMode.LIVE,
        server_default=ExecutionMode.LIVE.value,
    )


# --------------------------------------------------------------------------- Vincent core


class Secret(Base):
    """A tenant: one Polymarket wallet. The private key is stored encrypted, never in clear."""

    __tablename__ = "secrets"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    type: Mapped[SecretType] = mapped_column(
        _enum(SecretType, "SecretType"), default=SecretType.POLYMARKET_WALLET
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    encrypted_private_key: Mapped[str] = mapped_column(sa.Text)
    eoa_address: Mapped[str] = mapped_column(sa.String(42))
    funder_address: Mapped[str] = mapped_column(sa.String(42))
    signature_type: Mapped[int] = mapped_column(sa.Integer, default=0)
    # The SDK's L2 API credentials, encrypted; cached so a restart does not re-derive them.
    encrypted_api_credentials: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Agent-created secrets (POST /api/secrets): the agent's memo, and the SHA-256 of the
    # one-time claim token until its owner claims it (then null, and claimed_at set).
    memo: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    claim_token_hash: Mapped[str | None] = mapped_column(
        sa.String(64), nullable=True, unique=True, index=True
    )
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Raised by the database (triggers on ``policies``) on every change of the secret's
    # policies: a bet decided with cached policies checks it when it writes its action.
    policies_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class ApiKey(Base):
    """An agent's API key. Only the SHA-256 hash of the key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Policy(Base):
    __tablename__ = "policies"
    __table_args__ = (sa.UniqueConstraint("secret_id", "policy_type"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    policy_type: Mapped[PolicyType] = mapped_column(_enum(PolicyType, "PolicyType"))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TransactionLog(Base):
    """The audit log: one row per skill action, updated to its final status."""

    __tablename__ = "transaction_logs"
    __table_args__ = (
        sa.Index(None, "secret_id", "status", "created_at"),
        # Added (0009_logs_secret_updated_at): "did the secret buy the token since the
        # position was read" (``bet_inputs``, in a rule's claim) reads only the secret's rows
        # written since, not its whole history.
        sa.Index(None, "secret_id", "updated_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(sa.ForeignKey("secrets.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    action_type: Mapped[str] = mapped_column(sa.String(64))
    request_data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    response_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    status: Mapped[TransactionStatus] = mapped_column(
        _enum(TransactionStatus, "TransactionStatus"), default=TransactionStatus.PENDING
    )
    usd_value: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    order_id: Mapped[str | None] = mapped_column(sa.String(80), nullable=True, index=True)
    # Caller-chosen key that makes a retried action land on the same row (and order).
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(128), nullable=True, unique=True)
    # The signed order, kept so an unknown outcome is resolved by re-posting the same order.
    signed_order: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error_message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Added (0002_modes): paper actions never execute live, nor live ones on paper.
    execution_mode: Mapped[ExecutionMode] = _execution_mode()


class PendingApproval(Base):
    __tablename__ = "pending_approvals"
    __table_args__ = (sa.Index(None, "status", "expires_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(
        sa.ForeignKey("secrets.id", ondelete="CASCADE"), index=True
    )
    transaction_log_id: Mapped[str] = mapped_column(
        sa.ForeignKey("transaction_logs.id", ondelete="CASCADE")
    )
    # Set when a trade rule's sell is waiting on this approval.
    rule_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True, index=True)
    action_type: Mapped[str] = mapped_column(sa.String(64))
    request_data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[ApprovalStatus] = mapped_column(
        _enum(ApprovalStatus, "ApprovalStatus"), default=ApprovalStatus.PENDING
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Added (0002_modes): executed only by a process of this mode.
    execution_mode: Mapped[ExecutionMode] = _execution_mode()


class PaperFill(Base):
    """A fill in paper mode (EXECUTION_MODE=paper): the paper ledger holdings derive from."""

    __tablename__ = "paper_fills"
    __table_args__ = (sa.Index(None, "secret_id", "token_id"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(sa.ForeignKey("secrets.id", ondelete="CASCADE"))
    token_id: Mapped[str] = mapped_column(sa.String(100))
    condition_id: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    side: Mapped[str] = mapped_column(sa.String(4))
    shares: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    usd_amount: Mapped[Decimal] = mapped_column(Money)
    transaction_log_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --------------------------------------------------------------------------- trade manager (seed)


class TradeRule(Base):
    __tablename__ = "trade_rules"
    __table_args__ = (
        sa.Index(None, "secret_id", "status"),
        sa.Index(None, "status"),
        sa.Index(None, "token_id"),
        # Added (0007_rules_updated_at): the worker's delta sync reads rules changed since.
        sa.Index(None, "updated_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(sa.ForeignKey("secrets.id", ondelete="CASCADE"))
    rule_type: Mapped[TradeRuleType] = mapped_column(_enum(TradeRuleType, "TradeRuleType"))
    market_id: Mapped[str] = mapped_column(sa.String(200))
    market_slug: Mapped[str | None] = mapped_column(sa.String(400), nullable=True)
    token_id: Mapped[str] = mapped_column(sa.String(100))
    side: Mapped[str] = mapped_column(sa.String(8), default="BUY", server_default="BUY")
    trigger_price: Mapped[float] = mapped_column(sa.Double)
    trailing_percent: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    # JSON text as in the seed: {"type":"SELL_ALL"} or {"type":"SELL_PARTIAL","amount":N}.
    action: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[TradeRuleStatus] = mapped_column(
        _enum(TradeRuleStatus, "TradeRuleStatus"),
        default=TradeRuleStatus.ACTIVE,
        server_default=TradeRuleStatus.ACTIVE.value,
    )
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    trigger_tx_hash: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Added columns.
    trigger_source: Mapped[TriggerSource] = mapped_column(
        _enum(TriggerSource, "TriggerSource"),
        default=TriggerSource.MIDPOINT,
        server_default=TriggerSource.MIDPOINT.value,
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempt_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pending_approval_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    # Added (0002_modes): watched and executed only by a worker of this mode.
    execution_mode: Mapped[ExecutionMode] = _execution_mode()
    # Added columns (issue 15: trailing activation and amount, OCO groups).
    trailing_amount: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    activation_price: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    oco_group_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    # The group's rule that fired and is executing: this rule watches again only once that
    # execution ends without a sell (cleared), and is CANCELED when it sells.
    oco_paused_by: Mapped[str | None] = mapped_column(sa.String(32), nullable=True, index=True)


class TradeMonitoredPosition(Base):
    __tablename__ = "trade_monitored_positions"
    __table_args__ = (sa.UniqueConstraint("secret_id", "market_id", "token_id", "side"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(sa.ForeignKey("secrets.id", ondelete="CASCADE"))
    market_id: Mapped[str] = mapped_column(sa.String(200))
    market_slug: Mapped[str | None] = mapped_column(sa.String(400), nullable=True)
    token_id: Mapped[str] = mapped_column(sa.String(100))
    side: Mapped[str] = mapped_column(sa.String(8))
    quantity: Mapped[float] = mapped_column(sa.Double)
    avg_entry_price: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    current_price: Mapped[float] = mapped_column(sa.Double)
    market_title: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    end_date: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    redeemable: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    last_updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TradeRuleEvent(Base):
    __tablename__ = "trade_rule_events"
    __table_args__ = (sa.Index(None, "rule_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(sa.ForeignKey("trade_rules.id", ondelete="CASCADE"))
    event_type: Mapped[TradeRuleEventType] = mapped_column(
        _enum(TradeRuleEventType, "TradeRuleEventType")
    )
    event_data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerLeadership(Base):
    """The monitoring workers' leadership epoch (PostgreSQL standbys; one row, id 1).

    Added for standby workers: the leader bumps ``epoch`` when it takes over, and every
    claim checks it still holds that epoch, so a deposed leader can never claim a rule.
    """

    __tablename__ = "worker_leadership"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(sa.BigInteger)
    leader_id: Mapped[str] = mapped_column(sa.String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
