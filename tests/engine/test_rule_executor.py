"""The executor against a real database (both engines) and a scripted skill."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.engine.conftest import MakeRule, MakeSecret, ManualClock
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.event_logger import get_rule_events
from vincent.services.trade_manager.fire_lanes import FireLanes
from vincent.services.trade_manager.order_book import SellQuote
from vincent.services.trade_manager.rule_executor import (
    MAX_NO_LIQUIDITY_RETRIES,
    ExecutionOutcome,
    RuleExecutor,
    TrailingRaise,
    Trigger,
)
from vincent.services.trade_manager.rule_manager import get_rule_by_id
from vincent.skills.polymarket.errors import (
    ExchangeUnavailable,
    InsufficientBalance,
    NoLiquidity,
    RateLimited,
    SkillError,
    UnknownOutcome,
)
from vincent.skills.polymarket.types import (
    AttemptOutcome,
    AttemptResolution,
    BetRequest,
    BetResult,
    BetStatus,
)

TOKEN = "111"


def _executor(
    session_factory: SessionFactory, skill: ScriptedSkill, clock: ManualClock
) -> RuleExecutor:
    return RuleExecutor(session_factory, skill, clock=clock, retry_delay=lambda n: 2.0 * n)


def _trigger(price: str, clock: ManualClock) -> Trigger:
    return Trigger(price=Decimal(price), source="websocket", ts_event=clock.monotonic())


async def _events(session_factory: SessionFactory, rule_id: str) -> list[TradeRuleEventType]:
    async with session_factory() as session:
        return [e.event_type for e in await get_rule_events(session, rule_id)]


async def _status(
    session_factory: SessionFactory, rule_id: str
) -> tuple[TradeRuleStatus, str | None, str | None]:
    async with session_factory() as session:
        rule = await get_rule_by_id(session, rule_id)
        assert rule is not None
        return rule.status, rule.trigger_tx_hash, rule.error_message


async def test_executed_sell_all_sells_the_held_shares_once(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.hold(secret_id, TOKEN, "12.345")
    executor = _executor(session_factory, skill, clock)

    result = await executor.execute_rule(rule, _trigger("0.39", clock))

    assert result.outcome is ExecutionOutcome.EXECUTED
    assert [r.amount for r in skill.requests] == [Decimal("12.34")]
    request = skill.requests[0]
    assert (request.side, request.order_type, request.rule_id) == ("SELL", "FOK", rule.id)
    assert request.idempotency_key is not None
    assert await _status(session_factory, rule.id) == (TradeRuleStatus.TRIGGERED, "0xorder1", None)
    assert await _events(session_factory, rule.id) == [
        TradeRuleEventType.RULE_CREATED,
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    ]
    async with session_factory() as session:
        events = await get_rule_events(session, rule.id)
    assert events[1].event_data == {
        "currentPrice": 0.39,
        "triggerPrice": 0.4,
        "shouldTrigger": True,
        "source": "websocket",
    }
    assert events[2].event_data == {
        "type": "market_order",
        "idempotencyKey": request.idempotency_key,
    }
    assert events[4].event_data == {"result": {"orderId": "0xorder1", "executed": True}}

    again = await executor.execute_rule(rule, _trigger("0.38", clock))
    assert again.outcome is ExecutionOutcome.SKIPPED
    assert len(skill.requests) == 1


async def test_concurrent_claims_have_one_winner(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.hold(secret_id, TOKEN, "10")
    # Two executors stand for two processes: only the database decides.
    first = _executor(session_factory, skill, clock)
    second = _executor(session_factory, skill, clock)

    results = await asyncio.gather(
        first.execute_rule(rule, _trigger("0.39", clock)),
        second.execute_rule(rule, _trigger("0.39", clock)),
    )

    assert sorted(r.outcome for r in results) == [
        ExecutionOutcome.EXECUTED,
        ExecutionOutcome.SKIPPED,
    ]
    assert len(skill.requests) == 1


async def test_sell_partial_clamps_to_held_and_uses_the_book_for_worst_price(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN, TradeRuleType.TAKE_PROFIT, "0.6", amount="50")
    skill.hold(secret_id, TOKEN, "20")

    def quote(shares: Decimal) -> SellQuote:
        return SellQuote(shares, shares, shares * Decimal("0.6"), Decimal("0.58"))

    trigger = Trigger(Decimal("0.61"), "websocket", clock.monotonic(), quote=quote)
    result = await _executor(session_factory, skill, clock).execute_rule(rule, trigger)

    assert result.outcome is ExecutionOutcome.EXECUTED
    # The walk reaches 0.58; the sell accepts 5% below that, rounded down to 0.01.
    assert [(r.amount, r.worst_price) for r in skill.requests] == [
        (Decimal("20.00"), Decimal("0.55"))
    ]


@pytest.mark.parametrize(
    ("held", "extra", "message"),
    [
        (None, {}, "Cannot execute SELL_ALL: No shares found for tokenId 111"),
        (
            "5",
            {"redeemable": True},
            "Market is resolved and redeemable - cannot execute trades for tokenId 111",
        ),
        (
            "5",
            {"end_date": "2026-01-01"},
            "Market has ended (2026-01-01T00:00:00.000Z) - cannot execute trades for tokenId 111",
        ),
    ],
)
async def test_unsellable_positions_fail_with_a_clear_message(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
    held: str | None,
    extra: dict[str, object],
    message: str,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    if held is not None:
        skill.hold(secret_id, TOKEN, held, **extra)

    result = await _executor(session_factory, skill, clock).execute_rule(
        rule, _trigger("0.3", clock)
    )

    assert (result.outcome, result.message) == (ExecutionOutcome.FAILED, message)
    assert skill.requests == []
    assert await _status(session_factory, rule.id) == (TradeRuleStatus.FAILED, None, message)
    assert (await _events(session_factory, rule.id))[-2:] == [
        TradeRuleEventType.ACTION_FAILED,
        TradeRuleEventType.RULE_FAILED,
    ]


async def test_permanent_error_fails_once_and_transient_error_backs_off(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    stop = await make_rule(secret_id, TOKEN)
    other = await make_rule(secret_id, "222")
    skill.hold(secret_id, TOKEN, "10")
    skill.hold(secret_id, "222", "10")
    executor = _executor(session_factory, skill, clock)

    skill.answers = [InsufficientBalance("not enough balance / allowance")]
    failed = await executor.execute_rule(stop, _trigger("0.3", clock))
    assert failed.outcome is ExecutionOutcome.FAILED
    assert await _status(session_factory, stop.id) == (
        TradeRuleStatus.FAILED,
        None,
        "not enough balance / allowance",
    )

    skill.answers = [RateLimited("slow down", retry_after_s=5.0)]
    retry = await executor.execute_rule(other, _trigger("0.3", clock))
    assert retry.outcome is ExecutionOutcome.RETRY
    # attempt 1 → 2 s from the policy, but the exchange asked for 5 s.
    assert retry.next_attempt_at == clock.now() + timedelta(seconds=5)
    async with session_factory() as session:
        row = await get_rule_by_id(session, other.id)
        assert row is not None
        assert (row.status, row.attempt_count, row.next_attempt_at, row.triggered_at) == (
            TradeRuleStatus.ACTIVE,
            1,
            retry.next_attempt_at,
            None,
        )


async def test_denied_and_pending_approval(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    denied = await make_rule(secret_id, TOKEN)
    pending = await make_rule(secret_id, "222")
    skill.hold(secret_id, TOKEN, "10")
    skill.hold(secret_id, "222", "10")
    executor = _executor(session_factory, skill, clock)
    skill.answers = [
        BetResult(BetStatus.DENIED, "log-1", "0xw", reason="Transaction value $5.00 exceeds"),
        BetResult(BetStatus.PENDING_APPROVAL, "log-2", "0xw", pending_approval_id="appr-1"),
    ]

    assert (await executor.execute_rule(denied, _trigger("0.3", clock))).outcome is (
        ExecutionOutcome.FAILED
    )
    assert (await executor.execute_rule(pending, _trigger("0.3", clock))).outcome is (
        ExecutionOutcome.PENDING_APPROVAL
    )

    assert await _status(session_factory, denied.id) == (
        TradeRuleStatus.FAILED,
        None,
        "Trade denied by policy: Transaction value $5.00 exceeds",
    )
    async with session_factory() as session:
        row = await get_rule_by_id(session, pending.id)
        assert row is not None
        assert (row.status, row.pending_approval_id) == (TradeRuleStatus.PENDING_APPROVAL, "appr-1")
    assert (await _events(session_factory, pending.id))[-1] is (
        TradeRuleEventType.ACTION_PENDING_APPROVAL
    )


async def test_unknown_outcome_is_resolved_not_resent(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.hold(secret_id, TOKEN, "10")

    def accepted_then_lost(request: object) -> BetResult:
        key = skill.requests[-1].idempotency_key
        assert key is not None
        skill.resolutions[key] = AttemptResolution(
            AttemptOutcome.EXECUTED,
            BetResult(BetStatus.EXECUTED, "log-9", "0xw", order_id="0xfound"),
        )
        raise UnknownOutcome("no answer")

    skill.answers = [accepted_then_lost]
    result = await _executor(session_factory, skill, clock).execute_rule(
        rule, _trigger("0.3", clock)
    )

    assert (result.outcome, result.order_id) == (ExecutionOutcome.EXECUTED, "0xfound")
    assert len(skill.requests) == 1
    assert await _status(session_factory, rule.id) == (TradeRuleStatus.TRIGGERED, "0xfound", None)


async def test_pending_trailing_level_lands_before_the_claim(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(
        secret_id, TOKEN, TradeRuleType.TRAILING_STOP, "0.45", trailing_percent="10"
    )
    skill.hold(secret_id, TOKEN, "10")
    raised = TrailingRaise(Decimal("0.54"), Decimal("0.6"), Decimal("10"))

    fired = replace(rule, trigger_price=Decimal("0.54"))
    await _executor(session_factory, skill, clock).execute_rule(
        fired, _trigger("0.54", clock), trailing=raised
    )

    async with session_factory() as session:
        row = await get_rule_by_id(session, rule.id)
        events = await get_rule_events(session, rule.id)
    assert row is not None
    assert row.trigger_price == 0.54
    assert [e.event_type for e in events][1:4] == [
        TradeRuleEventType.RULE_TRAILING_UPDATED,
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
    ]
    assert events[1].event_data == {
        "triggerPrice": 0.54,
        "currentPrice": 0.6,
        "trailingPercent": 10.0,
    }


async def test_unreadable_holdings_put_the_rule_back_without_selling(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.holdings_error = ExchangeUnavailable("exchange answered 503")

    result = await _executor(session_factory, skill, clock).execute_rule(
        rule, _trigger("0.3", clock)
    )

    assert (result.outcome, result.message) == (
        ExecutionOutcome.RETRY,
        "Cannot read holdings: exchange answered 503",
    )
    assert skill.requests == []
    assert (await _status(session_factory, rule.id))[0] is TradeRuleStatus.ACTIVE


async def test_a_killed_fok_is_retried_a_bounded_number_of_times(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.hold(secret_id, TOKEN, "10")
    executor = _executor(session_factory, skill, clock)
    killed = "order couldn't be fully filled. FOK orders are fully filled or killed."

    skill.answers = [NoLiquidity(killed)]
    first = await executor.execute_rule(rule, _trigger("0.3", clock))
    assert first.outcome is ExecutionOutcome.RETRY

    async with session_factory() as session, session.begin():
        row = await get_rule_by_id(session, rule.id)
        assert row is not None
        row.attempt_count = MAX_NO_LIQUIDITY_RETRIES
    skill.answers = [NoLiquidity(killed)]
    last = await executor.execute_rule(rule, _trigger("0.3", clock))

    assert (last.outcome, last.message) == (ExecutionOutcome.FAILED, killed)
    assert await _status(session_factory, rule.id) == (TradeRuleStatus.FAILED, None, killed)
    assert len(skill.requests) == 2


KILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."


@pytest.mark.parametrize(
    ("failure", "retries_spent", "outcome", "status"),
    [
        # Refused for sure and retryable: not sent, so the rule fires again, unbounded.
        (ExchangeUnavailable("exchange answered 503"), True, "retry", TradeRuleStatus.ACTIVE),
        # A FOK killed empty: retried at the next price, a bounded number of times.
        (NoLiquidity(KILLED), False, "retry", TradeRuleStatus.ACTIVE),
        (NoLiquidity(KILLED), True, "failed", TradeRuleStatus.FAILED),
        (InsufficientBalance("not enough balance"), False, "failed", TradeRuleStatus.FAILED),
    ],
    ids=["retryable", "no-liquidity", "no-liquidity-spent", "permanent"],
)
async def test_a_lost_answer_resolved_as_failed_is_recorded_by_its_failure_type(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
    failure: SkillError,
    retries_spent: bool,
    outcome: str,
    status: TradeRuleStatus,
) -> None:
    """The engine decides from the failure's class alone: no audit row exists here."""
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.hold(secret_id, TOKEN, "10")
    if retries_spent:
        async with session_factory() as session, session.begin():
            row = await get_rule_by_id(session, rule.id)
            assert row is not None
            row.attempt_count = MAX_NO_LIQUIDITY_RETRIES

    def lost(request: BetRequest) -> BetResult:
        assert request.idempotency_key is not None
        skill.resolutions[request.idempotency_key] = AttemptResolution(
            AttemptOutcome.FAILED, message=failure.message, failure=failure
        )
        raise UnknownOutcome("no answer")

    skill.answers = [lost]
    result = await _executor(session_factory, skill, clock).execute_rule(
        rule, _trigger("0.3", clock)
    )

    assert (result.outcome, result.message) == (ExecutionOutcome(outcome), failure.message)
    assert (await _status(session_factory, rule.id))[0] is status
    assert len(skill.requests) == 1


async def test_an_answer_without_an_order_is_recorded_while_its_own_fire_counts(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    """A pending approval posts nothing: the fire must leave the fire lane before its
    outcome waits for the record lane, or it would wait on itself (as the dispatcher
    counts it until ``answered``)."""
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, TOKEN)
    skill.hold(secret_id, TOKEN, "10")
    skill.answers.append(
        BetResult(BetStatus.PENDING_APPROVAL, "log-1", "0xw", pending_approval_id="appr-1")
    )
    lanes = FireLanes(max_defer_s=3600)
    executor = RuleExecutor(
        session_factory, skill, clock=clock, retry_delay=lambda n: 2.0 * n, lanes=lanes
    )
    answered = asyncio.Event()
    lanes.fire_queued()  # as PriceDispatcher does, until the fire is answered

    async def dispatcher() -> None:
        await answered.wait()
        lanes.fire_answered()

    async with asyncio.timeout(10):
        watcher = asyncio.create_task(dispatcher())
        result = await executor.execute_rule(rule, _trigger("0.35", clock), answered=answered)
        await watcher
    assert result.outcome is ExecutionOutcome.PENDING_APPROVAL
    async with session_factory() as session:
        row = await get_rule_by_id(session, rule.id)
    assert row is not None and row.status is TradeRuleStatus.PENDING_APPROVAL
