"""A rule's claim checks that the secret bought none of the token since its position was
read (``bet_inputs.inputs_guard``): that check reads the secret's rows updated since the
read through ``transaction_logs(secret_id, updated_at)``, not the secret's whole history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.skill.conftest import Wallet
from vincent.db.base import new_id, utcnow
from vincent.db.driver_statement import driver_statement
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import ExecutionMode, TransactionStatus
from vincent.skills.polymarket.bet_inputs import inputs_current, inputs_guard

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
HISTORY_ROWS = 2000
INDEX = "ix_transaction_logs_secret_id_updated_at"


def _bought(secret_id: str, when: Any, token: str = TOKEN) -> dict[str, Any]:
    return {
        "id": new_id(),
        "secret_id": secret_id,
        "action_type": "polymarket_bet",
        "request_data": {"tokenId": token, "side": "BUY", "amount": "5"},
        "status": TransactionStatus.EXECUTED,
        "created_at": when,
        "updated_at": when,
        "execution_mode": ExecutionMode.LIVE,
    }


async def _plan(engine: AsyncEngine, statement: sa.Select[Any], params: dict[str, Any]) -> str:
    driver = driver_statement(statement, engine.dialect)
    explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(f"{explain} {driver.sql}", driver.parameters(params))
        return " ".join(str(value) for row in rows.all() for value in row)


async def test_the_claims_bought_since_check_reads_only_the_secrets_recent_rows(
    engine: AsyncEngine, session_factory: SessionFactory, wallet: Wallet
) -> None:
    read_at = utcnow()
    old = read_at - timedelta(days=2)
    async with session_factory() as session, session.begin():
        # A long history of the secret's buys of the token, all before the read.
        await session.execute(
            sa.insert(TransactionLog), [_bought(wallet.secret_id, old) for _ in range(HISTORY_ROWS)]
        )
    async with engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE"))
        await conn.commit()
    guard = inputs_guard(wallet.secret_id, 0, positions_read_at=read_at, token_id=TOKEN)
    assert INDEX in await _plan(engine, sa.select(guard.condition), guard.params)
    async with session_factory() as session:
        assert await inputs_current(session, guard)  # the history is older than the read
    async with session_factory() as session, session.begin():
        await session.execute(sa.insert(TransactionLog), [_bought(wallet.secret_id, utcnow())])
    async with session_factory() as session:
        assert not await inputs_current(session, guard)  # a buy since the read
