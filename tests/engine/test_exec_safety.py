"""A rule's sale happens once and counts once settled: ambiguous answers, delayed fills and
failed settlements against the real worker and the real local exchange (issue 13, §1, §1b)."""

from __future__ import annotations

import asyncio
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
from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType, TransactionStatus
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 30.0


async def wait_for_sale_recorded(
    worker: TradeMonitoringWorker, session_factory: SessionFactory, rule_id: str
) -> None:
    """Wait, tick by tick, until the rule names the order whose sale settled."""
    ticks = 1
    while (await rule_row(session_factory, rule_id)).trigger_tx_hash is None:
        await worker.wait_for_ticks(ticks)
        ticks += 1


async def test_sell_partial_matched_but_answered_502_sells_exactly_once(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    # The reproduction: 40 of 100, the matcher takes the order, a gateway says 502.
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="100", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40", amount="40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.fail_after_next("/order", status=502)
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
            await wait_for_sale_recorded(worker, session_factory, rule.id)

    [receipt] = exchange.order_receipts()
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(60)
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("40")]
    row = await rule_row(session_factory, rule.id)
    assert (row.status, row.trigger_tx_hash) == (TradeRuleStatus.TRIGGERED, receipt.order_id)
    events = await events_of(session_factory, rule.id)
    assert [e.event_type for e in events][-2:] == [
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    ]
    assert events[-2].event_data["result"]["orderId"] == receipt.order_id
    assert TradeRuleEventType.ACTION_FAILED not in [e.event_type for e in events]


async def test_a_delayed_answer_is_executed_only_once_it_filled(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.defer_next_orders(answer="delayed", delay_s=0.3)
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
            await wait_for_sale_recorded(worker, session_factory, rule.id)

    events = await events_of(session_factory, rule.id)
    executed = [e for e in events if e.event_type is TradeRuleEventType.ACTION_EXECUTED]
    assert [e.event_data["result"]["filledShares"] for e in executed] == ["9"]
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert len(exchange.order_receipts()) == 1


async def test_a_sale_whose_settlement_fails_is_recorded_and_sold_again(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    exchange.set_settlement_delay(0.4)
    exchange.fail_settlement_next(1)

    settings = worker_settings(exchange, database_url, trade_manager_poll_interval_s=0.3)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
            await wait_for_sale_recorded(worker, session_factory, rule.id)

    first, second = (r.order_id for r in exchange.order_receipts())
    assert first != second
    assert exchange.trade_statuses() == ["FAILED", "CONFIRMED"]
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    row = await rule_row(session_factory, rule.id)
    assert (row.status, row.trigger_tx_hash) == (TradeRuleStatus.TRIGGERED, second)
    events = await events_of(session_factory, rule.id)
    kinds = [e.event_type for e in events]
    settling = [e for e in events if e.event_type is TradeRuleEventType.ACTION_SETTLING]
    assert [e.event_data["orderId"] for e in settling] == [first, second]
    [failed] = [e for e in events if e.event_type is TradeRuleEventType.ACTION_FAILED]
    assert failed.event_data["orderId"] == first
    assert failed.event_data["isPermanent"] is False
    assert kinds[-2:] == [TradeRuleEventType.ACTION_EXECUTED, TradeRuleEventType.RULE_TRIGGERED]
    assert events[-2].event_data["result"]["orderId"] == second
    async with session_factory() as session:
        audit = (
            await session.scalars(sa.select(TransactionLog).order_by(TransactionLog.created_at))
        ).all()
    assert [(a.order_id, a.status) for a in audit] == [
        (first, TransactionStatus.FAILED),
        (second, TransactionStatus.EXECUTED),
    ]
    assert audit[0].response_data is not None
    assert audit[0].response_data["errorCode"] == "SETTLEMENT_FAILED"


async def test_a_fok_answered_live_and_killed_empty_is_retried_as_no_liquidity(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.defer_next_orders(answer="live", delay_s=0.3)
            exchange.step_price(ids.yes, "0.35")
            await exchange.wait_for_order_receipts(1)
            # The bids vanish before the matcher runs the order: killed with nothing filled.
            exchange.set_book(ids.yes, bids=[], asks=[("0.60", 100)])
            await worker.wait_for_executions(1)
            assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.ACTIVE
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(2)
            await wait_for_sale_recorded(worker, session_factory, rule.id)

    assert len({r.order_id for r in exchange.order_receipts()}) == 2
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds.count(TradeRuleEventType.ACTION_FAILED) == 1
    assert kinds[-2:] == [TradeRuleEventType.ACTION_EXECUTED, TradeRuleEventType.RULE_TRIGGERED]


async def test_a_stale_balance_cache_does_not_fail_the_rule(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    exchange.stale_balance_cache(wallet.funder)

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
            await wait_for_sale_recorded(worker, session_factory, rule.id)

    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    assert len(exchange.order_receipts()) == 2  # refused once, sold once
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert TradeRuleEventType.ACTION_FAILED not in kinds
