"""A market that ends ends its rules: from the feed, from the poll tick's market check, and
expiresAt. Real database (both), real local exchange, real WebSocket."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tests.engine.conftest import MakeRule, MakeSecret, ManualClock
from tests.engine.live import events_of, executed_sells, rule_row, running_worker, worker_settings
from tests.engine.scripted_skill import ScriptedSkill
from tests.engine.test_bracket_live import RULES, api_with_worker, tenants_and_market
from tests.skill.conftest import new_market_ids
from vincent.config import Settings
from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.services.trade_manager.rule_manager import NewRule, create_rule, to_snapshot
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 15.0


async def expired_events(session_factory: SessionFactory, rule_id: str) -> list[dict[str, Any]]:
    return [
        e.event_data
        for e in await events_of(session_factory, rule_id)
        if e.event_type is TradeRuleEventType.RULE_EXPIRED
    ]


async def rule_on(
    session_factory: SessionFactory,
    secret_id: str,
    market_id: str,
    token_id: str,
    rule_type: TradeRuleType = TradeRuleType.STOP_LOSS,
    trigger: str = "0.30",
) -> RuleSnapshot:
    new = NewRule(
        rule_type=rule_type,
        market_id=market_id,
        token_id=token_id,
        trigger_price=Decimal(trigger),
        action=RuleAction(ActionType.SELL_ALL),
    )
    async with session_factory() as session, session.begin():
        return to_snapshot(await create_rule(session, secret_id, new, max_active_rules=100))


async def test_a_resolution_on_the_feed_expires_the_markets_rules_and_sells_nothing(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice, ids = await tenants_and_market(session_factory, exchange, make_rule)
    exchange.credit(alice.address, token_id=ids.yes, shares="8", avg_price="0.5")
    stop = await rule_on(session_factory, alice.secret_id, ids.condition_id, ids.yes)
    take = await rule_on(
        session_factory,
        alice.secret_id,
        ids.condition_id,
        ids.yes,
        TradeRuleType.TAKE_PROFIT,
        "0.90",
    )
    other_ids = new_market_ids()
    exchange.create_market(other_ids.condition_id, [other_ids.yes, other_ids.no])
    exchange.step_price(other_ids.yes, "0.50")
    elsewhere = await rule_on(
        session_factory, alice.secret_id, other_ids.condition_id, other_ids.yes
    )

    async with api_with_worker(exchange, database_url) as (client, worker):
        async with asyncio.timeout(TIMEOUT_S):
            # One tick caches Alice's position, so its redeemable flag can be seen.
            await worker.wait_for_ticks(worker.request_tick())
            exchange.resolve(ids.condition_id, ids.yes)
            await worker.wait_for(lambda: worker.markets_ended >= 1)
            positions = (await client.get(f"{RULES}/positions", headers=alice.headers)).json()[
                "data"
            ]["positions"]
            rules = {
                r["id"]: r
                for r in (await client.get(RULES, headers=alice.headers)).json()["data"]["rules"]
            }
            assert worker.watched_rule(stop.id) is None and worker.watched_rule(take.id) is None
            assert worker.watched_rule(elsewhere.id) is not None

    for rule_id in (stop.id, take.id):
        assert rules[rule_id]["status"] == "EXPIRED"
        assert rules[rule_id]["errorMessage"] == "market resolved: Yes won"
        assert await expired_events(session_factory, rule_id) == [
            {"reason": "market_resolved", "winningTokenId": ids.yes}
        ]
    assert rules[elsewhere.id]["status"] == "ACTIVE"
    assert await executed_sells(session_factory, alice.secret_id) == []
    assert exchange.order_receipts() == ()
    [position] = [p for p in positions if p["tokenId"] == ids.yes]
    assert position["redeemable"] is True
    assert position["currentPrice"] == 1.0


def no_feed(exchange: LocalExchange, database_url: str) -> Settings:
    return worker_settings(exchange, database_url, trade_manager_ws_enabled=False)


async def test_the_poll_tick_finds_an_ended_market_and_a_token_outside_its_market(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    database_url: str,
    make_secret: MakeSecret,
) -> None:
    secret_id = await make_secret("a")
    ids = new_market_ids()
    exchange.create_market(ids.condition_id, [ids.yes, ids.no], outcomes=("Rain", "Dry"))
    exchange.step_price(ids.yes, "0.50")
    other = new_market_ids()
    exchange.create_market(other.condition_id, [other.yes, other.no])
    exchange.step_price(other.yes, "0.50")
    on_no = await rule_on(session_factory, secret_id, ids.condition_id, ids.no)
    misplaced = await rule_on(session_factory, secret_id, ids.condition_id, other.yes)
    unknown_market = await rule_on(session_factory, secret_id, "0xnot-a-market", other.yes)

    async with running_worker(no_feed(exchange, database_url), session_factory, live_skill) as w:
        async with asyncio.timeout(TIMEOUT_S):
            await w.wait_for_ticks(w.request_tick())
            assert w.watched_rule(misplaced.id) is None
            assert w.watched_rule(on_no.id) is not None
            exchange.resolve(ids.condition_id, ids.yes)
            # Asked at most once per few minutes: the market is not asked again yet.
            await w.wait_for_ticks(w.request_tick())
            assert (await rule_row(session_factory, on_no.id)).status is TradeRuleStatus.ACTIVE

    # A new worker (a restart) has not asked yet: its first tick finds the market resolved.
    async with running_worker(no_feed(exchange, database_url), session_factory, live_skill) as w:
        async with asyncio.timeout(TIMEOUT_S):
            await w.wait_for_ticks(w.request_tick())
            assert w.watched_rule(on_no.id) is None

    row = await rule_row(session_factory, on_no.id)
    assert (row.status, row.error_message) == (TradeRuleStatus.EXPIRED, "market resolved: Rain won")
    assert await expired_events(session_factory, on_no.id) == [
        {"reason": "market_resolved", "winningTokenId": ids.yes}
    ]
    row = await rule_row(session_factory, misplaced.id)
    assert (row.status, row.error_message) == (
        TradeRuleStatus.FAILED,
        f"tokenId {other.yes} is not an outcome of market {ids.condition_id}",
    )
    # A market the exchange does not know proves nothing: the rule keeps watching.
    assert (await rule_row(session_factory, unknown_market.id)).status is TradeRuleStatus.ACTIVE


async def test_expires_at_also_ends_in_rule_expired(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    expiring = await make_rule(secret_id, "1")
    async with session_factory() as session, session.begin():
        row = await session.get(TradeRule, expiring.id)
        assert row is not None
        row.expires_at = clock.now() + timedelta(seconds=30)
    skill.set_book("1", [("0.50", "100")], [("0.52", "100")])
    settings = Settings(
        database_url=database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
    )

    worker = TradeMonitoringWorker(settings, session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        await worker.wait_for_ticks(1)
        clock.advance(31)
        await worker.wait_for_ticks(worker.request_tick())

    row = await rule_row(session_factory, expiring.id)
    assert (row.status, row.error_message) == (TradeRuleStatus.EXPIRED, None)
    assert await expired_events(session_factory, expiring.id) == [{"reason": "expiresAt"}]
