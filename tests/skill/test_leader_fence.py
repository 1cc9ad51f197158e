"""A rule's sell is stored (and so posted) only under the leadership epoch it was claimed under.

PostgreSQL only: on SQLite there is one worker and no epoch. Real DB, real local exchange;
the takeover's epoch bump is a real uncommitted UPDATE on a separate connection.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa

from tests.conftest import _pg_execute, empty_postgres
from tests.skill.conftest import MarketIds, Wallet, set_policy, shares_of
from vincent.db.leader_epoch import LEADERSHIP_ROW
from vincent.db.models import PendingApproval, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType
from vincent.services.trade_manager.leadership import asyncpg_dsn
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.errors import LeaderDeposed
from vincent.skills.polymarket.types import BetRequest, BetStatus

pytestmark = pytest.mark.postgres

EPOCH = 7
TIMEOUT_S = 15.0


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: the fence is a row lock on ``worker_leadership``."""
    empty_postgres(postgres_url)
    asyncio.run(
        _pg_execute(
            postgres_url,
            "INSERT INTO worker_leadership (id, epoch, leader_id, acquired_at) "
            f"VALUES ({LEADERSHIP_ROW}, {EPOCH}, 'leader-A', now())",
        )
    )
    return postgres_url


def rule_sell(wallet: Wallet, market: MarketIds, epoch: int) -> BetRequest:
    """The sell the rule executor sends for a claimed stop-loss."""
    return BetRequest(
        secret_id=wallet.secret_id,
        token_id=market.yes,
        side="SELL",
        amount=Decimal(10),
        order_type="FOK",
        worst_price=Decimal("0.40"),
        idempotency_key=f"rule-r1-{uuid.uuid4().hex}",
        rule_id="r1",
        shares_held=Decimal(10),
        leader_epoch=epoch,
    )


async def audit_rows(session_factory: SessionFactory, key: str | None) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionLog)
            .where(TransactionLog.idempotency_key == key)
        )
    return int(count or 0)


# The three ways the row is written: one fenced INSERT; under the secret's lock (a daily
# limit); with a pending approval (the epoch read FOR SHARE in that transaction).
POLICIES = {
    "none": None,
    "daily_limit": (PolicyType.SPENDING_LIMIT_DAILY, {"maxUsd": 1000}),
    "approval": (PolicyType.REQUIRE_APPROVAL, {"enabled": True}),
}


@pytest.mark.parametrize("policy", list(POLICIES))
async def test_a_stale_epoch_is_refused_unwritten_unsent_and_the_current_one_proceeds(
    policy: str,
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10", avg_price="0.40")
    chosen = POLICIES[policy]
    if chosen is not None:
        await set_policy(session_factory, wallet.secret_id, *chosen)

    stale = rule_sell(wallet, market, EPOCH - 1)
    with pytest.raises(LeaderDeposed):
        await skill.place_bet(stale)
    assert await audit_rows(session_factory, stale.idempotency_key) == 0
    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(10)

    async with session_factory() as session:
        approvals = await session.scalar(sa.select(sa.func.count()).select_from(PendingApproval))
    assert approvals == 0

    current = rule_sell(wallet, market, EPOCH)
    result = await skill.place_bet(current)
    assert await audit_rows(session_factory, current.idempotency_key) == 1
    if policy == "approval":
        assert result.status is BetStatus.PENDING_APPROVAL
        assert exchange.order_receipts() == ()
        return
    assert result.status is BetStatus.EXECUTED
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(0)


async def test_an_agents_own_bet_is_not_fenced(
    exchange: LocalExchange, skill: PolymarketSkill, wallet: Wallet, market: MarketIds
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10", avg_price="0.40")
    result = await skill.place_bet(
        BetRequest(secret_id=wallet.secret_id, token_id=market.yes, side="SELL", amount=Decimal(4))
    )
    assert result.status is BetStatus.EXECUTED
    assert len(exchange.order_receipts()) == 1


async def test_a_takeover_bump_in_flight_holds_the_write_then_refuses_it(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    database_url: str,
) -> None:
    """The new leader's epoch bump, not yet committed, on its own connection: the old
    leader's write of its signed order waits for it, then sees the new epoch and is
    refused, so the new leader's reconciliation ("no stored order: not sent") is right."""
    exchange.credit(wallet.funder, token_id=market.yes, shares="10", avg_price="0.40")
    request = rule_sell(wallet, market, EPOCH)
    dsn = asyncpg_dsn(database_url)
    bump = await asyncpg.connect(dsn)
    watcher = await asyncpg.connect(dsn)
    sell: asyncio.Task[object] | None = None
    try:
        async with asyncio.timeout(TIMEOUT_S):
            bumping = bump.transaction()
            await bumping.start()
            await bump.execute(
                "UPDATE worker_leadership SET epoch = epoch + 1, leader_id = 'leader-B' "
                "WHERE id = $1",
                LEADERSHIP_ROW,
            )
            sell = asyncio.create_task(skill.place_bet(request))
            # Wait (condition, not time) until a session of the skill waits on the bump's lock.
            bump_pid = bump.get_server_pid()
            while not await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                bump_pid,
            ):
                assert not sell.done(), "the write did not wait for the epoch bump"
                await asyncio.sleep(0.02)
            assert not sell.done()
            assert exchange.order_receipts() == ()
            await bumping.commit()
            with pytest.raises(LeaderDeposed):
                await sell
    finally:
        if sell is not None and not sell.done():
            sell.cancel()
        await bump.close()
        await watcher.close()
    assert await audit_rows(session_factory, request.idempotency_key) == 0
    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(10)
