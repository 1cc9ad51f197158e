"""The rows a bet's decision writes: its audit row, and the pending approval a
REQUIRE_APPROVAL verdict asks for. Added to the caller's session (the caller's transaction
decides what commits with them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from vincent.audit import transaction_log as audit
from vincent.db.base import new_id, utcnow
from vincent.db.models import PendingApproval, TransactionLog
from vincent.enums import ExecutionMode, TransactionStatus
from vincent.policies.evaluator import Decision, Verdict
from vincent.skills.polymarket.errors import LeaderDeposed, SkillError, is_retryable
from vincent.skills.polymarket.execution import SignedAction
from vincent.skills.polymarket.signed_orders import signed_order_to_json
from vincent.skills.polymarket.types import BetRequest

APPROVAL_TTL = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class BetDraft:
    """An action about to be recorded: the request and what was prepared for it."""

    request: BetRequest
    key: str
    data: dict[str, object]
    usd_value: Decimal | None
    signed: SignedAction | None
    failure: SkillError | None


def status_of(decision: Decision, failure: SkillError | None) -> TransactionStatus:
    if failure is not None:
        return TransactionStatus.FAILED
    return {
        Verdict.DENY: TransactionStatus.DENIED,
        Verdict.REQUIRE_APPROVAL: TransactionStatus.PENDING_APPROVAL,
        Verdict.ALLOW: TransactionStatus.PENDING,
    }[decision.verdict]


def audit_row(
    draft: BetDraft,
    decision: Decision,
    status: TransactionStatus,
    mode: ExecutionMode,
    *,
    approval_id: str | None = None,
) -> TransactionLog:
    """The action's audit row under the final ``status`` (in no session, not yet written);
    ``approval_id``: the PendingApproval a PENDING_APPROVAL row waits for."""
    failure, signed, reason = draft.failure, draft.signed, decision.reason
    response: dict[str, object] | None = None
    if status is TransactionStatus.PENDING_APPROVAL:
        response = {"reason": reason, "pendingApprovalId": approval_id}
    elif status is TransactionStatus.DENIED:
        response = {"reason": reason}
    elif failure is not None:
        response = {
            "errorCode": failure.code,
            "error": failure.message,
            "retryable": is_retryable(failure),
        }
    return audit.create_log(
        None,
        secret_id=draft.request.secret_id,
        api_key_id=draft.request.api_key_id,
        request_data=dict(draft.data),
        status=status,
        usd_value=draft.usd_value,
        idempotency_key=draft.key,
        error_message=None if failure is None else failure.message,
        response_data=response,
        signed_order=None if signed is None else signed_order_to_json(signed.order),
        order_id=None if signed is None else signed.order_id,
        execution_mode=mode,
    )


async def add_rows(
    session: AsyncSession,
    draft: BetDraft,
    decision: Decision,
    status: TransactionStatus,
    mode: ExecutionMode,
    *,
    fenced_insert: bool = False,
) -> TransactionLog:
    """Add the audit row (and the approval a REQUIRE_APPROVAL verdict asks for).

    ``fenced_insert`` (a rule's sell, no approval): INSERT the row now, in one statement
    that checks the request's ``leader_epoch`` (``insert_fenced_log``); ``LeaderDeposed``
    when it is no longer current, nothing written.
    """
    request = draft.request
    approval: PendingApproval | None = None
    if status is TransactionStatus.PENDING_APPROVAL:
        approval = PendingApproval(
            id=new_id(),
            secret_id=request.secret_id,
            rule_id=request.rule_id,
            action_type=audit.ACTION_POLYMARKET_BET,
            request_data=dict(draft.data),
            reason=decision.reason or "",
            expires_at=utcnow() + APPROVAL_TTL,
            execution_mode=mode,
        )
    row = audit_row(
        draft, decision, status, mode, approval_id=None if approval is None else approval.id
    )
    if approval is not None:
        session.add(row)
    epoch = request.leader_epoch if fenced_insert else None
    if epoch is not None:
        assert approval is None
        if not await audit.insert_fenced_log(session, row, epoch):
            raise LeaderDeposed(
                f"the worker that claimed this rule no longer leads (epoch {epoch})"
            )
    elif approval is None:
        await audit.insert_log(session, row)  # one statement, no unit of work
    if approval is not None:
        approval.transaction_log_id = row.id
        # Flushed in order: the approval's row refers to the audit row.
        await session.flush()
        session.add(approval)
    return row
