"""OCO group transitions on a real database (both engines): claim, outcome, crash recovery."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import sqlalchemy as sa

from tests.engine.conftest import MakeSecret, ManualClock
from tests.engine.live import events_of, rule_row
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import oco
from vincent.services.trade_manager.event_logger import log_event
from vincent.services.trade_manager.reconciliation import reconcile_rules
from vincent.services.trade_manager.rule_executor import ExecutionOutcome, RuleExecutor
from vincent.services.trade_manager.rule_manager import (
    NewRule,
    cancel_rule,
    create_bracket,
    to_snapshot,
)
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.skills.polymarket.types import (
    AttemptOutcome,
    AttemptResolution,
    BetResult,
    BetStatus,
)

TOKEN = "111"


async def make_bracket(
    session_factory: SessionFactory, secret_id: str, token_id: str = TOKEN
) -> tuple[RuleSnapshot, RuleSnapshot]:
    def leg(rule_type: TradeRuleType, trigger: str) -> NewRule:
        return NewRule(
            rule_type=rule_type,
            market_id="0xcond",
            token_id=token_id,
            trigger_price=Decimal(trigger),
            action=RuleAction(ActionType.SELL_ALL),
        )

    async with session_factory() as session, session.begin():
        _, rules = await create_bracket(
            session,
            secret_id,
            leg(TradeRuleType.STOP_LOSS, "0.40"),
            leg(TradeRuleType.TAKE_PROFIT, "0.60"),
            max_active_rules=100,
        )
    stop, take = (to_snapshot(rule) for rule in rules)
    return stop, take


async def claim(
    session_factory: SessionFactory, rule: RuleSnapshot, key: str | None, clock: ManualClock
) -> bool:
    async with session_factory() as session, session.begin():
        won = await oco.claim_rule(session, rule, clock.now())
        if won and key is not None:
            log_event(
                session,
                rule.id,
                TradeRuleEventType.ACTION_ATTEMPT,
                {"type": "market_order", "idempotencyKey": key},
            )
        return won


def executor(
    session_factory: SessionFactory, skill: ScriptedSkill, clock: ManualClock
) -> RuleExecutor:
    return RuleExecutor(session_factory, skill, clock=clock, retry_delay=lambda n: 1.0)


async def test_two_siblings_claimed_at_once_have_one_winner_and_the_loser_is_paused(
    session_factory: SessionFactory, clock: ManualClock, make_secret: MakeSecret
) -> None:
    secret_id = await make_secret("a")
    for _ in range(5):
        stop, take = await make_bracket(session_factory, secret_id)

        won = await asyncio.gather(
            claim(session_factory, stop, None, clock), claim(session_factory, take, None, clock)
        )

        assert sorted(won) == [False, True]
        winner, loser = (stop, take) if won[0] else (take, stop)
        loser_row = await rule_row(session_factory, loser.id)
        assert (loser_row.status, loser_row.oco_paused_by) == (TradeRuleStatus.ACTIVE, winner.id)
        assert (await rule_row(session_factory, winner.id)).status is TradeRuleStatus.TRIGGERED


async def test_a_rule_outside_the_group_or_of_another_tenant_is_never_paused(
    session_factory: SessionFactory, clock: ManualClock, make_secret: MakeSecret
) -> None:
    alice, bob = await make_secret("a"), await make_secret("b")
    stop, take = await make_bracket(session_factory, alice)
    _, bobs_take = await make_bracket(session_factory, bob)
    async with session_factory() as session, session.begin():
        # Bob's rule with Alice's group id string: a group is per tenant.
        await session.execute(
            sa.update(TradeRule)
            .where(TradeRule.id == bobs_take.id)
            .values(oco_group_id=stop.oco_group_id)
        )

    assert await claim(session_factory, stop, None, clock)

    assert (await rule_row(session_factory, take.id)).oco_paused_by == stop.id
    assert (await rule_row(session_factory, bobs_take.id)).oco_paused_by is None


async def test_reconciliation_after_a_crash_settles_the_group_as_it_settles_the_rule(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
) -> None:
    secret_id = await make_secret("a")
    sold_stop, sold_take = await make_bracket(session_factory, secret_id, "1")
    unsent_stop, unsent_take = await make_bracket(session_factory, secret_id, "2")
    denied_stop, denied_take = await make_bracket(session_factory, secret_id, "3")
    # Claimed, attempt written, then the process died before any outcome.
    assert await claim(session_factory, sold_stop, "k-sold", clock)
    assert await claim(session_factory, unsent_stop, "k-unsent", clock)
    assert await claim(session_factory, denied_stop, "k-denied", clock)
    skill.resolutions["k-sold"] = AttemptResolution(
        AttemptOutcome.EXECUTED, BetResult(BetStatus.EXECUTED, "log-1", "0xw", order_id="0xabc")
    )
    skill.resolutions["k-unsent"] = AttemptResolution(AttemptOutcome.NOT_SENT)
    skill.resolutions["k-denied"] = AttemptResolution(AttemptOutcome.DENIED, message="limit")

    report = await reconcile_rules(
        session_factory, skill, executor(session_factory, skill, clock), now=clock.now()
    )

    assert dict(report.outcomes) == {
        sold_stop.id: ExecutionOutcome.EXECUTED,
        unsent_stop.id: ExecutionOutcome.RETRY,
        denied_stop.id: ExecutionOutcome.FAILED,
    }
    row = await rule_row(session_factory, sold_take.id)
    assert (row.status, row.oco_paused_by) == (TradeRuleStatus.CANCELED, None)
    canceled = [
        e.event_data
        for e in await events_of(session_factory, sold_take.id)
        if e.event_type is TradeRuleEventType.RULE_CANCELED
    ]
    assert canceled == [{"reason": "oco", "firedRuleId": sold_stop.id}]
    for take in (unsent_take, denied_take):
        row = await rule_row(session_factory, take.id)
        assert (row.status, row.oco_paused_by) == (TradeRuleStatus.ACTIVE, None)


async def test_canceling_one_rule_by_hand_leaves_the_others_watching(
    session_factory: SessionFactory, make_secret: MakeSecret
) -> None:
    secret_id = await make_secret("a")
    stop, take = await make_bracket(session_factory, secret_id)

    async with session_factory() as session, session.begin():
        await cancel_rule(session, secret_id, stop.id)
        assert await oco.release_paused_siblings(session, stop.id) == []

    row = await rule_row(session_factory, take.id)
    assert (row.status, row.oco_paused_by, row.oco_group_id) == (
        TradeRuleStatus.ACTIVE,
        None,
        stop.oco_group_id,
    )
