"""Owner decisions: approve executes the stored action exactly once; deny and expiry never."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.skill.conftest import MarketIds, Wallet, collateral_of, set_policy
from vincent.db.base import utcnow
from vincent.db.models import PendingApproval, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import ApprovalStatus, PolicyType, TransactionStatus
from vincent.services import approvals
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import BetRequest, BetResult, BetStatus


@pytest.fixture
async def pending(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> BetResult:
    exchange.credit(wallet.funder, collateral="100")
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
    )
    result = await skill.place_bet(
        BetRequest(secret_id=wallet.secret_id, token_id=market.yes, side="BUY", amount=Decimal(10))
    )
    assert result.status is BetStatus.PENDING_APPROVAL
    return result


async def audit_row(session_factory: SessionFactory) -> TransactionLog:
    async with session_factory() as session:
        [row] = (await session.scalars(sa.select(TransactionLog))).all()
    return row


async def test_approve_executes_once_even_when_two_owners_race(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    pending: BetResult,
    session_factory: SessionFactory,
) -> None:
    approval_id = pending.pending_approval_id
    assert approval_id is not None

    outcomes = await asyncio.gather(
        approvals.approve(session_factory, skill, approval_id, decided_by="alice", now=utcnow()),
        approvals.approve(session_factory, skill, approval_id, decided_by="bob", now=utcnow()),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if isinstance(o, approvals.ApprovalOutcome)]
    losers = [o for o in outcomes if isinstance(o, approvals.ApprovalNotPending)]
    assert len(winners) == 1 and len(losers) == 1
    [winner] = winners
    assert winner.result is not None and winner.result.status is BetStatus.EXECUTED
    assert winner.result.transaction_log_id == pending.transaction_log_id
    assert Decimal(90) <= collateral_of(exchange, wallet.funder) < Decimal("90.01")
    row = await audit_row(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.order_id == winner.result.order_id
    with pytest.raises(approvals.ApprovalNotPending):
        await approvals.approve(
            session_factory, skill, approval_id, decided_by="carol", now=utcnow()
        )


async def test_deny_never_executes(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    pending: BetResult,
    session_factory: SessionFactory,
) -> None:
    approval_id = pending.pending_approval_id
    assert approval_id is not None
    async with session_factory() as session:
        denied = await approvals.deny(session, approval_id, decided_by="owner", now=utcnow())

    assert denied.status is ApprovalStatus.DENIED
    with pytest.raises(approvals.ApprovalNotPending):
        await approvals.approve(
            session_factory, skill, approval_id, decided_by="owner", now=utcnow()
        )
    assert collateral_of(exchange, wallet.funder) == Decimal(100)
    assert (await audit_row(session_factory)).status is TransactionStatus.DENIED


async def test_expired_approval_never_executes(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    pending: BetResult,
    session_factory: SessionFactory,
) -> None:
    approval_id = pending.pending_approval_id
    assert approval_id is not None
    later = utcnow() + timedelta(minutes=31)

    with pytest.raises(approvals.ApprovalNotPending, match="expired"):
        await approvals.approve(session_factory, skill, approval_id, decided_by="owner", now=later)

    async with session_factory() as session:
        approval = await session.get(PendingApproval, approval_id)
        assert approval is not None and approval.status is ApprovalStatus.EXPIRED
        assert await approvals.list_approvals(session, later) == []
    assert collateral_of(exchange, wallet.funder) == Decimal(100)
    assert (await audit_row(session_factory)).status is TransactionStatus.DENIED


async def test_list_shows_pending_then_expires_them(
    pending: BetResult, session_factory: SessionFactory
) -> None:
    async with session_factory() as session:
        listed = await approvals.list_approvals(session, utcnow())
        assert [a.id for a in listed] == [pending.pending_approval_id]
        assert await approvals.expire_due(session, utcnow() + timedelta(minutes=30)) == 1
        assert await approvals.list_approvals(session, utcnow()) == []
