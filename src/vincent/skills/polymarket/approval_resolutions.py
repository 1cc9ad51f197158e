"""What became of actions that waited on their owner's approval. Reads, never writes.

Decided by the approval's status (``services.approvals`` writes it) and, once approved, by
the action's audit row (the skill's executor writes it). Callers get an
``ApprovalResolution`` and never read either table themselves.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa

from vincent.db.models import PendingApproval, Secret, TransactionLog
from vincent.db.session import SessionFactory, one_statement_session
from vincent.enums import ApprovalStatus, TransactionStatus
from vincent.skills.polymarket.actions import result_of
from vincent.skills.polymarket.types import ApprovalResolution, ApprovalState

_WAITING = ApprovalResolution(ApprovalState.WAITING)


async def resolve_approvals(
    session_factory: SessionFactory, approval_ids: Collection[str], *, now: datetime
) -> dict[str, ApprovalResolution]:
    """Each found approval's resolution by id, read in one statement."""
    if not approval_ids:
        return {}
    async with one_statement_session(session_factory) as session:
        rows = (
            await session.execute(
                sa.select(PendingApproval, TransactionLog, Secret.funder_address)
                .join(TransactionLog, TransactionLog.id == PendingApproval.transaction_log_id)
                .join(Secret, Secret.id == PendingApproval.secret_id)
                .where(PendingApproval.id.in_(list(approval_ids)))
            )
        ).all()
    return {
        approval.id: resolution_of(approval, log, wallet_address, now)
        for approval, log, wallet_address in rows
    }


def resolution_of(
    approval: PendingApproval, log: TransactionLog, wallet_address: str, now: datetime
) -> ApprovalResolution:
    """The approval's decision, then (approved) what its action came to."""
    if approval.status is ApprovalStatus.DENIED:
        return ApprovalResolution(ApprovalState.DENIED)
    if approval.status is ApprovalStatus.EXPIRED or (
        approval.status is ApprovalStatus.PENDING and approval.expires_at <= now
    ):
        return ApprovalResolution(ApprovalState.EXPIRED)
    if approval.status is not ApprovalStatus.APPROVED:
        return _WAITING
    if log.status is TransactionStatus.EXECUTED:
        return ApprovalResolution(ApprovalState.EXECUTED, result_of(log, wallet_address))
    if log.status in (TransactionStatus.FAILED, TransactionStatus.DENIED):
        return ApprovalResolution(
            ApprovalState.FAILED, message=log.error_message or log.status.value
        )
    return _WAITING  # approved, and the executor is still at it
