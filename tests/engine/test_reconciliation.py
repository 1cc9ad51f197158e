"""Reconciliation on a real database (both engines) with a scripted skill."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from tests.engine.conftest import MakeRule, MakeSecret, ManualClock
from tests.engine.live import events_of, rule_row
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.models import PendingApproval, TradeRule, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import (
    ApprovalStatus,
    TradeRuleEventType,
    TradeRuleStatus,
    TransactionStatus,
)
from vincent.services.trade_manager.event_logger import log_event
from vincent.services.trade_manager.execution_outcomes import record_executed
from vincent.services.trade_manager.reconciliation import (
    UNKEYED_ATTEMPT_MESSAGE,
    reconcile_rules,
)
from vincent.services.trade_manager.rule_executor import (
    MAX_NO_LIQUIDITY_RETRIES,
    ExecutionOutcome,
    RuleExecutor,
)
from vincent.services.trade_manager.rule_manager import (
    mark_rule_pending_approval,
    mark_rule_triggered,
)
from vincent.skills.polymarket.errors import (
    ExchangeUnavailable,
    InsufficientBalance,
    NoLiquidity,
    SkillError,
)
from vincent.skills.polymarket.types import (
    AttemptOutcome,
    AttemptResolution,
    BetResult,
    BetStatus,
)

TOKEN = "111"


def _executor(
    session_factory: SessionFactory, skill: ScriptedSkill, clock: ManualClock
) -> RuleExecutor:
    return RuleExecutor(session_factory, skill, clock=clock, retry_delay=lambda n: 1.0)


async def _claim(
    session_factory: SessionFactory, rule_id: str, attempt: dict[str, object] | None
) -> None:
    async with session_factory() as session, session.begin():
        assert await mark_rule_triggered(session, rule_id)
        if attempt is not None:
            log_event(session, rule_id, TradeRuleEventType.ACTION_ATTEMPT, attempt)


async def test_open_attempts_are_settled_from_what_the_skill_knows(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    sold = await make_rule(secret_id, TOKEN)
    never_sent = await make_rule(secret_id, "222")
    no_attempt = await make_rule(secret_id, "333")
    unkeyed = await make_rule(secret_id, "444")
    await _claim(session_factory, sold.id, {"type": "market_order", "idempotencyKey": "k-sold"})
    await _claim(session_factory, never_sent.id, {"type": "market_order", "idempotencyKey": "k-x"})
    await _claim(session_factory, no_attempt.id, None)
    await _claim(session_factory, unkeyed.id, {"type": "market_order"})
    skill.resolutions["k-sold"] = AttemptResolution(
        AttemptOutcome.EXECUTED, BetResult(BetStatus.EXECUTED, "log-1", "0xw", order_id="0xabc")
    )

    report = await reconcile_rules(
        session_factory, skill, _executor(session_factory, skill, clock), now=clock.now()
    )

    assert dict(report.outcomes) == {
        sold.id: ExecutionOutcome.EXECUTED,
        never_sent.id: ExecutionOutcome.RETRY,
        no_attempt.id: ExecutionOutcome.RETRY,
        unkeyed.id: ExecutionOutcome.FAILED,
    }
    row = await rule_row(session_factory, sold.id)
    assert (row.status, row.trigger_tx_hash) == (TradeRuleStatus.TRIGGERED, "0xabc")
    row = await rule_row(session_factory, never_sent.id)
    assert (row.status, row.next_attempt_at) == (
        TradeRuleStatus.ACTIVE,
        clock.now() + timedelta(seconds=1),
    )
    assert (await rule_row(session_factory, no_attempt.id)).status is TradeRuleStatus.ACTIVE
    row = await rule_row(session_factory, unkeyed.id)
    assert (row.status, row.error_message) == (TradeRuleStatus.FAILED, UNKEYED_ATTEMPT_MESSAGE)
    assert skill.requests == []

    # Settled rules are left alone by the next pass.
    again = await reconcile_rules(
        session_factory, skill, _executor(session_factory, skill, clock), now=clock.now()
    )
    assert again.outcomes == ()
    kinds = [e.event_type for e in await events_of(session_factory, sold.id)]
    assert kinds.count(TradeRuleEventType.ACTION_EXECUTED) == 1


async def test_young_attempts_wait_for_the_age_bound(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    await _claim(session_factory, rule.id, {"type": "market_order", "idempotencyKey": "k"})
    executor = _executor(session_factory, skill, clock)

    # The attempt was written "now" by the database clock; the bound is an hour.
    report = await reconcile_rules(
        session_factory, skill, executor, now=clock.now(), min_attempt_age_s=10_000_000.0
    )

    assert report.outcomes == ()
    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED


# What the skill's executor writes on the audit row of a sale that filled.
_SOLD = {
    "orderId": "0xapproved",
    "status": "matched",
    "filledShares": "5",
    "filledUsd": "2",
    "exchange": {"success": True, "status": "matched", "orderID": "0xapproved"},
}


async def _pending(
    session_factory: SessionFactory,
    secret_id: str,
    rule_id: str,
    approval: ApprovalStatus,
    log_status: TransactionStatus,
    *,
    expires_in_s: float,
    clock: ManualClock,
) -> None:
    async with session_factory() as session, session.begin():
        log = TransactionLog(
            secret_id=secret_id,
            action_type="polymarket_bet",
            request_data={"amount": "5"},
            status=log_status,
            order_id="0xapproved" if log_status is TransactionStatus.EXECUTED else None,
            response_data=_SOLD if log_status is TransactionStatus.EXECUTED else None,
            usd_value=Decimal("2"),
        )
        session.add(log)
        await session.flush()
        pending = PendingApproval(
            secret_id=secret_id,
            transaction_log_id=log.id,
            rule_id=rule_id,
            action_type="polymarket_bet",
            request_data={"amount": "5"},
            reason="All transactions require human approval",
            status=approval,
            expires_at=clock.now() + timedelta(seconds=expires_in_s),
        )
        session.add(pending)
        await session.flush()
        assert await mark_rule_triggered(session, rule_id)
        assert await mark_rule_pending_approval(session, rule_id, pending.id)


async def test_decided_approvals_finish_their_rules(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    approved = await make_rule(secret_id, "1")
    denied = await make_rule(secret_id, "2")
    expired = await make_rule(secret_id, "3")
    waiting = await make_rule(secret_id, "4")
    executing = await make_rule(secret_id, "5")
    refused = await make_rule(secret_id, "6")
    cases = [
        (approved, ApprovalStatus.APPROVED, TransactionStatus.EXECUTED, 60.0),
        (denied, ApprovalStatus.DENIED, TransactionStatus.DENIED, 60.0),
        (expired, ApprovalStatus.PENDING, TransactionStatus.PENDING_APPROVAL, -1.0),
        (waiting, ApprovalStatus.PENDING, TransactionStatus.PENDING_APPROVAL, 60.0),
        (executing, ApprovalStatus.APPROVED, TransactionStatus.PENDING, 60.0),
        (refused, ApprovalStatus.APPROVED, TransactionStatus.FAILED, 60.0),
    ]
    for rule, approval, log_status, expires_in_s in cases:
        await _pending(
            session_factory,
            secret_id,
            rule.id,
            approval,
            log_status,
            expires_in_s=expires_in_s,
            clock=clock,
        )

    report = await reconcile_rules(
        session_factory, skill, _executor(session_factory, skill, clock), now=clock.now()
    )

    assert dict(report.outcomes) == {
        approved.id: ExecutionOutcome.EXECUTED,
        denied.id: ExecutionOutcome.FAILED,
        expired.id: ExecutionOutcome.FAILED,
        refused.id: ExecutionOutcome.FAILED,
    }
    row = await rule_row(session_factory, approved.id)
    assert (row.status, row.trigger_tx_hash, row.pending_approval_id) == (
        TradeRuleStatus.TRIGGERED,
        "0xapproved",
        None,
    )
    executed, triggered = (await events_of(session_factory, approved.id))[-2:]
    assert (executed.event_type, triggered.event_type) == (
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    )
    # Recorded as a sale the rule made itself: the exchange's answer and what filled.
    assert executed.event_data["result"]["orderDetails"] == _SOLD["exchange"]
    assert executed.event_data["result"]["filledShares"] == "5"
    assert (await rule_row(session_factory, denied.id)).error_message == (
        "Trade approval denied by the owner"
    )
    assert (await rule_row(session_factory, expired.id)).error_message == "Trade approval expired"
    assert (await rule_row(session_factory, refused.id)).error_message == (
        "Approved trade failed: FAILED"
    )
    for rule in (waiting, executing):
        assert (await rule_row(session_factory, rule.id)).status is (
            TradeRuleStatus.PENDING_APPROVAL
        )


async def test_an_execution_is_recorded_once_even_when_reported_twice(
    session_factory: SessionFactory,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    await _claim(session_factory, rule.id, {"type": "market_order", "idempotencyKey": "k"})
    result = BetResult(BetStatus.EXECUTED, "log-1", "0xw", order_id="0xabc")

    assert await record_executed(session_factory, rule.id, result) is True
    assert await record_executed(session_factory, rule.id, result) is False

    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds.count(TradeRuleEventType.ACTION_EXECUTED) == 1
    assert kinds.count(TradeRuleEventType.RULE_TRIGGERED) == 1

    # Reported twice at the same moment (a live outcome and a reconciliation), on two
    # connections: one records it, with its events; the other finds it recorded.
    other = await make_rule(secret_id, TOKEN)
    await _claim(session_factory, other.id, {"type": "market_order", "idempotencyKey": "k2"})
    at_once = await asyncio.gather(
        record_executed(session_factory, other.id, result),
        record_executed(session_factory, other.id, result),
    )
    assert sorted(at_once) == [False, True]
    kinds = [e.event_type for e in await events_of(session_factory, other.id)]
    assert kinds.count(TradeRuleEventType.ACTION_EXECUTED) == 1
    assert kinds.count(TradeRuleEventType.RULE_TRIGGERED) == 1


async def test_failed_attempts_are_recorded_by_their_failure_type(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    """Retryable → fired again; NoLiquidity → the bounded retry; anything else → FAILED.
    Decided from the failure's class alone: no audit row exists here."""
    secret_id = await make_secret("a")
    cases: dict[str, tuple[SkillError, int]] = {
        "k-503": (ExchangeUnavailable("503"), MAX_NO_LIQUIDITY_RETRIES),
        "k-fok": (NoLiquidity("FOK killed"), 0),
        "k-fok-spent": (NoLiquidity("FOK killed again"), MAX_NO_LIQUIDITY_RETRIES),
        "k-bal": (InsufficientBalance("not enough"), 0),
    }
    rules = {}
    for index, (key, (failure, retries)) in enumerate(cases.items()):
        rule = await make_rule(secret_id, str(index))
        rules[key] = rule.id
        await _claim(session_factory, rule.id, {"type": "market_order", "idempotencyKey": key})
        async with session_factory() as session, session.begin():
            await session.execute(
                sa.update(TradeRule).where(TradeRule.id == rule.id).values(attempt_count=retries)
            )
        skill.resolutions[key] = AttemptResolution(
            AttemptOutcome.FAILED, message=failure.message, failure=failure
        )

    report = await reconcile_rules(
        session_factory, skill, _executor(session_factory, skill, clock), now=clock.now()
    )

    assert dict(report.outcomes) == {
        rules["k-503"]: ExecutionOutcome.RETRY,
        rules["k-fok"]: ExecutionOutcome.RETRY,
        rules["k-fok-spent"]: ExecutionOutcome.FAILED,
        rules["k-bal"]: ExecutionOutcome.FAILED,
    }
    for key in ("k-503", "k-fok"):
        assert (await rule_row(session_factory, rules[key])).status is TradeRuleStatus.ACTIVE
    for key, message in (("k-fok-spent", "FOK killed again"), ("k-bal", "not enough")):
        row = await rule_row(session_factory, rules[key])
        assert (row.status, row.error_message) == (TradeRuleStatus.FAILED, message)
