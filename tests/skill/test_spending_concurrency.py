"""Spending limits hold under concurrency: parallel /bet requests never outrun a limit.

Each request runs concurrently through the real app (its own request, its own database
session and connection) against the local exchange, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa

from tests.skill.app_client import app_client
from tests.skill.conftest import MarketIds, Wallet, collateral_of, set_policy
from tests.skill.test_routes import Tenant, admin, bet, new_tenant
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType, TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.errors import RateLimited
from vincent.skills.polymarket.types import BetRequest, BetStatus

PARALLEL_BETS = 10


@pytest.fixture
async def client(
    exchange: LocalExchange, database_url: str, encryption_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(exchange, database_url, encryption_key) as http:
        yield http


@pytest.fixture
async def alice(session_factory: SessionFactory, keybox: KeyBox) -> Tenant:
    return await new_tenant(session_factory, keybox, "alice")


async def _set_daily_limit(client: httpx.AsyncClient, tenant: Tenant, max_usd: int) -> None:
    response = await client.put(
        f"/api/admin/secrets/{tenant.secret_id}/policies/SPENDING_LIMIT_DAILY",
        json={"maxUsd": max_usd},
        headers=admin(),
    )
    assert response.status_code == 200, response.text


async def test_parallel_buys_stop_at_the_daily_limit(
    exchange: LocalExchange,
    client: httpx.AsyncClient,
    alice: Tenant,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(alice.funder, collateral="1000")
    exchange.set_book(market.yes, bids=[("0.50", "100")], asks=[("0.50", "1000")])
    await _set_daily_limit(client, alice, 50)

    answers = await asyncio.gather(
        *(
            bet(client, alice, tokenId=market.yes, side="BUY", amount=10)
            for _ in range(PARALLEL_BETS)
        )
    )

    statuses = sorted(a.json()["data"]["status"] for a in answers)
    assert statuses == ["denied"] * 5 + ["executed"] * 5, [a.text for a in answers]
    async with session_factory() as session:
        logged = (await session.scalars(sa.select(TransactionLog.status))).all()
    assert sorted(logged) == sorted(
        [TransactionStatus.DENIED] * 5 + [TransactionStatus.EXECUTED] * 5
    )
    # $50 moved, not $100 (the exchange may leave sub-cent dust unspent).
    assert Decimal(950) <= collateral_of(exchange, alice.funder) < Decimal("950.01")


async def test_a_resting_order_counts_and_a_killed_one_is_released(
    exchange: LocalExchange,
    client: httpx.AsyncClient,
    alice: Tenant,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(alice.funder, collateral="1000")
    exchange.set_book(market.yes, bids=[("0.50", "100")], asks=[("0.50", "1000")])
    await _set_daily_limit(client, alice, 25)
    # A resting limit order is in flight as far as spend goes; a market order killed
    # without a fill spends nothing.
    resting = await bet(client, alice, tokenId=market.yes, side="BUY", amount=20, price=0.1)
    exchange.set_book(market.yes, bids=[("0.50", "100")], asks=[])
    refused = await bet(client, alice, tokenId=market.yes, side="BUY", amount=5)
    exchange.set_book(market.yes, bids=[("0.50", "100")], asks=[("0.50", "1000")])

    over = await bet(client, alice, tokenId=market.yes, side="BUY", amount=10)
    fits = await bet(client, alice, tokenId=market.yes, side="BUY", amount=5)

    assert resting.status_code == 200, resting.text
    assert refused.status_code >= 400, refused.text
    assert over.json()["data"]["status"] == "denied", over.text
    assert over.json()["data"]["reason"] == (
        "Adding $10.00 would exceed daily limit of $25.00 (already spent $20.00)"
    )
    assert fits.json()["data"]["status"] == "executed", fits.text
    async with session_factory() as session:
        failed = await session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionLog)
            .where(TransactionLog.status == TransactionStatus.FAILED)
        )
    assert failed == 1


async def test_an_order_whose_answer_is_outstanding_counts_toward_spend(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, collateral="1000")
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.SPENDING_LIMIT_DAILY, {"maxUsd": 25}
    )
    exchange.hang_next("/order", method="POST")  # the first order's answer never comes
    first = asyncio.create_task(skill.place_bet(_buy(wallet, market.yes, "20")))
    try:
        async with asyncio.timeout(10):
            # The hang is taken when the post arrives, after its row was committed PENDING.
            while any(exchange.status()["faults"].values()):  # noqa: ASYNC110 (no event for it)
                await asyncio.sleep(0.01)

        second = await skill.place_bet(_buy(wallet, market.yes, "10"))
    finally:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        exchange.clear_faults()

    assert second.status is BetStatus.DENIED
    assert second.reason == (
        "Adding $10.00 would exceed daily limit of $25.00 (already spent $20.00)"
    )


def _buy(wallet: Wallet, token_id: str, usd: str) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id, token_id=token_id, side="BUY", amount=Decimal(usd)
    )


async def test_a_retried_failure_is_checked_again_before_it_is_reopened(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, collateral="1000")
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.SPENDING_LIMIT_DAILY, {"maxUsd": 25}
    )
    keyed = BetRequest(
        secret_id=wallet.secret_id,
        token_id=market.yes,
        side="BUY",
        amount=Decimal(20),
        idempotency_key="retry-me",
    )
    exchange.rate_limit_next("/order", method="POST")
    with pytest.raises(RateLimited):
        await skill.place_bet(keyed)
    # The failed $20 freed its amount, and another $10 was spent meanwhile.
    assert (await skill.place_bet(_buy(wallet, market.yes, "10"))).status is BetStatus.EXECUTED

    retried = await skill.place_bet(keyed)

    assert retried.status is BetStatus.DENIED
    assert retried.reason == (
        "Adding $20.00 would exceed daily limit of $25.00 (already spent $10.00)"
    )
    assert Decimal(990) <= collateral_of(exchange, wallet.funder) < Decimal("990.01")
