"""The leadership fence on storing a rule's signed order (trade manager workers on PostgreSQL).

The worker that claimed a rule passes the epoch it claimed under (``BetRequest.leader_epoch``).
The write that stores the rule's signed order reads the epoch ``FOR SHARE`` in its own
transaction (usually in the INSERT itself: ``audit.insert_fenced_log``; here for the
writes that already run in a transaction) and refuses (``LeaderDeposed``: nothing
written, so nothing is posted) if it changed. A takeover's epoch bump therefore either
waits for that write to commit, and the new leader's reconciliation finds the stored
order and resolves it by order id, or happens first, and the write is refused: a leader
that froze between its claim and its order can never sell a rule the new leader sells
again.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.leader_epoch import current_epoch_for_share
from vincent.skills.polymarket.errors import LeaderDeposed


async def require_leader_epoch(session: AsyncSession, epoch: int) -> None:
    """Share-lock the leadership epoch until ``session``'s transaction ends; raise
    ``LeaderDeposed`` unless it is still ``epoch``."""
    current = await current_epoch_for_share(session)
    if current != epoch:
        raise LeaderDeposed(
            f"the worker that claimed this rule no longer leads (epoch {epoch}, now {current})"
        )
