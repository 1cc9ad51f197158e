"""``POST /bet`` whose answer is ambiguous: the agent is told so, nothing is sent behind its
back, and reconciliation settles it with the audit row saying how (issue 13, §1)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import sqlalchemy as sa

from tests.engine.conftest import ManualClock
from tests.skill.conftest import MarketIds, shares_of
from tests.skill.test_routes import Tenant, alice, bet, client  # noqa: F401  (fixtures)
from vincent.db.base import utcnow
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TransactionStatus
from vincent.services.trade_manager.reconciliation import reconcile_rules
from vincent.services.trade_manager.rule_executor import RuleExecutor
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.execution import REPOSTED_SAME


async def test_an_ambiguous_bet_answers_unknown_and_reconciliation_settles_it_once(
    exchange: LocalExchange,
    client: httpx.AsyncClient,  # noqa: F811
    alice: Tenant,  # noqa: F811
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    market: MarketIds,
) -> None:
    exchange.credit(alice.funder, token_id=market.yes, shares="10")
    # Two gateway errors the matcher never saw: the post and the re-post of the same order.
    exchange.fail_next("/order", count=2, status=502, method="POST")

    response = await bet(client, alice, tokenId=market.yes, side="SELL", amount=10)

    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["status"] == "unknown"
    assert data["walletAddress"] == alice.funder
    async with session_factory() as session:
        row = await session.get(TransactionLog, data["transactionLogId"])
    assert row is not None and row.status is TransactionStatus.UNKNOWN
    assert data["orderId"] == row.order_id
    assert shares_of(exchange, alice.funder, market.yes) == Decimal(10)
    assert exchange.order_receipts() == ()  # nothing reached the matcher, nothing re-sent

    executor = RuleExecutor(session_factory, skill, clock=ManualClock(), retry_delay=lambda n: 0.0)
    await reconcile_rules(session_factory, skill, executor, now=utcnow())

    [receipt] = exchange.order_receipts()
    assert receipt.order_id == row.order_id  # the same signed order, not a new one
    assert shares_of(exchange, alice.funder, market.yes) == 0
    async with session_factory() as session:
        [settled] = (await session.scalars(sa.select(TransactionLog))).all()
    assert settled.status is TransactionStatus.EXECUTED
    assert settled.response_data is not None
    assert settled.response_data["resolvedBy"] == f"reconciliation: {REPOSTED_SAME}"
