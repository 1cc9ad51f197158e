"""The monitoring workers' leadership epoch, read as a fence (PostgreSQL standbys).

A takeover bumps the one row of ``worker_leadership`` (an UPDATE). A write that must come
from the current leader reads the epoch ``FOR SHARE`` in its own transaction: the bump
then waits for that transaction to commit, or the read already sees the new epoch. Used
by the worker's claim (``services.trade_manager.leadership``) and by the skill's write of
a rule's signed order (``skills.polymarket``), so neither needs the other.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import WorkerLeadership

LEADERSHIP_ROW = 1


async def current_epoch_for_share(session: AsyncSession) -> int | None:
    """The current epoch (None before any election), share-locked until the transaction ends."""
    return await session.scalar(
        sa.select(WorkerLeadership.epoch)
        .where(WorkerLeadership.id == LEADERSHIP_ROW)
        .with_for_update(read=True)
    )


def leads_under(epoch: int) -> sa.Exists:
    """A condition for a write's WHERE: the epoch is still ``epoch``, read ``FOR SHARE`` (a
    takeover's bump then waits for the writing transaction, as with
    ``current_epoch_for_share``), in the same statement: no round trip of its own."""
    return (
        sa.select(sa.literal(1))
        .where(WorkerLeadership.id == LEADERSHIP_ROW, WorkerLeadership.epoch == epoch)
        .with_for_update(read=True)
        .exists()
    )
