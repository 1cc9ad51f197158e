"""What an execution is given and comes to, and the writers that record it.

``Trigger`` → ``ExecutionResult`` (an ``ExecutionOutcome``). Each ``record_*`` writes the rule's
transition plus its events, one transaction each; shared by the executor (live outcomes) and
reconciliation (outcomes found after a crash or an approval). Never calls the network: callers
finish their network call before coming here. Event payloads follow the wire contract §6.3.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from vincent.db.base import new_id, utcnow
from vincent.db.driver_statement import write_at_driver
from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType
from vincent.services.trade_manager import oco
from vincent.services.trade_manager.backoff import BackoffPolicy, RandomFn, full_jitter_delay_s
from vincent.services.trade_manager.event_logger import event_unless_last, log_event, log_events
from vincent.services.trade_manager.rule_manager import (
    mark_rule_executed,
    mark_rule_executed_alone,
    mark_rule_failed,
    mark_rule_pending_approval,
    revert_rule_to_active,
)
from vincent.services.trade_manager.sell_planning import SellQuoter
from vincent.services.trade_manager.types import RuleSnapshot
from vincent.skills.polymarket.types import BetResult

logger = logging.getLogger(__name__)


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


PENDING_APPROVAL_MESSAGE = "Trade requires human approval; rule paused until resolved"

# Retry number (1 = first retry) → delay in seconds, before the exchange's retry-after.
RetryDelay = Callable[[int], float]


def retry_delay_from(policy: BackoffPolicy, random_fn: RandomFn) -> RetryDelay:
    """Delay before retry ``attempt`` (1-based) of one rule: ``policy`` with full jitter."""

    def delay_s(attempt: int) -> float:
        return full_jitter_delay_s(policy, max(attempt - 1, 0), random_fn())

    return delay_s


def executed_payload(result: BetResult) -> dict[str, Any]:
    """ACTION_EXECUTED ``result``: the bet data; absent keys stay absent (JS ``undefined``)."""
    data: dict[str, Any] = {}
    if result.order_id is not None:
        data["orderId"] = result.order_id
    data["status"] = "executed"
    data["transactionLogId"] = result.transaction_log_id
    data["walletAddress"] = result.wallet_address
    if result.order_details is not None:
        data["orderDetails"] = result.order_details
    if result.filled_shares is not None:
        data["filledShares"] = str(result.filled_shares)
    return data


async def record_executed(session_factory: SessionFactory, rule_id: str, result: BetResult) -> bool:
    """TRIGGERED|PENDING_APPROVAL → TRIGGERED with the order id; ACTION_EXECUTED, RULE_TRIGGERED.

    Recorded once: the UPDATE only moves a rule without ``trigger_tx_hash`` (a live outcome
    racing a reconciliation finds it set), and the events go with it.
    """
    triggered: dict[str, Any] = {"executed": True}
    if result.order_id is not None:
        triggered = {"orderId": result.order_id, "executed": True}
    events: list[tuple[TradeRuleEventType, dict[str, Any]]] = [
        (TradeRuleEventType.ACTION_EXECUTED, {"result": executed_payload(result)}),
        (TradeRuleEventType.RULE_TRIGGERED, {"result": triggered}),
    ]
    # A rule in no OCO group: one round trip (PostgreSQL), one call on SQLite's thread (a
    # file); else, or when that did not move it, the transaction below.
    if await mark_rule_executed_alone(session_factory, rule_id, result.order_id, events):
        return True
    async with session_factory() as session, session.begin():
        moved = await mark_rule_executed(session, rule_id, result.order_id)
        if moved is None:
            logger.info("rule_execution_not_recorded", extra={"rule_id": rule_id})
            return False
        await log_events(session, [(rule_id, kind, data) for kind, data in events], utcnow())
        if moved.in_oco_group:  # OCO: the sell filled; a rule alone paused nothing
            await oco.cancel_paused_siblings(session, rule_id)
    return True


async def warm_record_executed(session_factory: SessionFactory) -> None:
    """Run ``record_executed``'s statements for a rule in no OCO group and
    ``record_settling``'s once for a rule id no rule has: each is compiled for the driver
    (and prepared) before a first fire's outcome needs it, and writes nothing (the UPDATE
    matches no row, and the events are written only with it; the settling INSERT selects
    from the rule's row)."""
    await _insert_settling(session_factory, "", {}, None)
    events: list[tuple[TradeRuleEventType, dict[str, Any]]] = [
        (TradeRuleEventType.ACTION_EXECUTED, {}),
        (TradeRuleEventType.RULE_TRIGGERED, {}),
    ]
    await mark_rule_executed_alone(session_factory, "", None, events)


SETTLING_MESSAGE = "Sale matched; waiting for its on-chain settlement before it counts"


async def record_settling(session_factory: SessionFactory, rule_id: str, result: BetResult) -> bool:
    """ACTION_SETTLING for a sale that matched and is not settled yet; once per order
    (not written again while the rule's last event is this order's ACTION_SETTLING).

    The rule stays TRIGGERED without ``triggerTxHash`` (an open attempt), so the poll
    tick's reconciliation follows it to CONFIRMED or FAILED. One statement, the check in
    it (``event_unless_last``), run by itself at the driver (``write_at_driver``): on
    PostgreSQL one round trip, autocommitted, at asyncpg itself; on a SQLite file one call
    on aiosqlite's thread, its commit in it.
    """
    data: dict[str, Any] = {
        "message": SETTLING_MESSAGE,
        "orderId": result.order_id,
        "transactionLogId": result.transaction_log_id,
    }
    if result.filled_shares is not None:
        data["filledShares"] = str(result.filled_shares)
    return await _insert_settling(session_factory, rule_id, data, result.order_id)


_SETTLING_ONCE = event_unless_last(TradeRuleEventType.ACTION_SETTLING, "orderId")


async def _insert_settling(
    session_factory: SessionFactory, rule_id: str, data: dict[str, Any], order_id: str | None
) -> bool:
    params = {
        "event_id": new_id(),
        "event_rule_id": rule_id,
        "event_data": data,
        "event_now": utcnow(),
        "event_key_value": order_id,
    }
    return bool(await write_at_driver(session_factory, _SETTLING_ONCE, params))


async def record_failed(
    session_factory: SessionFactory,
    rule_id: str,
    message: str,
    *,
    now: datetime,
    action_failed: bool = True,
) -> bool:
    """→ FAILED with ``message``: ACTION_FAILED (permanent) then RULE_FAILED if it moved."""
    async with session_factory() as session, session.begin():
        if action_failed:
            log_event(
                session,
                rule_id,
                TradeRuleEventType.ACTION_FAILED,
                {"message": message, "isPermanent": True},
            )
        await oco.release_paused_siblings(session, rule_id, now)  # OCO: nothing sold
        return await mark_rule_failed(session, rule_id, message, now=now)


async def record_pending_approval(
    session_factory: SessionFactory, rule_id: str, pending_approval_id: str | None
) -> bool:
    """TRIGGERED → PENDING_APPROVAL; ACTION_PENDING_APPROVAL."""
    async with session_factory() as session, session.begin():
        moved = await mark_rule_pending_approval(session, rule_id, pending_approval_id)
        if moved:
            log_event(
                session,
                rule_id,
                TradeRuleEventType.ACTION_PENDING_APPROVAL,
                {"message": PENDING_APPROVAL_MESSAGE},
            )
        return moved


async def record_retry(
    session_factory: SessionFactory,
    rule_id: str,
    message: str,
    *,
    now: datetime,
    retry_delay: RetryDelay,
    retry_after_s: float | None = None,
    max_attempts: int | None = None,
    details: dict[str, Any] | None = None,
) -> datetime | None:
    """TRIGGERED → ACTIVE after a transient failure; return when it may be tried again.

    Returns None (and changes nothing) when the rule was no longer TRIGGERED, or when it
    has already been retried ``max_attempts`` times. ``details`` go into ACTION_FAILED.
    """
    async with session_factory() as session, session.begin():
        attempts = (
            await session.execute(sa.select(TradeRule.attempt_count).where(TradeRule.id == rule_id))
        ).scalar_one_or_none()
        if attempts is None or (max_attempts is not None and attempts >= max_attempts):
            return None
        # Never sooner than the exchange asked (a 429's retry-after).
        delay_s = max(retry_delay(attempts + 1), retry_after_s or 0.0)
        next_attempt_at = now + timedelta(seconds=delay_s)
        if not await revert_rule_to_active(session, rule_id, next_attempt_at):
            return None  # the rule moved on under us: nothing to retry
        await oco.release_paused_siblings(session, rule_id, now)  # OCO: nothing sold
        log_event(
            session,
            rule_id,
            TradeRuleEventType.ACTION_FAILED,
            {"message": message, "isPermanent": False, **(details or {})},
        )
        return next_attempt_at
