"""Brackets end to end: the real API and lifespan, the worker, the WebSocket, the exchange."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from tests.engine.conftest import MakeRule
from tests.engine.live import (
    events_of,
    executed_sells,
    is_connected,
    open_market,
    rule_row,
    shares_of,
    worker_settings,
)
from tests.helpers import TEST_ENCRYPTION_KEY, Tenant, make_tenant
from tests.skill.conftest import MarketIds
from vincent.app import create_app
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.sim import LocalExchange

RULES = "/api/skills/polymarket/rules"
TIMEOUT_S = 15.0


@asynccontextmanager
async def api_with_worker(
    exchange: LocalExchange, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, TradeMonitoringWorker]]:
    settings = worker_settings(
        exchange, database_url, vincent_encryption_key=SecretStr(TEST_ENCRYPTION_KEY)
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://vincent"
        ) as client,
    ):
        worker: TradeMonitoringWorker = app.state.vincent.worker
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
        yield client, worker


async def tenants_and_market(
    session_factory: SessionFactory, exchange: LocalExchange, make_rule: MakeRule
) -> tuple[Tenant, MarketIds]:
    async with session_factory() as session:
        alice = await make_tenant(session, "alice")
        bob = await make_tenant(session, "bob")
        await session.commit()
    ids = open_market(exchange, "0.50")
    # Bob's far-away rule keeps the token subscribed and its prices streaming.
    await make_rule(bob.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.10")
    return alice, ids


def bracket_body(ids: MarketIds, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "marketId": ids.condition_id,
        "tokenId": ids.yes,
        "stopLoss": {"triggerPrice": 0.45},
        "takeProfit": {"triggerPrice": 0.60},
        "action": {"type": "SELL_ALL"},
    }
    body.update(changes)
    return body


async def test_the_stop_loss_fill_cancels_the_take_profit(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice, ids = await tenants_and_market(session_factory, exchange, make_rule)
    exchange.credit(alice.address, token_id=ids.yes, shares="8", avg_price="0.5")

    async with api_with_worker(exchange, database_url) as (client, worker):
        async with asyncio.timeout(TIMEOUT_S):
            response = await client.post(
                f"{RULES}/bracket", headers=alice.headers, json=bracket_body(ids)
            )
            assert response.status_code == 201, response.text
            data = response.json()["data"]
            stop_id, take_id = (rule["id"] for rule in data["rules"])
            exchange.step_price(ids.yes, "0.44")  # midpoint 0.445
            await worker.wait_for_executions(1)
            take = (await client.get(f"{RULES}/{take_id}", headers=alice.headers)).json()["data"]
            assert worker.watched_rule(take_id) is None

    assert [r["ruleType"] for r in data["rules"]] == ["STOP_LOSS", "TAKE_PROFIT"]
    assert {r["ocoGroupId"] for r in data["rules"]} == {data["ocoGroupId"]}
    assert (await rule_row(session_factory, stop_id)).status is TradeRuleStatus.TRIGGERED
    assert await executed_sells(session_factory, alice.secret_id) == [Decimal("8")]
    assert shares_of(exchange, alice.address, ids.yes) == 0
    assert take["status"] == "CANCELED"
    assert take["ocoGroupId"] == data["ocoGroupId"]
    canceled = [
        e.event_data
        for e in await events_of(session_factory, take_id)
        if e.event_type is TradeRuleEventType.RULE_CANCELED
    ]
    assert canceled == [{"reason": "oco", "firedRuleId": stop_id}]


async def test_a_stop_that_sells_nothing_lets_the_take_profit_watch_again(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice, ids = await tenants_and_market(session_factory, exchange, make_rule)
    # No shares held: the stop fails without selling.

    async with api_with_worker(exchange, database_url) as (client, worker):
        async with asyncio.timeout(TIMEOUT_S):
            response = await client.post(
                f"{RULES}/bracket", headers=alice.headers, json=bracket_body(ids)
            )
            assert response.status_code == 201, response.text
            stop_id, take_id = (rule["id"] for rule in response.json()["data"]["rules"])
            exchange.step_price(ids.yes, "0.44")
            await worker.wait_for_executions(1)
            await worker.wait_for(lambda: worker.watched_rule(take_id) is not None)

    stop = await rule_row(session_factory, stop_id)
    take = await rule_row(session_factory, take_id)
    assert stop.status is TradeRuleStatus.FAILED
    assert (take.status, take.oco_paused_by) == (TradeRuleStatus.ACTIVE, None)


async def test_canceling_one_leg_by_hand_leaves_the_other_watching(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice, ids = await tenants_and_market(session_factory, exchange, make_rule)
    exchange.credit(alice.address, token_id=ids.yes, shares="5", avg_price="0.5")

    async with api_with_worker(exchange, database_url) as (client, worker):
        async with asyncio.timeout(TIMEOUT_S):
            response = await client.post(
                f"{RULES}/bracket", headers=alice.headers, json=bracket_body(ids)
            )
            stop_id, take_id = (rule["id"] for rule in response.json()["data"]["rules"])
            canceled = await client.delete(f"{RULES}/{stop_id}", headers=alice.headers)
            assert canceled.json()["data"]["status"] == "CANCELED"
            exchange.step_price(ids.yes, "0.64")  # midpoint 0.645: the take-profit sells
            await worker.wait_for_executions(1)

    assert (await rule_row(session_factory, take_id)).status is TradeRuleStatus.TRIGGERED
    assert await executed_sells(session_factory, alice.secret_id) == [Decimal("5")]
