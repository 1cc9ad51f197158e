"""Trailing activation and amount trails, stored and restored: real database, real exchange."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.engine.conftest import MakeSecret
from tests.engine.live import (
    events_of,
    executed_sells,
    is_connected,
    open_market,
    rule_row,
    running_worker,
    worker_settings,
)
from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.rule_manager import NewRule, create_rule, to_snapshot
from vincent.services.trade_manager.trailing_levels import TrailingLevels, TrailingRaise
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 15.0


async def dormant_stop(
    session_factory: SessionFactory,
    secret_id: str,
    token_id: str,
    *,
    trigger: str = "0.30",
    activation: str = "0.60",
    amount: str = "0.05",
) -> RuleSnapshot:
    new = NewRule(
        rule_type=TradeRuleType.TRAILING_STOP,
        market_id=f"0xcond-{token_id}",
        token_id=token_id,
        trigger_price=Decimal(trigger),
        action=RuleAction(ActionType.SELL_ALL),
        trailing_amount=Decimal(amount),
        activation_price=Decimal(activation),
    )
    async with session_factory() as session, session.begin():
        return to_snapshot(await create_rule(session, secret_id, new, max_active_rules=100))


def woken(trigger: str, price: str) -> TrailingRaise:
    return TrailingRaise(
        Decimal(trigger), Decimal(price), None, trailing_amount=Decimal("0.05"), activated=True
    )


async def trailing_updates(
    session_factory: SessionFactory, rule_id: str
) -> list[dict[str, object]]:
    return [
        e.event_data
        for e in await events_of(session_factory, rule_id)
        if e.event_type is TradeRuleEventType.RULE_TRAILING_UPDATED
    ]


async def test_an_activation_is_stored_once_with_one_activated_event(
    session_factory: SessionFactory, make_secret: MakeSecret
) -> None:
    secret_id = await make_secret("a")
    rule = await dormant_stop(session_factory, secret_id, "1")
    assert rule.dormant
    levels = TrailingLevels()
    levels.record(rule.id, woken("0.55", "0.60"))
    # A later raise in the same flush keeps the activation.
    levels.record(rule.id, TrailingRaise(Decimal("0.57"), Decimal("0.62"), None, "websocket"))

    assert await levels.flush(session_factory) == {rule.id: Decimal("0.57")}
    # Seen again (a retried flush, a second process): neither stored nor reported twice.
    levels.record(rule.id, woken("0.57", "0.62"))
    assert await levels.flush(session_factory) == {}

    row = await rule_row(session_factory, rule.id)
    assert row.activated_at is not None and row.trigger_price == 0.57
    assert to_snapshot(row).activated and not to_snapshot(row).dormant
    assert await trailing_updates(session_factory, rule.id) == [
        {"triggerPrice": 0.57, "currentPrice": 0.62, "activated": True}
    ]


async def test_an_activation_below_the_trigger_is_stored_without_a_raise(
    session_factory: SessionFactory, make_secret: MakeSecret
) -> None:
    secret_id = await make_secret("a")
    rule = await dormant_stop(session_factory, secret_id, "1", trigger="0.58")
    levels = TrailingLevels()
    levels.record(rule.id, woken("0.58", "0.61"))

    assert await levels.flush(session_factory) == {rule.id: Decimal("0.58")}

    row = await rule_row(session_factory, rule.id)
    assert row.activated_at is not None and row.trigger_price == 0.58
    assert await trailing_updates(session_factory, rule.id) == [
        {"triggerPrice": 0.58, "currentPrice": 0.61, "trailingAmount": 0.05, "activated": True}
    ]


async def test_a_dormant_stop_wakes_survives_a_restart_and_fires_on_the_retrace(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="20", avg_price="0.5")
    rule = await dormant_stop(session_factory, wallet.secret_id, ids.yes)
    settings = worker_settings(exchange, database_url)

    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            # Midpoints 0.555 and 0.595: below the activation price, and far below 0.30 + trail
            # would matter only once awake. Nothing fires, nothing moves.
            for best_bid in ("0.55", "0.59", "0.29"):
                exchange.step_price(ids.yes, best_bid)
            await worker.wait_for(lambda: worker.feed_price(ids.yes) == Decimal("0.295"))
            assert worker.watched_rule(rule.id) == rule
            exchange.step_price(ids.yes, "0.62")  # midpoint 0.625: awake, trigger 0.575
            await worker.wait_for(
                lambda: (r := worker.watched_rule(rule.id)) is not None and r.activated
            )
            awake = worker.watched_rule(rule.id)
    # The clean stop flushed the activation.
    assert awake is not None and awake.trigger_price == Decimal("0.575")
    row = await rule_row(session_factory, rule.id)
    assert row.activated_at is not None and row.trigger_price == 0.575

    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            restored = worker.watched_rule(rule.id)
            assert restored is not None and restored.activated
            assert restored.trigger_price == Decimal("0.575")
            exchange.step_price(ids.yes, "0.57")  # midpoint 0.575 crosses it
            await worker.wait_for_executions(1)

    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("20")]
    updates = await trailing_updates(session_factory, rule.id)
    assert [u.get("activated") for u in updates] == [True]
    assert updates[0]["triggerPrice"] == 0.575
