"""The order path's shortcuts keep their guarantees: the order is stored with its row
before it can be posted and never signed twice, and a deleted secret is refused at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.skill.conftest import MarketIds, Wallet, shares_of, skill_settings
from vincent.crypto import KeyBox
from vincent.db.base import utcnow
from vincent.db.models import Secret, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TransactionStatus
from vincent.errors import SecretNotFound
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill
from vincent.skills.polymarket.errors import InvalidOrder, is_retryable
from vincent.skills.polymarket.types import AttemptOutcome, BetRequest, BetStatus


async def audit_rows(session_factory: SessionFactory) -> list[TransactionLog]:
    async with session_factory() as session:
        return list((await session.scalars(sa.select(TransactionLog))).all())


def sell(wallet: Wallet, token_id: str, shares: str, key: str | None = None) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id,
        token_id=token_id,
        side="SELL",
        amount=Decimal(shares),
        idempotency_key=key,
    )


@pytest.fixture
async def patient_skill(
    exchange: LocalExchange, database_url: str, session_factory: SessionFactory, keybox: KeyBox
) -> AsyncIterator[PolymarketSkill]:
    """A skill that waits long for an answer: only a crash (a cancel) ends its post."""
    built = create_polymarket_skill(
        skill_settings(exchange, database_url, timeout_s=60.0), session_factory, keybox
    )
    yield built
    await built.aclose()


async def test_a_crash_between_storing_and_posting_reposts_the_same_signed_order(
    exchange: LocalExchange,
    patient_skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.hang_next("/order", method="POST")  # the post never reaches the book
    placing = asyncio.create_task(patient_skill.place_bet(sell(wallet, market.yes, "10", "k-1")))
    async with asyncio.timeout(10):
        # The hang is taken when the post arrives: the signed order was committed before.
        while any(exchange.status()["faults"].values()):  # noqa: ASYNC110 (no event for it)
            await asyncio.sleep(0.01)
    placing.cancel()  # the process dies here: nothing more is written
    with pytest.raises(asyncio.CancelledError):
        await placing
    exchange.clear_faults()
    [stored] = await audit_rows(session_factory)
    assert stored.status is TransactionStatus.PENDING
    assert stored.signed_order is not None and stored.order_id is not None
    assert exchange.order_receipts() == ()

    resolution = await patient_skill.resolve_attempt("k-1")

    assert resolution.outcome is AttemptOutcome.EXECUTED
    assert resolution.result is not None and resolution.result.order_id == stored.order_id
    [receipt] = exchange.order_receipts()
    assert receipt.order_id == stored.order_id
    [row] = await audit_rows(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.signed_order == stored.signed_order
    assert shares_of(exchange, wallet.funder, market.yes) == 0


async def test_a_bet_writes_its_row_once_with_the_order_it_posts(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")

    result = await skill.place_bet(sell(wallet, market.yes, "10", "k-2"))

    assert result.status is BetStatus.EXECUTED
    [receipt] = exchange.order_receipts()
    [row] = await audit_rows(session_factory)
    assert row.order_id == receipt.order_id == result.order_id
    assert row.signed_order is not None
    assert result.filled_shares == Decimal(10) and result.filled_usd == Decimal(5)
    # The result is built from what was recorded, without reading the row back.
    assert (await skill.resolve_attempt("k-2")).result == result


async def test_an_order_that_cannot_be_signed_is_audited_failed_and_never_posted(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, collateral="10")

    with pytest.raises(InvalidOrder) as caught:
        # 0.004 USD buys no whole cent of a share at 0.5.
        await skill.place_bet(
            BetRequest(
                secret_id=wallet.secret_id,
                token_id=market.yes,
                side="BUY",
                amount=Decimal("0.004"),
                price=Decimal("0.5"),
                idempotency_key="k-3",
            )
        )

    [row] = await audit_rows(session_factory)
    assert row.status is TransactionStatus.FAILED
    assert row.signed_order is None and row.order_id is None
    assert row.response_data == {
        "errorCode": caught.value.code,
        "error": caught.value.message,
        "retryable": is_retryable(caught.value),
    }
    assert exchange.order_receipts() == ()


async def test_a_secret_deleted_after_its_wallet_was_read_is_refused(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    assert [h.token_id for h in await skill.get_holdings(wallet.secret_id)] == [market.yes]
    async with session_factory() as session, session.begin():
        secret = await session.get(Secret, wallet.secret_id)
        assert secret is not None
        secret.deleted_at = utcnow()

    with pytest.raises(SecretNotFound):
        await skill.get_holdings(wallet.secret_id)
    with pytest.raises(SecretNotFound):
        await skill.wallet_address(wallet.secret_id)
    with pytest.raises(SecretNotFound):
        await skill.place_bet(sell(wallet, market.yes, "10", "k-4"))

    assert await audit_rows(session_factory) == []
    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, market.yes) == 10
