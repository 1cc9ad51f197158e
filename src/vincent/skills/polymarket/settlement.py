"""Following an executed action's trades on chain, and writing what settled on its audit row.

A match is not a sale until its trades are CONFIRMED; one that went RETRYING → FAILED
left the shares in the wallet. ``follow`` asks the exchange (through ``LiveOrders``) and
records a final answer on the row once; ``recorded_failure`` reads a FAILED row's error
back as its typed class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from vincent.audit import transaction_log as audit
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory, one_statement_session
from vincent.enums import TransactionStatus
from vincent.skills.polymarket.actions import stored_action
from vincent.skills.polymarket.errors import SettlementFailed, SkillError, error_from_code
from vincent.skills.polymarket.orders import LiveOrders
from vincent.skills.polymarket.types import ExecutedRow, Settlement, SettlementState

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


def named_trades(order_type: str, data: Mapping[str, Any]) -> tuple[str, ...]:
    """The trades a FOK/FAK's POST answer (``data``: the row's response data) named: all it
    will ever have, as it fills at placement or never (a resting order's later fills make
    new trades). Empty when the order could rest, or its outcome was learnt by a lookup
    (``resolvedBy``)."""
    if order_type not in ("FOK", "FAK"):
        return ()
    if "resolvedBy" in data:
        return ()
    named = (data.get("exchange") or {}).get("trade_ids")
    return tuple(str(trade_id) for trade_id in named) if isinstance(named, list) else ()


def trades_named_at_placement(row: TransactionLog) -> tuple[str, ...]:
    """``named_trades`` of a stored row."""
    order_type = stored_action(row.request_data).spec.order_type
    return named_trades(order_type, row.response_data or {})


async def follow(
    sessions: SessionFactory,
    orders: LiveOrders,
    transaction_log_id: str,
    *,
    paper: bool,
    recorded: ExecutedRow | None = None,
) -> Settlement:
    """Where the executed action's trades are on chain (``/data/trades``).

    A FAILED settlement moves the audit row EXECUTED → FAILED (``SETTLEMENT_FAILED``,
    with the trades' statuses), once; a CONFIRMED one is noted on the row. Paper
    actions and actions that filled nothing have nothing to settle. ``recorded``: the
    row as the call that executed it wrote it, so it is not read back (its writes are
    conditional on the row still being EXECUTED, as they are after a read).
    """
    if recorded is None or paper:
        async with one_statement_session(sessions) as session:
            row = await audit.get_log(session, transaction_log_id)
        if row is None:
            raise SkillError(f"transaction {transaction_log_id} not found")
        if isinstance(recorded_failure(row), SettlementFailed):
            return Settlement(SettlementState.FAILED, row.order_id)
        if paper or row.order_id is None or row.status is not TransactionStatus.EXECUTED:
            return Settlement(SettlementState.NONE, row.order_id)
        recorded = ExecutedRow(
            row.secret_id, row.order_id, trades_named_at_placement(row), row.response_data or {}
        )
    found = await orders.settlement(recorded.secret_id, recorded.order_id, recorded.trade_ids)
    if found.state in (SettlementState.FAILED, SettlementState.CONFIRMED):
        await _record(sessions, transaction_log_id, recorded, found)
    return found


async def _record(
    sessions: SessionFactory, log_id: str, recorded: ExecutedRow, found: Settlement
) -> None:
    noted = {
        "state": found.state.value,
        "tradeStatuses": list(found.trade_statuses),
        "transactionHashes": list(found.transaction_hashes),
        "failedShares": str(found.failed_shares),
    }
    data = {**recorded.response_data, "settlement": noted}
    # Each move by itself at the driver (``move_status_at_driver``: no session).
    if found.state is SettlementState.CONFIRMED:
        await audit.move_status_at_driver(
            sessions,
            log_id,
            from_statuses=[TransactionStatus.EXECUTED],
            to_status=TransactionStatus.EXECUTED,
            response_data=data,
        )
        return
    failed = SettlementFailed(
        f"order {recorded.order_id} matched but its settlement failed on chain "
        f"(trades {', '.join(found.trade_statuses)}); the shares were not sold"
    )
    moved = await audit.move_status_at_driver(
        sessions,
        log_id,
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
            extra={"transaction_log_id": log_id, "order_id": recorded.order_id},
        )
