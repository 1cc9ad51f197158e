"""A takeover right after a rule's claim: the deposed leader's order is never stored nor sent.

PostgreSQL only. The real executor, the real skill and the local exchange; the new leader's
epoch bump is a real UPDATE on its own connection, issued while the claim's transaction
holds the epoch FOR SHARE, so it commits the moment the claim does: the old leader then
goes on to sell under an epoch that is no longer current, as a leader frozen (SIGSTOP,
paused VM) between its claim and its order would on resuming.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import _TABLES, _pg_execute
from tests.engine.conftest import MakeRule, ManualClock
from tests.engine.live import events_of, open_market, rule_row, shares_of
from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.leader_epoch import LEADERSHIP_ROW, current_epoch_for_share
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.leadership import asyncpg_dsn
from vincent.services.trade_manager.rule_executor import ExecutionOutcome, RuleExecutor, Trigger
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import AttemptOutcome

pytestmark = pytest.mark.postgres

EPOCH = 3
TIMEOUT_S = 15.0


@pytest.fixture
def database_url(postgres_url: str) -> str:
    asyncio.run(_pg_execute(postgres_url, f"TRUNCATE {_TABLES} CASCADE"))
    asyncio.run(
        _pg_execute(
            postgres_url,
            "INSERT INTO worker_leadership (id, epoch, leader_id, acquired_at) "
            f"VALUES ({LEADERSHIP_ROW}, {EPOCH}, 'old-leader', now())",
        )
    )
    return postgres_url


class TakeoverDuringClaim:
    """The claim fence of a leader deposed while it claims: it reads the epoch it leads
    under (FOR SHARE, as ``Leadership.held_epoch``), then the new leader's bump queues
    behind that lock and commits as soon as the claim does."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.bump: asyncio.Task[str] | None = None
        self._conn: asyncpg.Connection | None = None

    async def fence(self, session: AsyncSession) -> int | None:
        epoch = await current_epoch_for_share(session)
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
        return epoch

    async def close(self) -> None:
        if self.bump is not None:
            await self.bump
        if self._conn is not None:
            await self._conn.close()


async def test_a_leader_deposed_right_after_its_claim_stores_and_sends_nothing(
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
    takeover = TakeoverDuringClaim(asyncpg_dsn(database_url))
    executor = RuleExecutor(
        session_factory,
        live_skill,
        clock=clock,
        retry_delay=lambda n: 2.0 * n,
        fence=takeover.fence,
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            result = await executor.execute_rule(
                rule, Trigger(price=Decimal("0.35"), source="websocket", ts_event=0.0)
            )
    finally:
        await takeover.close()

    # The old leader claimed, then was refused its order: nothing stored, nothing sent,
    # nothing recorded on the rule after the claim.
    assert result.outcome is ExecutionOutcome.SKIPPED
    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(9)
    async with session_factory() as session:
        rows = await session.scalar(sa.select(sa.func.count()).select_from(TransactionLog))
    assert rows == 0
    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.TRIGGERED
    events = await events_of(session_factory, rule.id)
    kinds = [e.event_type for e in events]
    assert kinds.count(TradeRuleEventType.ACTION_ATTEMPT) == 1
    assert TradeRuleEventType.ACTION_EXECUTED not in kinds
    # What the new leader's reconciliation finds for that attempt: truly not sent, so
    # firing the rule again is the one sale.
    (attempt,) = [e for e in events if e.event_type is TradeRuleEventType.ACTION_ATTEMPT]
    key = str(attempt.event_data["idempotencyKey"])
    resolution = await live_skill.resolve_attempt(key)
    assert resolution.outcome is AttemptOutcome.NOT_SENT
