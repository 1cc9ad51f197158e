"""The domain's enums, shared by the tables, the services and the pure engine core. No I/O."""

from __future__ import annotations

import enum


class SecretType(enum.StrEnum):
    POLYMARKET_WALLET = "POLYMARKET_WALLET"


class TradeRuleType(enum.StrEnum):
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    TRAILING_STOP = "TRAILING_STOP"


class TradeRuleStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    TRIGGERED = "TRIGGERED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


class TradeRuleEventType(enum.StrEnum):
    RULE_CREATED = "RULE_CREATED"
    RULE_EVALUATED = "RULE_EVALUATED"
    RULE_TRIGGERED = "RULE_TRIGGERED"
    RULE_FAILED = "RULE_FAILED"
    RULE_CANCELED = "RULE_CANCELED"
    RULE_TRAILING_UPDATED = "RULE_TRAILING_UPDATED"
    ACTION_ATTEMPT = "ACTION_ATTEMPT"
    ACTION_PENDING_APPROVAL = "ACTION_PENDING_APPROVAL"
    ACTION_EXECUTED = "ACTION_EXECUTED"
    ACTION_FAILED = "ACTION_FAILED"
    # The sale matched and is settling on chain: not executed until its trades confirm.
    ACTION_SETTLING = "ACTION_SETTLING"
    # Added (issue 15): the rule ended without firing (market resolved or closed, expiresAt).
    RULE_EXPIRED = "RULE_EXPIRED"


class TriggerSource(enum.StrEnum):
    """Which price a rule watches (added; the seed always used the midpoint)."""

    MIDPOINT = "MIDPOINT"
    BEST_BID = "BEST_BID"
    LAST_TRADE = "LAST_TRADE"


class PolicyType(enum.StrEnum):
    SPENDING_LIMIT_PER_TX = "SPENDING_LIMIT_PER_TX"
    SPENDING_LIMIT_DAILY = "SPENDING_LIMIT_DAILY"
    SPENDING_LIMIT_WEEKLY = "SPENDING_LIMIT_WEEKLY"
    MARKET_ALLOWLIST = "MARKET_ALLOWLIST"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"
    APPROVAL_THRESHOLD = "APPROVAL_THRESHOLD"


class TransactionStatus(enum.StrEnum):
    PENDING = "PENDING"
    DENIED = "DENIED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    EXECUTED = "EXECUTED"
    FAILED = "FAILED"
    # The order may have reached the exchange but its answer never came back.
    UNKNOWN = "UNKNOWN"


class ApprovalStatus(enum.StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"


class ExecutionMode(enum.StrEnum):
    """Where orders go: the real exchange, or the paper ledger (EXECUTION_MODE)."""

    LIVE = "live"
    PAPER = "paper"
