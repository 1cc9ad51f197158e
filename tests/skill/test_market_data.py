"""Reads: midpoint, holdings, Gamma slugs, and warming a secret's SDK client."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.skill.conftest import MarketIds, Wallet, skill_settings
from vincent.crypto import KeyBox
from vincent.db.models import Secret
from vincent.db.session import SessionFactory
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill
from vincent.skills.polymarket.types import BetRequest, BetStatus


async def test_midpoint_is_parsed_and_one_sided_books_have_none(
    exchange: LocalExchange, skill: PolymarketSkill, market: MarketIds
) -> None:
    assert await skill.get_midpoint(market.yes) == Decimal("0.51")

    exchange.set_book(market.yes, bids=[("0.40", "10")], asks=[])

    assert await skill.get_midpoint(market.yes) is None
    assert await skill.get_midpoint("999") is None


async def test_order_book_is_best_first(skill: PolymarketSkill, market: MarketIds) -> None:
    book = await skill.get_order_book(market.yes)

    assert [level.price for level in book.bids] == [
        Decimal("0.50"),
        Decimal("0.48"),
        Decimal("0.45"),
    ]
    assert [level.price for level in book.asks] == [Decimal("0.52"), Decimal("0.55")]
    assert book.market == market.condition_id
    assert book.tick_size == Decimal("0.01")


async def test_holdings_come_from_the_data_api_including_small_positions(
    exchange: LocalExchange, skill: PolymarketSkill, wallet: Wallet, market: MarketIds
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="0.5", avg_price="0.40")

    [holding] = await skill.get_holdings(wallet.secret_id)

    assert holding.token_id == market.yes
    assert holding.condition_id == market.condition_id
    assert holding.shares == Decimal("0.5")
    assert holding.average_entry_price == Decimal("0.4")
    assert holding.current_price == Decimal("0.51")
    assert holding.market_title == "Will it rain?"
    assert holding.outcome == "Yes"
    assert holding.redeemable is False


async def test_market_slug_lookup_and_its_failure(
    exchange: LocalExchange, skill: PolymarketSkill, market: MarketIds
) -> None:
    assert (
        await skill.lookup_market_slug(market.condition_id) == f"market-{market.condition_id[2:10]}"
    )

    exchange.fail_next("/gamma/markets", status=502)

    assert await skill.lookup_market_slug(market.condition_id) is None
    assert await skill.lookup_market_slug("0x" + "00" * 32) is None


async def test_prepare_caches_encrypted_credentials_reused_after_a_restart(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
) -> None:
    await skill.prepare(wallet.secret_id, market.yes)
    async with session_factory() as session:
        secret = await session.get(Secret, wallet.secret_id)
    assert secret is not None and secret.encrypted_api_credentials is not None
    assert wallet.private_key not in secret.encrypted_api_credentials
    credentials = json.loads(keybox.decrypt(secret.encrypted_api_credentials))
    assert set(credentials) == {"apiKey", "secret", "passphrase"}

    restarted = create_polymarket_skill(
        skill_settings(exchange, database_url), session_factory, keybox
    )
    try:
        exchange.credit(wallet.funder, token_id=market.yes, shares="5")
        result = await restarted.place_bet(
            BetRequest(
                secret_id=wallet.secret_id, token_id=market.yes, side="SELL", amount=Decimal(5)
            )
        )
    finally:
        await restarted.aclose()

    assert result.status is BetStatus.EXECUTED
    async with session_factory() as session:
        again = await session.get(Secret, wallet.secret_id)
    assert again is not None and again.encrypted_api_credentials is not None
    assert json.loads(keybox.decrypt(again.encrypted_api_credentials)) == credentials
