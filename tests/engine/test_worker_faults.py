"""The worker under faults: dropped and stalled feeds, bad frames, refused and lost orders."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

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
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import BetRequest, BetStatus

TIMEOUT_S = 15.0


async def test_dropped_feed_reconnects_resubscribes_and_misses_no_trigger(
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
        assert worker.feed is not None
        feed = worker.feed
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            assert exchange.drop_websockets() == 1
            # The crossing happens while the connection is down: the snapshot sent on
            # resubscribe must carry it.
            exchange.step_price(ids.yes, "0.35")
            await feed.wait_for_status(lambda s: s.reconnects >= 1 and s.connected)
            await worker.wait_for_executions(1)
        assert exchange.status()["websocket_connections"] == 1
        assert feed.status().reconnects == 1

    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]


async def test_stalled_feed_falls_back_to_http_prices_and_fires(
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

    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_poll_interval_s=0.1,
        trade_manager_stale_after_s=0.3,
    )
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.stall_websockets()
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
        exchange.resume_websockets()

    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    events = await events_of(session_factory, rule.id)
    # The poll path's RULE_EVALUATED has no "source" key (wire contract §6.3).
    assert events[1].event_data == {
        "currentPrice": 0.355,
        "triggerPrice": 0.4,
        "shouldTrigger": True,
    }


async def test_malformed_messages_are_ignored_and_counted(
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
    await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    feed = exchange.state.exchange.feed

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        assert worker.feed is not None
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            bad: list[dict[str, Any]] = [
                {"event_type": "book", "asset_id": ids.yes, "bids": [{"price": "abc"}]},
                {"event_type": "book", "asset_id": ids.yes, "bids": "nope", "asks": []},
                {"event_type": "price_change", "market": "0x", "price_changes": 7},
                {"event_type": "last_trade_price", "asset_id": ids.yes, "price": "-3"},
                {"event_type": "no_such_event", "asset_id": ids.yes},
            ]
            for message in bad:
                feed.publish(message, [ids.yes])
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
        status = worker.feed.status()

    assert status.malformed_messages == 4
    assert status.reconnects == 0
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]


async def test_rate_limited_and_failing_order_is_retried_and_executed_once(
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
            exchange.rate_limit_next("/order", count=1, retry_after_s=1, method="POST")
            exchange.fail_next("/order", count=1, status=503, method="POST")
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for(
                lambda: (
                    worker.metrics_registry.get_sample_value(
                        "vincent_trade_manager_executions_total", {"outcome": "executed"}
                    )
                    == 1
                )
            )

    row = await rule_row(session_factory, rule.id)
    # The 429 is a refusal (a new attempt later); the 503 says nothing about the matcher,
    # so the second attempt re-posts its SAME signed order after the settle window.
    assert (row.status, row.attempt_count) == (TradeRuleStatus.TRIGGERED, 1)
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert len({r.order_id for r in exchange.order_receipts()}) == 1
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds.count(TradeRuleEventType.ACTION_ATTEMPT) == 2
    assert kinds.count(TradeRuleEventType.ACTION_FAILED) == 1
    assert kinds[-2:] == [TradeRuleEventType.ACTION_EXECUTED, TradeRuleEventType.RULE_TRIGGERED]


async def test_not_enough_balance_fails_the_rule_once(
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
    # A resting limit sell reserves every share: the position shows 9, none are free.
    resting = await live_skill.place_bet(
        BetRequest(
            secret_id=wallet.secret_id,
            token_id=ids.yes,
            side="SELL",
            amount=Decimal(9),
            price=Decimal("0.95"),
        )
    )
    assert resting.status is BetStatus.EXECUTED
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.35")
            await worker.wait_for_executions(1)
            exchange.step_price(ids.yes, "0.30")
            exchange.step_price(ids.yes, "0.25")
            await worker.wait_for_ticks(1)

    row = await rule_row(session_factory, rule.id)
    assert row.status is TradeRuleStatus.FAILED
    assert row.error_message is not None
    assert "not enough balance" in row.error_message
    assert worker.executions_completed == 1
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds == [
        TradeRuleEventType.RULE_CREATED,
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_FAILED,
        TradeRuleEventType.RULE_FAILED,
    ]
