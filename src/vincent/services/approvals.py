"""Owner decisions on pending approvals: list, approve (executes once), deny, expire.

Every decision is one conditional UPDATE on ``PendingApproval.status`` (``WHERE status =
'PENDING'``); the row count decides the winner, so two approvers never both execute.
Denied and expired approvals never execute; their audit row ends DENIED.

An approval executes only in the execution mode it was requested in (a paper approval is
never placed on the real exchange): otherwise approving is refused and it stays pending.
An approval a trade rule's sale waits on is approved only while that rule still waits
for it (in the same UPDATE); cancelling the rule denies it in the cancel's transaction
(``deny_rule_approval``), so a cancel and an approve never both win.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.audit import transaction_log as audit
from vincent.db.models import PendingApproval, TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import ApprovalStatus, ExecutionMode, TradeRuleStatus, TransactionStatus
from vincent.errors import Conflict, ExecutionModeMismatch, NotFound
from vincent.skills.polymarket.errors import SkillError
from vincent.skills.polymarket.types import BetResult
from vincent.wire_time import iso

logger = logging.getLogger(__name__)


class ApprovalNotFound(NotFound):
    default_message = "Approval not found"


class ApprovalNotPending(Conflict):
    code = "APPROVAL_NOT_PENDING"


class ApprovalRuleNotWaiting(Conflict):
    code = "APPROVAL_RULE_NOT_WAITING"


class ApprovedActionExecutor(Protocol):
    @property
    def paper_mode(self) -> bool: ...

    async def execute_approved(self, transaction_log_id: str) -> BetResult: ...


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """What approving came to: the execution result, or the error it failed with."""

    approval: PendingApproval
    result: BetResult | None
    error_code: str | None = None
    error_message: str | None = None


async def expire_due(session: AsyncSession, now: datetime) -> int:
    """Mark every PENDING approval past its expiry EXPIRED (audit row DENIED); commits."""
    due = (
        await session.scalars(
            sa.select(PendingApproval).where(
                PendingApproval.status == ApprovalStatus.PENDING,
                PendingApproval.expires_at <= now,
            )
        )
    ).all()
    expired = 0
    for approval in due:
        if await _decide(session, approval.id, ApprovalStatus.EXPIRED, "expiry", now):
            await audit.move_status(
                session,
                approval.transaction_log_id,
                from_statuses=[TransactionStatus.PENDING_APPROVAL],
                to_status=TransactionStatus.DENIED,
                error_message="approval expired",
            )
            expired += 1
    await session.commit()
    return expired


async def list_approvals(
    session: AsyncSession,
    now: datetime,
    *,
    status: ApprovalStatus | None = ApprovalStatus.PENDING,
    secret_id: str | None = None,
) -> list[PendingApproval]:
    """Approvals, newest first, after expiring the ones that are due."""
    await expire_due(session, now)
    statement = sa.select(PendingApproval).order_by(PendingApproval.created_at.desc())
    if status is not None:
        statement = statement.where(PendingApproval.status == status)
    if secret_id is not None:
        statement = statement.where(PendingApproval.secret_id == secret_id)
    return list((await session.scalars(statement)).all())


async def approve(
    session_factory: SessionFactory,
    executor: ApprovedActionExecutor,
    approval_id: str,
    *,
    decided_by: str,
    now: datetime,
) -> ApprovalOutcome:
    """Approve and execute the stored action, exactly once.

    Raises ``ApprovalNotPending`` when it was already decided or has expired,
    ``ExecutionModeMismatch`` when it was requested in the other execution mode, and
    ``ApprovalRuleNotWaiting`` when the trade rule it was made for no longer waits for
    it; in the last two cases it stays pending.
    """
    running = ExecutionMode.PAPER if executor.paper_mode else ExecutionMode.LIVE
    async with session_factory() as session:
        approval = await _load(session, approval_id)
        if approval.status is ApprovalStatus.PENDING and approval.execution_mode is not running:
            raise ExecutionModeMismatch(
                "This approval", approval.execution_mode.value, running.value
            )
        if approval.status is ApprovalStatus.PENDING and approval.expires_at <= now:
            await expire_due(session, now)
            raise ApprovalNotPending("Approval has expired")
        won = await _decide(session, approval_id, ApprovalStatus.APPROVED, decided_by, now)
        await session.commit()
        if not won:
            current = await _load(session, approval_id)
            if current.status is ApprovalStatus.PENDING and current.rule_id is not None:
                raise await _rule_not_waiting(session, current)
            raise ApprovalNotPending(f"Approval is already {current.status.value}")
        approval = await _load(session, approval_id)
    logger.info("approval_approved", extra={"approval_id": approval_id})
    try:
        result = await executor.execute_approved(approval.transaction_log_id)
    except SkillError as error:
        return ApprovalOutcome(approval, None, error.code, error.message)
    return ApprovalOutcome(approval, result)


async def deny(
    session: AsyncSession, approval_id: str, *, decided_by: str, now: datetime
) -> PendingApproval:
    """Deny a pending approval (its action never executes); commits."""
    approval = await _load(session, approval_id)
    if not await _decide(session, approval_id, ApprovalStatus.DENIED, decided_by, now):
        raise ApprovalNotPending(f"Approval is already {approval.status.value}")
    await audit.move_status(
        session,
        approval.transaction_log_id,
        from_statuses=[TransactionStatus.PENDING_APPROVAL],
        to_status=TransactionStatus.DENIED,
        error_message=f"denied by {decided_by}",
    )
    await session.commit()
    return await _load(session, approval_id)


async def deny_rule_approval(
    session: AsyncSession, secret_id: str, rule_id: str, *, decided_by: str, now: datetime
) -> bool:
    """Deny the pending approval the tenant's rule ``rule_id`` waits on (PENDING_APPROVAL),
    its audit row with it. In the caller's transaction; does not commit.

    Returns whether an approval was denied. The approval row is written first, so a
    concurrent approve waits on it and then finds it DENIED.
    """
    waited_on = (
        sa.select(TradeRule.pending_approval_id)
        .where(
            TradeRule.id == rule_id,
            TradeRule.secret_id == secret_id,
            TradeRule.status == TradeRuleStatus.PENDING_APPROVAL,
        )
        .scalar_subquery()
    )
    result = await session.execute(
        sa.update(PendingApproval)
        .where(PendingApproval.id == waited_on, PendingApproval.status == ApprovalStatus.PENDING)
        .values(status=ApprovalStatus.DENIED, decided_at=now, decided_by=decided_by)
        .returning(PendingApproval.id, PendingApproval.transaction_log_id)
        .execution_options(synchronize_session=False)
    )
    denied = result.one_or_none()
    if denied is None:
        return False
    await audit.move_status(
        session,
        denied.transaction_log_id,
        from_statuses=[TransactionStatus.PENDING_APPROVAL],
        to_status=TransactionStatus.DENIED,
        error_message="the rule was canceled",
    )
    logger.info("approval_denied_by_rule_cancel", extra={"approval_id": denied.id})
    return True


async def _rule_not_waiting(
    session: AsyncSession, approval: PendingApproval
) -> ApprovalRuleNotWaiting:
    rule_status = await session.scalar(
        sa.select(TradeRule.status).where(TradeRule.id == approval.rule_id)
    )
    status = "deleted" if rule_status is None else rule_status.value
    return ApprovalRuleNotWaiting(
        f"Rule {approval.rule_id} is no longer waiting for this approval (rule status "
        f"{status}): approving it would sell for a rule that is not waiting",
        details={"ruleId": approval.rule_id, "ruleStatus": status},
    )


async def _load(session: AsyncSession, approval_id: str) -> PendingApproval:
    approval = await session.get(PendingApproval, approval_id, populate_existing=True)
    if approval is None:
        raise ApprovalNotFound()
    return approval


async def _decide(
    session: AsyncSession,
    approval_id: str,
    status: ApprovalStatus,
    decided_by: str,
    now: datetime,
) -> bool:
    condition = [
        PendingApproval.id == approval_id,
        PendingApproval.status == ApprovalStatus.PENDING,
    ]
    if status is ApprovalStatus.APPROVED:
        condition.append(PendingApproval.expires_at > now)
        # A rule's sale only while the rule still waits for this very approval.
        condition.append(
            sa.or_(
                PendingApproval.rule_id.is_(None),
                sa.exists().where(
                    TradeRule.id == PendingApproval.rule_id,
                    TradeRule.status == TradeRuleStatus.PENDING_APPROVAL,
                    TradeRule.pending_approval_id == PendingApproval.id,
                ),
            )
        )
    result = await session.execute(
        sa.update(PendingApproval)
        .where(*condition)
        .values(status=status, decided_at=now, decided_by=decided_by)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def approval_json(approval: PendingApproval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "secretId": approval.secret_id,
        "transactionLogId": approval.transaction_log_id,
        "ruleId": approval.rule_id,
        "actionType": approval.action_type,
        "requestData": approval.request_data,
        "reason": approval.reason,
        "status": approval.status.value,
        "expiresAt": iso(approval.expires_at),
        "decidedAt": iso(approval.decided_at),
        "decidedBy": approval.decided_by,
        "createdAt": iso(approval.created_at),
        "executionMode": approval.execution_mode.value,
    }


def bet_result_json(result: BetResult) -> dict[str, Any]:
    """A ``BetResult`` in the wire shape of ``POST /bet`` (undefined keys dropped)."""
    data: dict[str, Any] = {
        "orderId": result.order_id,
        "status": result.status.value,
        "transactionLogId": result.transaction_log_id,
        "walletAddress": result.wallet_address,
        "reason": result.reason,
        "orderDetails": result.order_details,
    }
    return {k: v for k, v in data.items() if v is not None}
