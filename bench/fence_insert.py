"""What the leadership fence costs a rule's sell: writing its audit row (with a signed order).

    python -m bench.fence_insert [--rows 500] [--rounds 2]

PostgreSQL (a scratch database): the plain autocommitted INSERT an agent's ``/bet`` makes,
the fenced one statement a rule's sell makes (``audit.insert_fenced_log``: INSERT … SELECT
… FROM worker_leadership … FOR SHARE), and, for comparison, the same fence as a separate
``SELECT … FOR SHARE`` in a transaction. Prints p50/p95 per variant; the last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

from bench.common import percentile, scratch_database
from vincent.audit import transaction_log as audit
from vincent.db.base import utcnow
from vincent.db.leader_epoch import LEADERSHIP_ROW, current_epoch_for_share
from vincent.db.models import Secret, TransactionLog, WorkerLeadership
from vincent.db.session import (
    SessionFactory,
    create_engine,
    create_session_factory,
    one_statement_session,
)
from vincent.enums import ExecutionMode, TransactionStatus

EPOCH = 1


def _row(secret_id: str) -> TransactionLog:
    return audit.create_log(
        None,
        secret_id=secret_id,
        request_data={"tokenId": "1", "side": "SELL", "amount": "9"},
        status=TransactionStatus.PENDING,
        usd_value=Decimal("4.5"),
        execution_mode=ExecutionMode.LIVE,
        idempotency_key=f"rule-bench-{uuid.uuid4().hex}",
        signed_order={"signature": "0x" + "ab" * 65, "salt": "1", "maker": "0x" + "0" * 40},
        order_id="0x" + uuid.uuid4().hex,
    )


def variants(sessions: SessionFactory, secret_id: str) -> dict[str, Callable[[], Awaitable[None]]]:
    async def plain() -> None:
        async with one_statement_session(sessions) as session:
            session.add(_row(secret_id))

    async def fenced() -> None:
        async with one_statement_session(sessions) as session:
            assert await audit.insert_fenced_log(session, _row(secret_id), EPOCH)

    async def fenced_transaction() -> None:
        async with sessions() as session, session.begin():
            assert await current_epoch_for_share(session) == EPOCH
            session.add(_row(secret_id))

    return {
        "plain INSERT": plain,
        "fenced INSERT...SELECT FOR SHARE": fenced,
        "BEGIN, SELECT FOR SHARE, INSERT, COMMIT": fenced_transaction,
    }


async def run(database_url: str, rows: int, rounds: int) -> dict[str, dict[str, float]]:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            secret = Secret(
                name="bench",
                encrypted_private_key="-",
                eoa_address="0x" + "1" * 40,
                funder_address="0x" + "1" * 40,
                signature_type=0,
            )
            session.add(secret)
            session.add(
                WorkerLeadership(
                    id=LEADERSHIP_ROW, epoch=EPOCH, leader_id="bench", acquired_at=utcnow()
                )
            )
            await session.flush()
            secret_id = secret.id
        cases = variants(sessions, secret_id)
        for write in cases.values():  # warm the pool and the statement caches
            for _ in range(50):
                await write()
        figures: dict[str, dict[str, float]] = {}
        for round_no in range(rounds):
            for label, write in cases.items():
                took_ms: list[float] = []
                for _ in range(rows):
                    started = time.perf_counter()
                    await write()
                    took_ms.append((time.perf_counter() - started) * 1e3)
                p50, p95 = percentile(took_ms, 50), percentile(took_ms, 95)
                print(f"round {round_no}  {label:40s} p50 {p50:.3f} ms  p95 {p95:.3f} ms")
                figures[label] = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3)}
        return figures
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with scratch_database("postgres") as url:
        figures = asyncio.run(run(url, args.rows, args.rounds))
    print(json.dumps({"bench": "fence_insert", "last_round": figures}))


if __name__ == "__main__":
    main()
