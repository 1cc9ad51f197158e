"""Worker-side rule transitions: atomic claims, one-way trailing raises, guarded failures."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import make_tenant
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import event_logger, rule_manager
from vincent.services.trade_manager.types import ActionType, RuleAction


async def _rule(
    session: AsyncSession, secret_id: str, rule_type: TradeRuleType = TradeRuleType.STOP_LOSS
) -> str:
    rule = await rule_manager.create_rule(
        session,
        secret_id,
        rule_manager.NewRule(
            rule_type=rule_type,
            market_id="0xm",
            token_id="42",
            trigger_price=Decimal("0.4"),
            action=RuleAction(ActionType.SELL_ALL),
            trailing_percent=Decimal(5) if rule_type is TradeRuleType.TRAILING_STOP else None,
        ),
        max_active_rules=100,
    )
    await session.commit()
    return rule.id


async def test_concurrent_claims_have_exactly_one_winner(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await make_tenant(session)
        await session.commit()
        rule_id = await _rule(session, tenant.secret_id)

    async def claim() -> bool:
        async with session_factory() as session:
            won = await rule_manager.mark_rule_triggered(session, rule_id)
            await session.commit()
            return won

    results = await asyncio.gather(*(claim() for _ in range(20)))
    assert results.count(True) == 1
    async with session_factory() as session:
        rule = await rule_manager.get_rule(session, tenant.secret_id, rule_id)
        assert rule.status is TradeRuleStatus.TRIGGERED
        assert rule.triggered_at is not None


async def test_trailing_trigger_only_rises(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await make_tenant(session)
        await session.commit()
        rule_id = await _rule(session, tenant.secret_id, TradeRuleType.TRAILING_STOP)
        raised = await rule_manager.update_trailing_trigger(
            session, rule_id, Decimal("0.45"), {"currentPrice": 0.47, "trailingPercent": 5}
        )
        lowered = await rule_manager.update_trailing_trigger(session, rule_id, Decimal("0.41"))
        same = await rule_manager.update_trailing_trigger(session, rule_id, Decimal("0.45"))
        await session.commit()
        assert (raised, lowered, same) == (True, False, False)
        rule = await rule_manager.get_rule(session, tenant.secret_id, rule_id)
        assert rule.trigger_price == 0.45
        events = await event_logger.get_rule_events(session, rule_id)
        updates = [e for e in events if e.event_type is TradeRuleEventType.RULE_TRAILING_UPDATED]
        assert [e.event_data for e in updates] == [
            {"triggerPrice": 0.45, "currentPrice": 0.47, "trailingPercent": 5}
        ]


async def test_trailing_update_ignores_other_rule_types(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await make_tenant(session)
        await session.commit()
        rule_id = await _rule(session, tenant.secret_id, TradeRuleType.STOP_LOSS)
        assert not await rule_manager.update_trailing_trigger(session, rule_id, Decimal("0.5"))


async def test_failed_is_logged_once(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await make_tenant(session)
        await session.commit()
        rule_id = await _rule(session, tenant.secret_id)
        assert await rule_manager.mark_rule_failed(session, rule_id, "no shares")
        assert not await rule_manager.mark_rule_failed(session, rule_id, "again")
        await session.commit()
        events = await event_logger.get_rule_events(session, rule_id)
        failed = [e.event_data for e in events if e.event_type is TradeRuleEventType.RULE_FAILED]
        assert failed == [{"errorMessage": "no shares"}]
        rule = await rule_manager.get_rule(session, tenant.secret_id, rule_id)
        assert (rule.status, rule.error_message) == (TradeRuleStatus.FAILED, "no shares")


async def test_revert_to_active_counts_attempts(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await make_tenant(session)
        await session.commit()
        rule_id = await _rule(session, tenant.secret_id)
        assert await rule_manager.mark_rule_triggered(session, rule_id)
        assert await rule_manager.revert_rule_to_active(session, rule_id, None)
        assert not await rule_manager.revert_rule_to_active(session, rule_id, None)
        await session.commit()
        rule = await rule_manager.get_rule(session, tenant.secret_id, rule_id)
        assert (rule.status, rule.attempt_count, rule.triggered_at) == (
            TradeRuleStatus.ACTIVE,
            1,
            None,
        )


async def test_get_rules_across_tenants_for_the_worker(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        first = await make_tenant(session, "a")
        second = await make_tenant(session, "b")
        await session.commit()
        ids = {await _rule(session, first.secret_id), await _rule(session, second.secret_id)}
        active = await rule_manager.get_rules(session, None, TradeRuleStatus.ACTIVE)
        assert {r.id for r in active} == ids
