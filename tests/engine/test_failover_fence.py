"""A takeover during a rule's claim: the claim and its order commit together, or not at all.

PostgreSQL only. The real executor, the real skill and the local exchange; the new leader's
epoch bump is a real UPDATE on its own connection, issued while the claim's transaction
holds the epoch FOR SHARE, so it commits the moment the claim does. The claim's
transaction also writes the signed order (issue 14: one durable write before the POST), so
there is no moment at which the rule is claimed and its order not stored: the new leader's
reconciliation finds that order and resolves it by id, never signing another.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import _pg_execute, empty_postgres
from tests.engine.conftest import MakeRule, ManualClock
from tests.engine.live import events_of, open_market, rule_row, shares_of
from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.leader_epoch import LEADERSHIP_ROW
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.leadership import asyncpg_dsn
from vincent.services.trade_manager.rule_executor import ExecutionOutcome, RuleExecutor, Trigger
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import AttemptOutcome, Claimed

pytestmark = pytest.mark.postgres

EPOCH = 3
TIMEOUT_S = 15.0


@pytest.fixture
def database_url(postgres_url: str) -> str:
    empty_postgres(postgres_url)
    asyncio.run(
        _pg_execute(
            postgres_url,
            "INSERT INTO worker_leadership (id, epoch, leader_id, acquired_at) "
            f"VALUES ({LEADERSHIP_ROW}, {EPOCH}, 'old-leader', now())",
        )
    )
    return postgres_url


class TakeoverDuringClaim(RuleExecutor):
    """A worker leading under ``EPOCH`` whose claim, once its UPDATE holds the epoch FOR
    SHARE, sees the new leader's bump start on another connection and queue behind it.

    It claims in a transaction (``claim_in``), as a trailing stop or an OCO rule does: a
    plain rule's claim on PostgreSQL is one statement with its audit row
    (``claim_statement``), with no moment between its UPDATE and its commit: a bump either
    waits for it whole or comes before it, the case of
    ``test_a_claim_under_an_epoch_that_is_no_longer_current_writes_and_sends_nothing``."""

    def claim_statement(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __init__(self, dsn: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, fence=lambda: EPOCH, **kwargs)
        self._dsn = dsn
        self.bump: asyncio.Task[str] | None = None
        self._conn: asyncpg.Connection | None = None

    async def claim_in(self, session: AsyncSession, *args: Any, **kwargs: Any) -> Claimed | None:
        claimed = await super().claim_in(session, *args, **kwargs)
        conn = await asyncpg.connect(self._dsn)
        self._conn = conn
        self.bump = asyncio.create_task(
            conn.execute(
                "UPDATE worker_leadership SET epoch = epoch + 1, leader_id = 'new-leader' "
                "WHERE id = $1",
                LEADERSHIP_ROW,
            )
        )
        claim_pid = (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        while not await session.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
            ),
            {"pid": claim_pid},
        ):
            assert not self.bump.done(), "the bump did not wait for the claim"
            await asyncio.sleep(0.02)
        return claimed

    async def close(self) -> None:
        if self.bump is not None:
            await self.bump
        if self._conn is not None:
            await self._conn.close()


async def test_a_takeover_during_the_claim_waits_for_its_order_and_it_is_sold_once(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
    database_url: str,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    executor = TakeoverDuringClaim(
        asyncpg_dsn(database_url),
        session_factory,
        live_skill,
        clock=clock,
        retry_delay=lambda n: 2.0 * n,
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await executor.execute_rule(
                rule, Trigger(price=Decimal("0.35"), source="websocket", ts_event=0.0)
            )
    finally:
        await executor.close()
    assert executor.bump is not None and executor.bump.done()

    # The claim, the signed order and its audit row are one transaction: the new leader's
    # epoch bump waited for it, so the order was stored under the old epoch (and posted).
    # What the new leader's reconciliation finds for that attempt is the stored order,
    # resolved by its id: no second order, no second sale.
    events = await events_of(session_factory, rule.id)
    (attempt,) = [e for e in events if e.event_type is TradeRuleEventType.ACTION_ATTEMPT]
    key = str(attempt.event_data["idempotencyKey"])
    async with session_factory() as session:
        (stored,) = (await session.scalars(sa.select(TransactionLog))).all()
    assert stored.idempotency_key == key and stored.signed_order is not None
    resolution = await live_skill.resolve_attempt(key)
    assert resolution.outcome is AttemptOutcome.EXECUTED
    assert resolution.result is not None and resolution.result.order_id == stored.order_id
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(0)
    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED


async def test_a_leader_deposed_before_its_claim_writes_and_sends_nothing(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    executor = RuleExecutor(
        session_factory,
        live_skill,
        clock=clock,
        retry_delay=lambda n: 2.0 * n,
        fence=lambda: None,  # ``Leadership.lead_epoch`` of a worker that no longer leads
    )
    async with asyncio.timeout(TIMEOUT_S):
        result = await executor.execute_rule(
            rule, Trigger(price=Decimal("0.35"), source="websocket", ts_event=0.0)
        )

    assert result.outcome is ExecutionOutcome.SKIPPED
    assert exchange.order_receipts() == ()
    async with session_factory() as session:
        rows = await session.scalar(sa.select(sa.func.count()).select_from(TransactionLog))
    assert rows == 0
    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.ACTIVE
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert TradeRuleEventType.ACTION_ATTEMPT not in kinds
    assert TradeRuleEventType.RULE_EVALUATED not in kinds


async def test_a_claim_under_an_epoch_that_is_no_longer_current_writes_and_sends_nothing(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    """A leader deposed without knowing it yet: its in-memory epoch is the old one, so the
    claim's UPDATE (which requires the current epoch) matches nothing."""
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    executor = RuleExecutor(
        session_factory,
        live_skill,
        clock=clock,
        retry_delay=lambda n: 2.0 * n,
        fence=lambda: EPOCH - 1,
    )
    async with asyncio.timeout(TIMEOUT_S):
        result = await executor.execute_rule(
            rule, Trigger(price=Decimal("0.35"), source="websocket", ts_event=0.0)
        )

    assert result.outcome is ExecutionOutcome.SKIPPED
    assert exchange.order_receipts() == ()
    async with session_factory() as session:
        rows = await session.scalar(sa.select(sa.func.count()).select_from(TransactionLog))
    assert rows == 0
    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.ACTIVE
