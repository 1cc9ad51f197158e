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


# ``leads_under``'s condition, built once (its epoch is the bound parameter below).
_LEADS_UNDER = (
    sa.select(sa.literal(1))
    .where(
        WorkerLeadership.id == LEADERSHIP_ROW,
        WorkerLeadership.epoch == sa.bindparam("fence_epoch"),
    )
    .with_for_update(read=True)
    .exists()
)


def leads_under(epoch: int) -> tuple[sa.Exists, dict[str, object]]:
    """A condition for a write's WHERE, and its parameters: the epoch is still ``epoch``,
    read ``FOR SHARE`` (a takeover's bump then waits for the writing transaction, as with
    ``current_epoch_for_share``), in the same statement: no round trip of its own."""
    return _LEADS_UNDER, {"fence_epoch": epoch}
