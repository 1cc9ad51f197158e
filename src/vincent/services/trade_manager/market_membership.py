"""Refuse a rule whose token is not an outcome of its market, when the exchange can say so.

The token → market lookup is the skill's (cached and bounded: a token's market never
changes). When the exchange cannot be asked in time the rule is accepted, and the poll
tick's market check (``market_watch``) fails it later if it was wrong.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from vincent.errors import ValidationFailed
from vincent.services.trade_manager.market_endings import misplaced_message

logger = logging.getLogger(__name__)


@runtime_checkable
class TokenMarkets(Protocol):
    """A skill that knows which market a token belongs to (None: an unknown token)."""

    async def market_of_token(self, token_id: str) -> str | None: ...


async def check_token_in_market(
    skill: object, market_id: str, token_id: str, *, timeout_s: float
) -> None:
    """Raise ``ValidationFailed`` (path ``tokenId``) when the exchange says ``token_id`` is
    not an outcome of ``market_id``; return when it is, or when it cannot be asked."""
    if not isinstance(skill, TokenMarkets):
        return
    try:
        async with asyncio.timeout(timeout_s):
            condition_id = await skill.market_of_token(token_id)
    except Exception as error:  # unreachable or slow: accepted now, checked on the next tick
        logger.warning(
            "token_market_lookup_failed",
            extra={"token_id": token_id, "error": type(error).__name__},
        )
        return
    if condition_id is not None and condition_id.lower() == market_id.lower():
        return
    message = misplaced_message(token_id, market_id)
    raise ValidationFailed(
        message, details=[{"code": "custom", "path": ["tokenId"], "message": message}]
    )
