"""A SELL that carries the caller's fresh position skips the Data API read, and is capped by it."""

from __future__ import annotations

from decimal import Decimal

from tests.skill.conftest import MarketIds, Wallet, shares_of
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import BetRequest, BetStatus


async def test_sell_with_shares_held_does_not_read_positions_and_never_sells_more(
    exchange: LocalExchange, skill: PolymarketSkill, wallet: Wallet, market: MarketIds
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="20", avg_price="0.40")
    # Any read of the positions now fails: the sell can only succeed without one.
    exchange.fail_next("/data-api/positions", count=5, status=503)

    result = await skill.place_bet(
        BetRequest(
            secret_id=wallet.secret_id,
            token_id=market.yes,
            side="SELL",
            amount=Decimal(12),
            shares_held=Decimal("7.5"),
        )
    )

    assert result.status is BetStatus.EXECUTED
    assert result.filled_shares == Decimal("7.5")
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal("12.5")
