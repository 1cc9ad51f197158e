"""The worker end to end: local exchange over loopback, real skill, real database (both)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

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
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_manager import NewRule, create_rule
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 15.0


async def test_stop_fires_on_the_first_crossing_and_sells_the_held_shares_once(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="37.5", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            # Best bids; the midpoint is half a tick above: 0.455, 0.425, 0.405, 0.395, 0.345.
            for best_bid in ("0.45", "0.42", "0.40", "0.39", "0.34"):
                exchange.step_price(ids.yes, best_bid)
            await worker.wait_for_executions(1)

    row = await rule_row(session_factory, rule.id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert row.trigger_tx_hash is not None
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("37.5")]
    assert len(exchange.order_receipts()) == 1
    events = await events_of(session_factory, rule.id)
    assert [e.event_type for e in events] == [
        TradeRuleEventType.RULE_CREATED,
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    ]
    assert events[1].event_data == {
        "currentPrice": 0.395,
        "triggerPrice": 0.4,
        "shouldTrigger": True,
        "source": "websocket",
    }
    assert events[4].event_data == {"result": {"orderId": row.trigger_tx_hash, "executed": True}}


async def test_take_profit_and_sell_partial_clamps_to_the_position(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="12", avg_price="0.5")
    # Asks for 50 shares of a 12-share position: sells exactly the 12 held.
    rule = await make_rule(
        wallet.secret_id, ids.yes, TradeRuleType.TAKE_PROFIT, "0.60", amount="50"
    )

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            for best_bid in ("0.55", "0.59", "0.60", "0.62"):
                exchange.step_price(ids.yes, best_bid)
            await worker.wait_for_executions(1)

    row = await rule_row(session_factory, rule.id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("12")]
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    events = await events_of(session_factory, rule.id)
    # 0.595 does not reach 0.60; 0.605 does.
    assert events[1].event_data["currentPrice"] == 0.605


async def test_sell_partial_below_the_position_sells_the_amount(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="30", avg_price="0.5")
    await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45", amount="10")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")
            await worker.wait_for_executions(1)

    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("10")]
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(20)


async def test_trailing_stop_ratchets_up_never_down_and_fires_on_the_retrace(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="20", avg_price="0.5")
    rule = await make_rule(
        wallet.secret_id, ids.yes, TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10"
    )

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            levels = []
            # Midpoints 0.555, 0.605, 0.585 (a dip: no lowering), 0.655.
            for best_bid in ("0.55", "0.60", "0.58", "0.65"):
                exchange.step_price(ids.yes, best_bid)
                await worker.wait_for(
                    lambda: worker.feed is not None and worker.feed.status().messages_received > 0
                )
            await worker.wait_for(
                lambda: (
                    (r := worker.watched_rule(rule.id)) is not None
                    and r.trigger_price == Decimal("0.5895")
                )
            )
            watched = worker.watched_rule(rule.id)
            assert watched is not None
            levels.append(watched.trigger_price)
            # 0.655 * 0.9 = 0.5895; the retrace to 0.585 crosses it.
            exchange.step_price(ids.yes, "0.60")
            exchange.step_price(ids.yes, "0.58")
            await worker.wait_for_executions(1)

    assert levels == [Decimal("0.5895")]
    row = await rule_row(session_factory, rule.id)
    assert (row.status, row.trigger_price) == (TradeRuleStatus.TRIGGERED, 0.5895)
    events = await events_of(session_factory, rule.id)
    raised = [
        e.event_data["triggerPrice"]
        for e in events
        if e.event_type is TradeRuleEventType.RULE_TRAILING_UPDATED
    ]
    # Coalesced: never a lower level after a higher one, and the last is the firing level.
    assert raised == sorted(raised)
    assert raised[-1] == 0.5895
    fired = [
        e.event_data
        for e in events
        if e.event_type is TradeRuleEventType.RULE_EVALUATED and e.event_data["shouldTrigger"]
    ]
    assert fired == [
        {
            "currentPrice": 0.585,
            "triggerPrice": 0.5895,
            "shouldTrigger": True,
            "source": "websocket",
        }
    ]
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("20")]


async def test_two_tenants_on_one_token_each_sell_their_own_position(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice = await add_wallet(session_factory, keybox)
    bob = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(alice.funder, token_id=ids.yes, shares="11", avg_price="0.5")
    exchange.credit(bob.funder, token_id=ids.yes, shares="7", avg_price="0.5")
    await make_rule(alice.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    await make_rule(bob.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.42")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            assert worker.status().web_socket_subscriptions == 1
            exchange.step_price(ids.yes, "0.40")
            await worker.wait_for_executions(2)

    assert await executed_sells(session_factory, alice.secret_id) == [Decimal("11")]
    assert await executed_sells(session_factory, bob.secret_id) == [Decimal("7")]
    assert shares_of(exchange, alice.funder, ids.yes) == 0
    assert shares_of(exchange, bob.funder, ids.yes) == 0


async def test_six_hundred_tokens_open_two_connections_and_both_deliver(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    markets = [open_market(exchange, "0.50") for _ in range(300)]
    tokens = [token for ids in markets for token in (ids.yes, ids.no)]
    async with session_factory() as session, session.begin():
        for token in tokens:
            new = NewRule(
                rule_type=TradeRuleType.STOP_LOSS,
                market_id="0xcond",
                token_id=token,
                trigger_price=Decimal("0.20"),
                action=RuleAction(ActionType.SELL_ALL),
            )
            await create_rule(session, wallet.secret_id, new, max_active_rules=1000)

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        assert worker.feed is not None
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            status = worker.status()
            shards = worker.feed.shard_tokens()
            # A token on the second connection still reaches its rule.
            last = sorted(shards[1])[-1]
            exchange.credit(wallet.funder, token_id=last, shares="6", avg_price="0.5")
            exchange.step_price(last, "0.15")
            await worker.wait_for_executions(1)

    assert (status.web_socket_connections, status.web_socket_subscriptions) == (2, 600)
    assert [len(shard) for shard in shards] == [500, 100]
    assert frozenset().union(*shards) == frozenset(tokens)
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("6")]


async def test_best_bid_rule_fires_where_a_midpoint_rule_does_not(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    by_bid = await add_wallet(session_factory, keybox)
    by_mid = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(by_bid.funder, token_id=ids.yes, shares="6", avg_price="0.5")
    exchange.credit(by_mid.funder, token_id=ids.yes, shares="6", avg_price="0.5")
    bid_rule = await make_rule(
        by_bid.secret_id,
        ids.yes,
        TradeRuleType.STOP_LOSS,
        "0.40",
        trigger_source=TriggerSource.BEST_BID,
    )
    mid_rule = await make_rule(by_mid.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")  # bid 0.40, midpoint 0.405
            await worker.wait_for_executions(1)
        assert worker.watched_rule(mid_rule.id) is not None

    assert (await rule_row(session_factory, bid_rule.id)).status is TradeRuleStatus.TRIGGERED
    assert (await rule_row(session_factory, mid_rule.id)).status is TradeRuleStatus.ACTIVE
    assert (await events_of(session_factory, bid_rule.id))[1].event_data["currentPrice"] == 0.4
    assert await executed_sells(session_factory, by_bid.secret_id) == [Decimal("6")]
    assert await executed_sells(session_factory, by_mid.secret_id) == []


async def test_price_messages_cause_no_database_queries(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    for trigger in ("0.10", "0.20", "0.30"):
        await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, trigger)
    await make_rule(wallet.secret_id, ids.yes, TradeRuleType.TAKE_PROFIT, "0.90")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            await worker.wait_for_ticks(1)
            # The skill warm-up reads the secret; measure once it is done.
            await worker.wait_for(lambda: worker.warmups_pending == 0)
            sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
            try:
                prices = [f"0.{n}" for n in (45, 48, 52, 55, 51, 47, 44, 49)] * 25
                for best_bid in [*prices, "0.60"]:
                    exchange.step_price(ids.yes, best_bid)
                await worker.wait_for(lambda: worker.feed_price(ids.yes) == Decimal("0.605"))
            finally:
                sa.event.remove(engine.sync_engine, "before_cursor_execute", count)

    assert statements == []
    assert worker.executions_completed == 0
    updates = worker.metrics_registry.get_sample_value(
        "vincent_trade_manager_price_updates_total", {"source": "websocket"}
    )
    # Frames may batch several books; every frame that moved the price reached the index.
    assert updates is not None
    assert updates > 1
