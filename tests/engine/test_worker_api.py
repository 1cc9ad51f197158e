"""Rules created through the real API (real lifespan, real API key) reach the running worker."""

from __future__ import annotations

import asyncio
from decimal import Decimal

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
from tests.helpers import TEST_ENCRYPTION_KEY, make_tenant
from vincent.app import create_app
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.sim import LocalExchange

RULES = "/api/skills/polymarket/rules"
TIMEOUT_S = 15.0


async def test_rule_created_through_the_api_fires_on_the_next_message(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    async with session_factory() as session:
        alice = await make_tenant(session, "alice")
        bob = await make_tenant(session, "bob")
        await session.commit()
    ids = open_market(exchange, "0.50")
    exchange.credit(alice.address, token_id=ids.yes, shares="8", avg_price="0.5")
    # Bob's far-away rule keeps the token subscribed and its prices streaming.
    await make_rule(bob.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.10")
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
            exchange.step_price(ids.yes, "0.47")
            response = await client.post(
                RULES,
                headers=alice.headers,
                json={
                    "ruleType": "STOP_LOSS",
                    "marketId": ids.condition_id,
                    "tokenId": ids.yes,
                    "triggerPrice": 0.45,
                    "action": {"type": "SELL_ALL"},
                },
            )
            assert response.status_code == 201, response.text
            rule_id = response.json()["data"]["id"]
            # One message, right after the call returned, crosses it.
            exchange.step_price(ids.yes, "0.44")
            await worker.wait_for_executions(1)
            status = (await client.get(f"{RULES}/status", headers=alice.headers)).json()["data"]
            metrics = (await client.get("/metrics")).text

    assert status["running"] is True
    assert status["webSocketConnected"] is True
    assert status["yourActiveRulesCount"] == 0
    assert 'vincent_trade_manager_executions_total{outcome="executed"} 1.0' in metrics
    assert 'vincent_trade_manager_triggers_total{source="websocket"} 1.0' in metrics
    assert "vincent_trade_manager_price_event_to_order_seconds_count 1.0" in metrics
    assert "vincent_trade_manager_feed_parse_errors_total 0.0" in metrics
    assert "vincent_trade_manager_feed_messages_total" in metrics
    assert 'vincent_trade_manager_event_loop_lag_seconds_bucket{le="0.002"}' in metrics
    row = await rule_row(session_factory, rule_id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert (await events_of(session_factory, rule_id))[1].event_data["currentPrice"] == 0.445
    assert await executed_sells(session_factory, alice.secret_id) == [Decimal("8")]
    assert shares_of(exchange, alice.address, ids.yes) == 0
