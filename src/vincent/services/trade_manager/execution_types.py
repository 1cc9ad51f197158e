"""What an execution is given and what it comes to: triggers, outcomes, event data. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from vincent.services.trade_manager.sell_planning import SellQuoter
from vincent.services.trade_manager.types import RuleSnapshot


class ExecutionOutcome(StrEnum):
    EXECUTED = "executed"
    PENDING_APPROVAL = "pending_approval"
    FAILED = "failed"  # permanent, denial included: the rule is FAILED
    RETRY = "retry"  # transient: the rule is ACTIVE again, not before next_attempt_at
    UNRESOLVED = "unresolved"  # sent, answer unknown: left TRIGGERED for reconciliation
    SETTLING = "settling"  # matched, settling on chain: left TRIGGERED for reconciliation
    SKIPPED = "skipped"  # another task or process owns the rule


@dataclass(frozen=True, slots=True)
class Trigger:
    """The price that crossed a rule. ``ts_event`` is the monotonic time it arrived."""

    price: Decimal
    source: str  # "websocket" or "poll"
    ts_event: float
    # Prices a sell against the book in hand (bounds the sell price without a round trip).
    quote: SellQuoter | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TrailingRaise:
    """A trailing level raised in memory and not yet persisted."""

    trigger_price: Decimal
    current_price: Decimal
    trailing_percent: Decimal | None
    source: str = "websocket"  # or "poll"
    trailing_amount: Decimal | None = None
    # The raise that woke a dormant stop (its activation must be stored, once).
    activated: bool = False


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    outcome: ExecutionOutcome
    rule_id: str
    order_id: str | None = None
    message: str | None = None
    next_attempt_at: datetime | None = None
    ts_order_sent: float | None = None  # monotonic, just before the order was handed over
    filled_shares: Decimal | None = None  # what the sale sold, when it is known


def evaluated_payload(rule: RuleSnapshot, trigger: Trigger) -> dict[str, Any]:
    """RULE_EVALUATED data for a fired rule (the websocket path adds ``source``)."""
    data: dict[str, Any] = {
        "currentPrice": float(trigger.price),
        "triggerPrice": float(rule.trigger_price),
        "shouldTrigger": True,
    }
    if trigger.source == "websocket":
        data["source"] = "websocket"
    return data
