"""Market and limit orders signed by the SDK, against the local exchange over HTTP."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.skill.conftest import (
    MarketIds,
    Wallet,
    add_wallet,
    collateral_of,
    shares_of,
)
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.errors import NoLiquidity
from vincent.skills.polymarket.types import BetRequest, BetStatus


async def audit_rows(session_factory: SessionFactory) -> list[TransactionLog]:
    async with session_factory() as session:
        return list((await session.scalars(sa.select(TransactionLog))).all())


@pytest.mark.parametrize("signature_type", [0, 2, 3], ids=["eoa", "safe", "deposit-wallet"])
async def test_market_sell_fills_for_each_wallet_type(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    market: MarketIds,
    signature_type: int,
) -> None:
    wallet = await add_wallet(session_factory, keybox, signature_type)
    exchange.credit(wallet.funder, token_id=market.yes, shares="150", avg_price="0.40")

    result = await skill.place_bet(
        BetRequest(
            secret_id=wallet.secret_id, token_id=market.yes, side="SELL", amount=Decimal(150)
        )
    )

    assert result.status is BetStatus.EXECUTED
    assert result.wallet_address == wallet.funder
    assert result.filled_shares == Decimal(150)
    # 100 at 0.50 and 50 at 0.48.
    assert result.filled_usd == Decimal("74")
    assert shares_of(exchange, wallet.funder, market.yes) == 0
    assert collateral_of(exchange, wallet.funder) == Decimal(74)
    [row] = await audit_rows(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.order_id == result.order_id
    assert row.signed_order is not None
    assert row.usd_value == Decimal(74)


async def test_sell_with_worst_price_above_the_book_is_refused_without_fill(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")

    with pytest.raises(NoLiquidity):
        await skill.place_bet(
            BetRequest(
                secret_id=wallet.secret_id,
                token_id=market.yes,
                side="SELL",
                amount=Decimal(10),
                worst_price=Decimal("0.60"),
            )
        )

    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(10)
    [row] = await audit_rows(session_factory)
    assert row.status is TransactionStatus.FAILED


async def test_limit_order_rests_and_cancels(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, collateral="100")

    result = await skill.place_bet(
        BetRequest(
            secret_id=wallet.secret_id,
            token_id=market.yes,
            side="BUY",
            amount=Decimal(20),
            price=Decimal("0.40"),
        )
    )

    assert result.status is BetStatus.EXECUTED
    assert result.filled_shares == 0
    open_orders = await skill.get_open_orders(wallet.secret_id, None)
    assert [o["id"] for o in open_orders] == [result.order_id]
    canceled = await skill.cancel_order(wallet.secret_id, result.order_id)
    assert canceled["canceled"] == [result.order_id]
    assert await skill.get_open_orders(wallet.secret_id, None) == []


async def test_limit_order_on_a_finer_tick_signs_after_refreshing_market_info(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, collateral="100")
    await skill.prepare(wallet.secret_id, market.yes)  # caches tick 0.01
    exchange.set_tick_size(market.yes, "0.001")

    result = await skill.place_bet(
        BetRequest(
            secret_id=wallet.secret_id,
            token_id=market.yes,
            side="BUY",
            amount=Decimal("4.55"),
            price=Decimal("0.455"),
        )
    )

    assert result.status is BetStatus.EXECUTED
    [order] = await skill.get_open_orders(wallet.secret_id, None)
    assert Decimal(order["price"]) == Decimal("0.455")
    assert Decimal(order["original_size"]) == 10
