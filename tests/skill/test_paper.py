"""Paper mode: same policy and audit path; fills walk the live book into the paper ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.skill.conftest import MarketIds, Wallet, set_policy
from vincent.db.models import PaperFill, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType, TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.errors import NoLiquidity, NoPosition
from vincent.skills.polymarket.types import BetRequest, BetStatus


def request(wallet: Wallet, token_id: str, side: str, amount: str, **extra: object) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id,
        token_id=token_id,
        side=side,  # type: ignore[arg-type]
        amount=Decimal(amount),
        **extra,  # type: ignore[arg-type]
    )


async def test_paper_buy_then_sell_walks_the_book_and_updates_holdings(
    exchange: LocalExchange,
    paper_skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    # Asks: 100 @ 0.52, 200 @ 0.55. $80 buys 100 @ 0.52 ($52), then 50.90 @ 0.55 ($27.995).
    bought = await paper_skill.place_bet(request(wallet, market.yes, "BUY", "80"))

    assert bought.status is BetStatus.EXECUTED
    assert bought.filled_shares == Decimal("150.90")
    assert bought.filled_usd == Decimal("79.995")
    [holding] = await paper_skill.get_holdings(wallet.secret_id)
    assert holding.shares == Decimal("150.90")
    assert holding.current_price == Decimal("0.51")

    # Bids: 100 @ 0.50, 200 @ 0.48. Selling 120 = $50 + $9.60.
    sold = await paper_skill.place_bet(request(wallet, market.yes, "SELL", "120"))

    assert sold.filled_usd == Decimal("59.60")
    [holding] = await paper_skill.get_holdings(wallet.secret_id)
    assert holding.shares == Decimal("30.90")
    # The exchange saw nothing: paper orders never leave the process.
    assert exchange.order_receipts() == ()
    async with session_factory() as session:
        fills = (await session.scalars(sa.select(PaperFill))).all()
        logs = (await session.scalars(sa.select(TransactionLog))).all()
    assert len(fills) == 4
    assert [log.status for log in logs] == [TransactionStatus.EXECUTED] * 2


async def test_paper_sell_is_capped_at_paper_holdings(
    paper_skill: PolymarketSkill, wallet: Wallet, market: MarketIds
) -> None:
    with pytest.raises(NoPosition):
        await paper_skill.place_bet(request(wallet, market.yes, "SELL", "10"))
    await paper_skill.place_bet(request(wallet, market.yes, "BUY", "5.2"))

    sold = await paper_skill.place_bet(request(wallet, market.yes, "SELL", "99"))

    assert sold.filled_shares == Decimal(10)


async def test_paper_fok_beyond_the_book_and_worst_price_are_refused(
    paper_skill: PolymarketSkill, wallet: Wallet, market: MarketIds
) -> None:
    with pytest.raises(NoLiquidity):
        await paper_skill.place_bet(request(wallet, market.yes, "BUY", "1000"))
    with pytest.raises(NoLiquidity):
        await paper_skill.place_bet(
            request(wallet, market.yes, "BUY", "10", worst_price=Decimal("0.51"))
        )

    partial = await paper_skill.place_bet(
        request(wallet, market.yes, "BUY", "1000", order_type="FAK")
    )

    assert partial.filled_shares == Decimal(300)
    assert await paper_skill.get_holdings(wallet.secret_id) != []


async def test_paper_mode_goes_through_policies(
    paper_skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 10}
    )

    result = await paper_skill.place_bet(request(wallet, market.yes, "BUY", "11"))

    assert result.status is BetStatus.DENIED
    assert await paper_skill.get_holdings(wallet.secret_id) == []
