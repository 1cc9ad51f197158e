"""The skill's trading routes (mounted under ``/api/skills/polymarket``): bet, holdings,
book, midpoint, market, open orders, trades, cancels.

Thin: parse, call the skill with the caller's own secret id, wrap in the envelope. The
secret always comes from the API key, so a tenant can only ever act on its own wallet.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vincent.api.auth import CurrentSecret
from vincent.api.envelope import ok
from vincent.api.schemas import (
    MAX_AMOUNT,
    ConditionIdFormat,
    IdFormat,
    PrintableFormat,
    TokenIdFormat,
)
from vincent.api.state import app_state
from vincent.errors import ConfigurationError
from vincent.services.approvals import bet_result_json
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.actions import unknown_result
from vincent.skills.polymarket.errors import UnknownOutcome
from vincent.skills.polymarket.types import BetRequest, BetStatus, Holding

router = APIRouter(tags=["polymarket"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "VALIDATION_ERROR, INVALID_ORDER, INVALID_TYPE"},
    401: {"description": "UNAUTHORIZED: missing, malformed or revoked API key"},
    404: {"description": "NOT_FOUND: unknown token, market or secret"},
    500: {"description": "Skill errors (EXCHANGE_UNAVAILABLE, NO_LIQUIDITY, ...)"},
}
_STATUS_CODE = {
    BetStatus.EXECUTED: 200,
    BetStatus.PENDING_APPROVAL: 202,
    BetStatus.DENIED: 403,
    # Sent, answer lost or ambiguous: accepted for settling, never re-sent behind the agent.
    BetStatus.UNKNOWN: 202,
}


async def _skill(request: Request) -> PolymarketSkill:
    skill = app_state(request).skill
    if not isinstance(skill, PolymarketSkill):
        raise ConfigurationError("The Polymarket skill is not configured in this process")
    return skill


Skill = Annotated[PolymarketSkill, Depends(_skill)]
# Path and query values that reach upstream URLs: format-checked first (400 naming them).
TokenIdParam = Annotated[str, TokenIdFormat]
ConditionIdParam = Annotated[str, ConditionIdFormat]
OrderIdParam = Annotated[str, IdFormat]


class BetBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    token_id: Annotated[str, TokenIdFormat] = Field(alias="tokenId", min_length=1)
    side: Literal["BUY", "SELL"]
    # Numbers on the wire (as the original); turned into exact Decimals by their shortest
    # repr. Finite and bounded: Infinity or 1e300 is a 400, never an order or a 500.
    amount: float = Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)
    price: float | None = Field(default=None, ge=0.001, le=0.999, allow_inf_nan=False)
    order_type: Literal["FOK", "FAK", "GTC", "GTD"] | None = Field(default=None, alias="orderType")
    worst_price: float | None = Field(
        default=None, alias="worstPrice", gt=0, lt=1, allow_inf_nan=False
    )
    idempotency_key: Annotated[str, PrintableFormat] | None = Field(
        default=None, alias="idempotencyKey", min_length=1, max_length=100
    )


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value))


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def holding_json(holding: Holding) -> dict[str, Any]:
    return {
        "tokenId": holding.token_id,
        "conditionId": holding.condition_id,
        "shares": float(holding.shares),
        "averageEntryPrice": _number(holding.average_entry_price),
        "currentPrice": _number(holding.current_price),
        "pnl": _number(holding.pnl),
        "pnlPercent": _number(holding.pnl_percent),
        "marketTitle": holding.market_title,
        "marketSlug": holding.market_slug,
        "outcome": holding.outcome,
        "endDate": holding.end_date,
        "redeemable": holding.redeemable,
    }


@router.post("/bet", responses=_ERRORS)
async def place_bet(body: BetBody, secret: CurrentSecret, skill: Skill) -> JSONResponse:
    """Buy (amount in USD) or sell (amount in shares): 200 executed, 202 pending approval or
    unknown (sent, outcome not known yet: settled by reconciliation), 403 denied."""
    request = BetRequest(
        secret_id=secret.id,
        token_id=body.token_id,
        side=body.side,
        amount=Decimal(repr(body.amount)),
        price=_decimal(body.price),
        api_key_id=secret.api_key_id,
        order_type=body.order_type,
        worst_price=_decimal(body.worst_price),
        idempotency_key=f"{secret.id}:{body.idempotency_key}" if body.idempotency_key else None,
    )
    try:
        result = await skill.place_bet(request)
    except UnknownOutcome as error:
        if error.transaction_log_id is None:
            raise
        result = unknown_result(
            error.transaction_log_id,
            error.order_id,
            await skill.wallet_address(secret.id),
            error.message,
        )
    return ok(bet_result_json(result), status_code=_STATUS_CODE[result.status])


@router.get("/holdings", responses=_ERRORS)
async def holdings(secret: CurrentSecret, skill: Skill) -> JSONResponse:
    found = await skill.get_holdings(secret.id)
    return ok(
        {
            "walletAddress": await skill.wallet_address(secret.id),
            "holdings": [holding_json(h) for h in found],
        }
    )


@router.get("/orderbook/{token_id}", responses=_ERRORS)
async def orderbook(token_id: TokenIdParam, secret: CurrentSecret, skill: Skill) -> JSONResponse:
    return ok((await skill.get_order_book(token_id)).raw)


@router.get("/midpoint/{token_id}", responses=_ERRORS)
async def midpoint(token_id: TokenIdParam, secret: CurrentSecret, skill: Skill) -> JSONResponse:
    mid = await skill.get_midpoint(token_id)
    return ok({"tokenId": token_id, "midpoint": None if mid is None else str(mid)})


@router.get("/market/{condition_id}", responses=_ERRORS)
async def market(
    condition_id: ConditionIdParam, secret: CurrentSecret, skill: Skill
) -> JSONResponse:
    return ok({"market": await skill.get_market(condition_id)})


@router.get("/open-orders", responses=_ERRORS)
async def open_orders(
    secret: CurrentSecret, skill: Skill, market: ConditionIdParam | None = None
) -> JSONResponse:
    return ok(
        {
            "walletAddress": await skill.wallet_address(secret.id),
            "openOrders": await skill.get_open_orders(secret.id, market),
        }
    )


@router.get("/trades", responses=_ERRORS)
async def trades(
    secret: CurrentSecret, skill: Skill, market: ConditionIdParam | None = None
) -> JSONResponse:
    return ok({"trades": await skill.get_trades(secret.id, market)})


@router.delete("/orders/{order_id}", responses=_ERRORS)
async def cancel_order(order_id: OrderIdParam, secret: CurrentSecret, skill: Skill) -> JSONResponse:
    return ok(await skill.cancel_order(secret.id, order_id))


@router.delete("/orders", responses=_ERRORS)
async def cancel_all(secret: CurrentSecret, skill: Skill) -> JSONResponse:
    return ok(await skill.cancel_order(secret.id, None))
