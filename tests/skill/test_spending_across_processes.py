"""The issue's reproduction against a real server: ten $10 BUYs sent at the same moment, each
on its own HTTP connection, under a $50 daily limit. On PostgreSQL the server runs two API
processes (``--api-workers 2``), so the bets are decided in different processes.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from bench.common import free_port, server_process
from sqlalchemy.engine import make_url

from tests.skill.conftest import MarketIds, collateral_of, set_policy
from tests.skill.test_routes import new_tenant
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType
from vincent.sim import LocalExchange

PARALLEL_BETS = 10


async def test_parallel_buys_on_separate_connections_stop_at_the_daily_limit(
    exchange: LocalExchange,
    market: MarketIds,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    encryption_key: str,
) -> None:
    alice = await new_tenant(session_factory, keybox, "alice")
    exchange.credit(alice.funder, collateral="1000")
    exchange.set_book(market.yes, bids=[("0.50", "100")], asks=[("0.50", "1000")])
    await set_policy(
        session_factory, alice.secret_id, PolicyType.SPENDING_LIMIT_DAILY, {"maxUsd": 50}
    )
    postgres = make_url(database_url).get_backend_name() == "postgresql"
    env = {
        "DATABASE_URL": database_url,
        "VINCENT_ENCRYPTION_KEY": encryption_key,
        "TRADE_MANAGER_ENABLED": "false",
        "RATE_LIMIT_MAX_REQUESTS": "0",
        "POLYMARKET_CLOB_URL": exchange.clob_url,
        "POLYMARKET_WS_URL": exchange.ws_url,
        "POLYMARKET_DATA_API_URL": exchange.data_api_url,
        "POLYMARKET_GAMMA_URL": exchange.gamma_url,
        "POLYMARKET_RELAYER_URL": exchange.relayer_url,
    }
    port = free_port()
    body = {"tokenId": market.yes, "side": "BUY", "amount": 10}

    async def one_bet() -> httpx.Response:
        # A client of its own: its own connection.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            return await http.post("/api/skills/polymarket/bet", json=body, headers=alice.headers)

    workers = ("--api-workers", "2") if postgres else ()
    async with server_process(env, port, *workers):
        answers = await asyncio.gather(*(one_bet() for _ in range(PARALLEL_BETS)))

    statuses = sorted(a.json()["data"]["status"] for a in answers)
    assert statuses == ["denied"] * 5 + ["executed"] * 5, [a.text for a in answers]
    assert Decimal(950) <= collateral_of(exchange, alice.funder) < Decimal("950.01")
