"""A skill action as stored on its audit row, and the result it came to. Pure, no I/O.

``request_data`` keeps amounts as decimal strings so an approved action executes with
exactly the amounts that were checked; ``usdValue`` is also kept as a number for humans.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vincent.db.models import TransactionLog
from vincent.enums import TransactionStatus
from vincent.skills.polymarket.market_data import to_decimal
from vincent.skills.polymarket.orders import Fills, OrderSpec
from vincent.skills.polymarket.types import BetResult, BetStatus, OrderType, Side


@dataclass(frozen=True, slots=True)
class StoredAction:
    """Everything execution needs, read back from ``TransactionLog.request_data``."""

    spec: OrderSpec
    condition_id: str | None
    neg_risk: bool
    rule_id: str | None


def request_data(
    spec: OrderSpec,
    *,
    requested_amount: Decimal,
    usd_value: Decimal | None,
    condition_id: str | None,
    neg_risk: bool,
    rule_id: str | None,
) -> dict[str, Any]:
    return {
        "tokenId": spec.token_id,
        "side": spec.side,
        "amount": str(spec.amount),
        "requestedAmount": str(requested_amount),
        "price": None if spec.price is None else str(spec.price),
        "orderType": spec.order_type,
        "worstPrice": None if spec.worst_price is None else str(spec.worst_price),
        "usdValue": None if usd_value is None else float(usd_value),
        "conditionId": condition_id,
        "negRisk": neg_risk,
        "ruleId": rule_id,
    }


def stored_action(data: dict[str, Any]) -> StoredAction:
    side: Side = "SELL" if data["side"] == "SELL" else "BUY"
    order_type: OrderType = data.get("orderType") or "FOK"
    amount = to_decimal(data["amount"])
    assert amount is not None, "stored action without an amount"
    return StoredAction(
        spec=OrderSpec(
            token_id=str(data["tokenId"]),
            side=side,
            amount=amount,
            price=to_decimal(data.get("price")),
            order_type=order_type,
            worst_price=to_decimal(data.get("worstPrice")),
        ),
        condition_id=data.get("conditionId"),
        neg_risk=bool(data.get("negRisk", False)),
        rule_id=data.get("ruleId"),
    )


def response_data(fills: Fills) -> dict[str, Any]:
    return {
        "orderId": fills.order_id,
        "status": fills.status,
        "filledShares": str(fills.filled_shares),
        "filledUsd": str(fills.filled_usd),
        "exchange": fills.response,
    }


def result_of(row: TransactionLog, wallet_address: str) -> BetResult:
    """The ``BetResult`` a finished (or waiting) row stands for."""
    return _result(row.id, row.status, row.order_id, row.response_data, wallet_address)


def unknown_result(
    log_id: str, order_id: str | None, wallet_address: str, reason: str | None
) -> BetResult:
    """An action whose order was sent and whose outcome is not known yet."""
    return BetResult(
        status=BetStatus.UNKNOWN,
        transaction_log_id=log_id,
        wallet_address=wallet_address,
        order_id=order_id,
        reason=reason,
    )


def executed_result(log_id: str, fills: Fills, wallet_address: str) -> BetResult:
    """What ``result_of`` gives for row ``log_id`` once it recorded ``fills`` as EXECUTED."""
    return _result(
        log_id, TransactionStatus.EXECUTED, fills.order_id, response_data(fills), wallet_address
    )


def _result(
    log_id: str,
    row_status: TransactionStatus,
    order_id: str | None,
    data: dict[str, Any] | None,
    wallet_address: str,
) -> BetResult:
    data = data or {}
    status = {
        TransactionStatus.EXECUTED: BetStatus.EXECUTED,
        TransactionStatus.DENIED: BetStatus.DENIED,
        TransactionStatus.PENDING_APPROVAL: BetStatus.PENDING_APPROVAL,
    }[row_status]
    exchange = data.get("exchange")
    return BetResult(
        status=status,
        transaction_log_id=log_id,
        wallet_address=wallet_address,
        order_id=order_id if status is BetStatus.EXECUTED else None,
        reason=data.get("reason"),
        order_details=exchange if isinstance(exchange, dict) else None,
        filled_shares=to_decimal(data.get("filledShares")),
        filled_usd=to_decimal(data.get("filledUsd")),
        pending_approval_id=data.get("pendingApprovalId"),
    )
