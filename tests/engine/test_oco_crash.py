"""SIGKILL between a bracket leg's claim and its outcome: the restart settles the group the
same way it settles the rule, and nothing sells twice. Two processes, both databases."""

from __future__ import annotations

import asyncio
import os
import signal
from decimal import Decimal

import pytest

from tests.engine.live import (
    events_of,
    executed_sells,
    open_market,
    rule_row,
    running_worker,
    shares_of,
    worker_settings,
)
from tests.engine.test_crash_recovery import wait_until, worker_process
from tests.skill.conftest import MarketIds, add_wallet
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.rule_manager import NewRule, create_bracket, to_snapshot
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

pytestmark = pytest.mark.slow

TIMEOUT_S = 30.0


async def bracket(
    session_factory: SessionFactory, secret_id: str, ids: MarketIds
) -> tuple[RuleSnapshot, RuleSnapshot]:
    def leg(rule_type: TradeRuleType, trigger: str) -> NewRule:
        return NewRule(
            rule_type=rule_type,
            market_id=ids.condition_id,
            token_id=ids.yes,
            trigger_price=Decimal(trigger),
            action=RuleAction(ActionType.SELL_ALL),
        )

    async with session_factory() as session, session.begin():
        _, rules = await create_bracket(
            session,
            secret_id,
            leg(TradeRuleType.STOP_LOSS, "0.40"),
            leg(TradeRuleType.TAKE_PROFIT, "0.70"),
            max_active_rules=100,
        )
    stop, take = (to_snapshot(rule) for rule in rules)
    return stop, take


async def oco_cancellations(session_factory: SessionFactory, rule_id: str) -> list[object]:
    return [
        e.event_data
        for e in await events_of(session_factory, rule_id)
        if e.event_type is TradeRuleEventType.RULE_CANCELED
    ]


async def test_sigkill_after_the_stop_sold_cancels_the_take_profit_on_restart(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    stop, take = await bracket(session_factory, wallet.secret_id, ids)
    exchange.withhold_next("/order", mode="hang")  # filled, never answered
    settings = worker_settings(exchange, database_url, polymarket_http_timeout_s=60.0)

    async with asyncio.timeout(TIMEOUT_S), worker_process(settings, keybox_key) as pid:
        await wait_until(lambda: exchange.status()["websocket_connections"] == 1)
        exchange.step_price(ids.yes, "0.35")
        await wait_until(lambda: len(exchange.order_receipts()) == 1)
        os.kill(pid, signal.SIGKILL)

    exchange.clear_faults()
    paused = await rule_row(session_factory, take.id)
    assert (paused.status, paused.oco_paused_by) == (TradeRuleStatus.ACTIVE, stop.id)

    async with running_worker(worker_settings(exchange, database_url), session_factory, live_skill):
        pass  # start() alone reconciles

    assert (await rule_row(session_factory, stop.id)).status is TradeRuleStatus.TRIGGERED
    row = await rule_row(session_factory, take.id)
    assert (row.status, row.oco_paused_by) == (TradeRuleStatus.CANCELED, None)
    assert await oco_cancellations(session_factory, take.id) == [
        {"reason": "oco", "firedRuleId": stop.id}
    ]
    assert len(exchange.order_receipts()) == 1
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]


async def test_sigkill_before_the_stop_reached_the_exchange_sells_once_and_ends_the_group(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    stop, take = await bracket(session_factory, wallet.secret_id, ids)
    settings = worker_settings(exchange, database_url, polymarket_http_timeout_s=60.0)

    async with asyncio.timeout(TIMEOUT_S), worker_process(settings, keybox_key) as pid:
        await wait_until(lambda: exchange.status()["websocket_connections"] == 1)
        # The POST hangs before the book: claim, attempt and the signed order are committed
        # together (one transaction), nothing is on the exchange.
        exchange.hang_next("/order", method="POST")
        exchange.step_price(ids.yes, "0.35")

        async def attempt_written() -> bool:
            events = await events_of(session_factory, stop.id)
            return events[-1].event_type is TradeRuleEventType.ACTION_ATTEMPT

        while not await attempt_written():  # noqa: ASYNC110 (another process writes it)
            await asyncio.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    exchange.clear_faults()
    assert (await rule_row(session_factory, take.id)).oco_paused_by == stop.id

    assert exchange.order_receipts() == ()
    restart = worker_settings(exchange, database_url)
    async with running_worker(restart, session_factory, live_skill):
        pass  # start() reconciles: the stored order is not on the exchange, re-posted as is

    assert (await rule_row(session_factory, stop.id)).status is TradeRuleStatus.TRIGGERED
    assert (await rule_row(session_factory, take.id)).status is TradeRuleStatus.CANCELED
    assert len(exchange.order_receipts()) == 1
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
