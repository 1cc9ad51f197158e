"""A sell that needs the owner's approval pauses the rule; the decision finishes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from tests.engine.conftest import MakeRule
from tests.engine.live import (
    events_of,
    executed_sells,
    is_connected,
    open_market,
    rule_row,
    running_worker,
    shares_of,
    worker_settings,
)
from tests.skill.conftest import add_wallet, set_policy
from vincent.crypto import KeyBox
from vincent.db.models import PendingApproval
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType, TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services import approvals
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 15.0


async def test_approved_sell_executes_once_and_denied_sell_fails_the_rule(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    approved = await add_wallet(session_factory, keybox)
    denied = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    for wallet in (approved, denied):
        exchange.credit(wallet.funder, token_id=ids.yes, shares="7", avg_price="0.5")
        await set_policy(
            session_factory, wallet.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
        )
    approved_rule = await make_rule(approved.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    denied_rule = await make_rule(denied.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")
            await worker.wait_for_executions(2)
            assert exchange.order_receipts() == ()
            for rule in (approved_rule, denied_rule):
                row = await rule_row(session_factory, rule.id)
                assert row.status is TradeRuleStatus.PENDING_APPROVAL
                assert row.pending_approval_id is not None
            async with session_factory() as session:
                pending = {
                    a.rule_id: a.id for a in await session.scalars(sa.select(PendingApproval))
                }
            outcome = await approvals.approve(
                session_factory,
                live_skill,
                pending[approved_rule.id],
                decided_by="owner",
                now=datetime.now(UTC),
            )
            assert outcome.result is not None
            async with session_factory() as session:
                await approvals.deny(
                    session, pending[denied_rule.id], decided_by="owner", now=datetime.now(UTC)
                )
            await worker.wait_for_ticks(worker.request_tick())

    row = await rule_row(session_factory, approved_rule.id)
    assert (row.status, row.trigger_tx_hash) == (TradeRuleStatus.TRIGGERED, outcome.result.order_id)
    assert [e.event_type for e in await events_of(session_factory, approved_rule.id)] == [
        TradeRuleEventType.RULE_CREATED,
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_PENDING_APPROVAL,
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    ]
    assert await executed_sells(session_factory, approved.secret_id) == [Decimal("7")]
    assert shares_of(exchange, approved.funder, ids.yes) == 0

    row = await rule_row(session_factory, denied_rule.id)
    assert (row.status, row.error_message) == (
        TradeRuleStatus.FAILED,
        "Trade approval denied by the owner",
    )
    assert await executed_sells(session_factory, denied.secret_id) == []
    assert shares_of(exchange, denied.funder, ids.yes) == Decimal(7)
    assert len(exchange.order_receipts()) == 1
