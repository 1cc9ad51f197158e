"""Per-secret locks that make a check and the write it allows one atomic step.

Two checks read what a secret already has and then add to it: the spending limits (spend
so far, then the new action's audit row) and the rule cap (active rules, then the new
rule). Run concurrently under READ COMMITTED, both readers see the same total and both
write. Each such check runs inside a transaction that holds the secret's lock:

- PostgreSQL: ``pg_advisory_xact_lock(scope, hashtext(secret_id))``, released by the
  transaction's COMMIT or ROLLBACK. Other secrets never wait (a hash collision only makes
  two secrets share a lock, never lets two checks of one secret overlap).
- SQLite: ``BEGIN IMMEDIATE``, the first statement of the transaction, takes the
  database's single write lock before anything is read (``busy_timeout`` makes the others
  wait for it), so the reads see every committed write and no other writer can commit
  until this transaction ends.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.session import SessionFactory


class LockScope(enum.IntEnum):
    """The first key of the advisory lock: one lock per secret per kind of check."""

    SPENDING = 0x5653_0001
    RULE_CAP = 0x5653_0002


def _dialect(session: AsyncSession) -> str:
    assert session.bind is not None
    return session.bind.dialect.name


async def lock_secret(session: AsyncSession, secret_id: str, scope: LockScope) -> None:
    """PostgreSQL: wait for the secret's ``scope`` lock, held until the transaction ends.

    SQLite needs nothing here when the guarded write is a single statement that reads
    what it checks (``INSERT … SELECT … WHERE``): SQLite takes its write lock before that
    statement reads anything. Checks spanning statements use ``secret_locked_transaction``.
    """
    if _dialect(session) == "postgresql":
        await session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(int(scope), sa.func.hashtext(secret_id)))
        )


@asynccontextmanager
async def secret_locked_transaction(
    session_factory: SessionFactory, secret_id: str, scope: LockScope
) -> AsyncIterator[AsyncSession]:
    """A new transaction (committed on exit, rolled back on error) that holds the secret's
    ``scope`` lock from its first statement. Keep it short: no network calls inside."""
    async with session_factory() as session, session.begin():
        if _dialect(session) == "postgresql":
            await lock_secret(session, secret_id, scope)
        else:
            await session.execute(sa.text("BEGIN IMMEDIATE"))
        yield session
