"""Following an executed action's trades on chain, and writing what settled on its audit row.

A match is not a sale until its trades are CONFIRMED; one that went RETRYING → FAILED
left the shares in the wallet. ``follow`` asks the exchange (through ``LiveOrders``) and
records a final answer on the row once; ``recorded_failure`` reads a FAILED row's error
back as its typed class.
"""

from __future__ import annotations

import logging

from vincent.audit import transaction_log as audit
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory, one_statement_session
from vincent.enums import TransactionStatus
from vincent.skills.polymarket.actions import stored_action
from vincent.skills.polymarket.errors import SettlementFailed, SkillError, error_from_code
from vincent.skills.polymarket.orders import LiveOrders
from vincent.skills.polymarket.types import Settlement, SettlementState

logger = logging.getLogger(__name__)


def recorded_failure(row: TransactionLog) -> SkillError | None:
    """The typed error a FAILED row recorded (None for any other row)."""
    if row.status is not TransactionStatus.FAILED:
        return None
    data = row.response_data or {}
    return error_from_code(
        data.get("errorCode"),
        row.error_message or "the action failed",
        retryable=data.get("retryable") is True,
    )


def trades_named_at_placement(row: TransactionLog) -> tuple[str, ...]:
    """The trades a FOK/FAK's POST answer named: all it will ever have, as it fills at
    placement or never (a resting order's later fills make new trades). Empty when the
    order could rest, or its outcome was learnt by a lookup (``resolvedBy``)."""
    data = row.response_data or {}
    if stored_action(row.request_data).spec.order_type not in ("FOK", "FAK"):
        return ()
    if "resolvedBy" in data:
        return ()
    named = (data.get("exchange") or {}).get("trade_ids")
    return tuple(str(trade_id) for trade_id in named) if isinstance(named, list) else ()


async def follow(
    sessions: SessionFactory, orders: LiveOrders, transaction_log_id: str, *, paper: bool
) -> Settlement:
    """Where the executed action's trades are on chain (``/data/trades``).

    A FAILED settlement moves the audit row EXECUTED → FAILED (``SETTLEMENT_FAILED``,
    with the trades' statuses), once; a CONFIRMED one is noted on the row. Paper
    actions and actions that filled nothing have nothing to settle.
    """
    async with one_statement_session(sessions) as session:
        row = await audit.get_log(session, transaction_log_id)
    if row is None:
        raise SkillError(f"transaction {transaction_log_id} not found")
    if isinstance(recorded_failure(row), SettlementFailed):
        return Settlement(SettlementState.FAILED, row.order_id)
    if paper or row.order_id is None or row.status is not TransactionStatus.EXECUTED:
        return Settlement(SettlementState.NONE, row.order_id)
    found = await orders.settlement(row.secret_id, row.order_id, trades_named_at_placement(row))
    if found.state in (SettlementState.FAILED, SettlementState.CONFIRMED):
        await _record(sessions, row, found)
    return found


async def _record(sessions: SessionFactory, row: TransactionLog, found: Settlement) -> None:
    noted = {
        "state": found.state.value,
        "tradeStatuses": list(found.trade_statuses),
        "transactionHashes": list(found.transaction_hashes),
        "failedShares": str(found.failed_shares),
    }
    data = {**(row.response_data or {}), "settlement": noted}
    async with one_statement_session(sessions) as session:
        if found.state is SettlementState.CONFIRMED:
            await audit.move_status(
                session,
                row.id,
                from_statuses=[TransactionStatus.EXECUTED],
                to_status=TransactionStatus.EXECUTED,
                response_data=data,
            )
            return
        failed = SettlementFailed(
            f"order {row.order_id} matched but its settlement failed on chain "
            f"(trades {', '.join(found.trade_statuses)}); the shares were not sold"
        )
        moved = await audit.move_status(
            session,
            row.id,
            from_statuses=[TransactionStatus.EXECUTED],
            to_status=TransactionStatus.FAILED,
            error_message=failed.message,
            response_data={
                **data,
                "errorCode": failed.code,
                "error": failed.message,
                "retryable": False,
            },
        )
    if moved:
        logger.warning(
            "order_settlement_failed",
            extra={"transaction_log_id": row.id, "order_id": row.order_id},
        )
