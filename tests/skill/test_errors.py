"""Failures come out as the right typed errors, each audited once with its final status."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.skill.conftest import MarketIds, Wallet, shares_of
from vincent.audit.transaction_log import create_log
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import ExecutionMode, TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.actions import request_data
from vincent.skills.polymarket.errors import (
    ExchangeTimeout,
    InsufficientBalance,
    MarketClosed,
    NoLiquidity,
    NoPosition,
    OrderVersionMismatch,
    RateLimited,
    UnknownOutcome,
    is_retryable,
)
from vincent.skills.polymarket.execution import REPOSTED_SAME
from vincent.skills.polymarket.orders import OrderSpec
from vincent.skills.polymarket.types import (
    AttemptOutcome,
    AttemptResolution,
    BetRequest,
    BetStatus,
)


async def only_row(session_factory: SessionFactory) -> TransactionLog:
    async with session_factory() as session:
        [row] = (await session.scalars(sa.select(TransactionLog))).all()
    return row


def sell(wallet: Wallet, token_id: str, shares: str, **extra: object) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id,
        token_id=token_id,
        side="SELL",
        amount=Decimal(shares),
        **extra,  # type: ignore[arg-type]
    )


async def test_a_rate_limited_post_is_a_transient_refusal(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.rate_limit_next("/order", retry_after_s=7, method="POST")

    with pytest.raises(RateLimited) as caught:
        await skill.place_bet(sell(wallet, market.yes, "10"))

    assert is_retryable(caught.value)
    assert caught.value.retry_after_s == 7
    assert shares_of(exchange, wallet.funder, market.yes) == 10
    row = await only_row(session_factory)
    # Without an idempotency key nobody retries this row: it is final.
    assert row.status is TransactionStatus.FAILED


async def test_a_5xx_the_matcher_never_saw_reposts_the_same_order_once(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    # A 503 says nothing about the matcher: not found by id after the settle window, the
    # same signed order is posted again (never a new one) and fills once.
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.fail_next("/order", status=503, method="POST")

    result = await skill.place_bet(sell(wallet, market.yes, "10"))

    assert result.status is BetStatus.EXECUTED
    assert [r.order_id for r in exchange.order_receipts()] == [result.order_id]
    assert shares_of(exchange, wallet.funder, market.yes) == 0
    row = await only_row(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.response_data is not None
    assert row.response_data["resolvedBy"] == REPOSTED_SAME


async def test_transient_failure_with_key_is_retried_with_the_same_signed_order(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.rate_limit_next("/order", method="POST")
    request = sell(wallet, market.yes, "10", idempotency_key="rule-1-attempt-1")

    with pytest.raises(RateLimited):
        await skill.place_bet(request)
    first = await only_row(session_factory)
    assert first.status is TransactionStatus.FAILED
    assert first.response_data is not None and first.response_data["retryable"] is True
    # Asked later, the skill answers with the typed error, not the row's JSON.
    resolution = await skill.resolve_attempt("rule-1-attempt-1")
    assert resolution.outcome is AttemptOutcome.FAILED
    assert isinstance(resolution.failure, RateLimited) and is_retryable(resolution.failure)

    result = await skill.place_bet(request)

    assert result.status is BetStatus.EXECUTED
    row = await only_row(session_factory)
    assert row.id == first.id
    assert row.order_id == first.order_id == result.order_id
    assert row.signed_order == first.signed_order
    assert shares_of(exchange, wallet.funder, market.yes) == 0


@pytest.mark.parametrize("mode", ["close", "hang"])
async def test_accepted_order_whose_answer_never_arrived_is_found_and_recorded_once(
    exchange: LocalExchange,
    impatient_skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
    mode: str,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.withhold_next("/order", mode=mode)  # type: ignore[arg-type]

    result = await impatient_skill.place_bet(sell(wallet, market.yes, "10", idempotency_key="k-1"))

    assert result.status is BetStatus.EXECUTED
    assert result.filled_shares == Decimal(10)
    assert shares_of(exchange, wallet.funder, market.yes) == 0
    row = await only_row(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.order_id == result.order_id
    resolution = await impatient_skill.resolve_attempt("k-1")
    assert resolution.outcome is AttemptOutcome.EXECUTED
    assert resolution.result is not None and resolution.result.order_id == result.order_id


async def test_unknown_outcome_is_resolved_later_by_reposting_the_same_order(
    exchange: LocalExchange,
    impatient_skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    # The post's answer is lost, the order is not found by id, and the re-post of the same
    # signed order is lost too: the outcome stays open.
    exchange.hang_next("/order", count=2, method="POST")

    with pytest.raises(UnknownOutcome) as caught:
        await impatient_skill.place_bet(sell(wallet, market.yes, "10", idempotency_key="k-2"))

    row = await only_row(session_factory)
    assert caught.value.transaction_log_id == row.id
    assert row.status is TransactionStatus.UNKNOWN
    assert shares_of(exchange, wallet.funder, market.yes) == 10
    exchange.clear_faults()

    resolution = await impatient_skill.resolve_attempt("k-2")

    assert resolution.outcome is AttemptOutcome.EXECUTED
    assert resolution.result is not None
    assert resolution.result.order_id == row.order_id
    assert shares_of(exchange, wallet.funder, market.yes) == 0
    assert (await only_row(session_factory)).status is TransactionStatus.EXECUTED


async def test_insufficient_balance_is_permanent(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, collateral="1")

    with pytest.raises(InsufficientBalance) as caught:
        await skill.place_bet(
            BetRequest(
                secret_id=wallet.secret_id, token_id=market.yes, side="BUY", amount=Decimal(20)
            )
        )

    assert not is_retryable(caught.value)
    assert (await only_row(session_factory)).status is TransactionStatus.FAILED


async def test_fok_without_enough_liquidity_is_no_liquidity(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="1000")

    with pytest.raises(NoLiquidity):
        await skill.place_bet(sell(wallet, market.yes, "1000", idempotency_key="fok-1"))

    assert shares_of(exchange, wallet.funder, market.yes) == 1000
    assert (await only_row(session_factory)).status is TransactionStatus.FAILED
    resolution = await skill.resolve_attempt("fok-1")
    assert resolution.outcome is AttemptOutcome.FAILED
    assert isinstance(resolution.failure, NoLiquidity)


async def test_closed_market_is_market_closed(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.resolve(market.condition_id, market.yes)

    with pytest.raises(MarketClosed) as caught:
        await skill.place_bet(sell(wallet, market.yes, "10", worst_price=Decimal("0.40")))

    assert not is_retryable(caught.value)
    assert (await only_row(session_factory)).status is TransactionStatus.FAILED


async def test_selling_what_is_not_held_is_no_position(
    skill: PolymarketSkill, session_factory: SessionFactory, wallet: Wallet, market: MarketIds
) -> None:
    with pytest.raises(NoPosition):
        await skill.place_bet(sell(wallet, market.yes, "10"))

    assert (await only_row(session_factory)).status is TransactionStatus.FAILED


async def test_sell_is_rounded_down_and_capped_at_what_is_held(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="12.349")

    result = await skill.place_bet(sell(wallet, market.yes, "50.999"))

    assert result.filled_shares == Decimal("12.34")
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal("0.009")


async def test_read_that_never_answers_is_a_timeout(
    exchange: LocalExchange, impatient_skill: PolymarketSkill, market: MarketIds
) -> None:
    exchange.hang_next("/book", count=3)

    with pytest.raises(ExchangeTimeout) as caught:
        await impatient_skill.get_order_book(market.yes)

    assert is_retryable(caught.value)


async def test_reads_are_retried_past_one_5xx(
    exchange: LocalExchange, skill: PolymarketSkill, market: MarketIds
) -> None:
    exchange.fail_next("/midpoint", status=500)

    assert await skill.get_midpoint(market.yes) == Decimal("0.51")


async def test_version_mismatch_is_retried_once_then_refused_for_good(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
) -> None:
    # A protocol-v2 position id: the SDK signs it for Exchange V3.
    condition_id = "0x" + "cd" * 32
    v3_yes = str((1 << 248) | (0xBEEF << 120) | 1)
    v3_no = str((1 << 248) | (0xBEEF << 120) | 2)
    exchange.create_market(condition_id, [v3_yes, v3_no])
    exchange.set_book(v3_yes, bids=[("0.50", "100")], asks=[("0.52", "100")])
    exchange.credit(wallet.funder, token_id=v3_yes, shares="20")

    with pytest.raises(OrderVersionMismatch):
        await skill.place_bet(sell(wallet, v3_yes, "10"))
    assert (await only_row(session_factory)).status is TransactionStatus.FAILED

    exchange.set_version(3)
    result = await skill.place_bet(sell(wallet, v3_yes, "10"))

    assert result.status is BetStatus.EXECUTED
    assert shares_of(exchange, wallet.funder, v3_yes) == 10


async def test_concurrent_calls_with_one_idempotency_key_make_one_order(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="30")
    request = sell(wallet, market.yes, "10", idempotency_key="rule-7-attempt-1")

    results = await asyncio.gather(*(skill.place_bet(request) for _ in range(3)))

    assert {r.status for r in results} == {BetStatus.EXECUTED}
    assert len({r.order_id for r in results}) == 1
    assert shares_of(exchange, wallet.funder, market.yes) == 20
    row = await only_row(session_factory)
    assert row.status is TransactionStatus.EXECUTED


async def test_an_action_that_crashed_before_signing_is_not_sent_and_can_be_retried(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    # What a crash right after the audit row was written leaves behind.
    async with session_factory() as session, session.begin():
        create_log(
            session,
            secret_id=wallet.secret_id,
            request_data=request_data(
                OrderSpec(market.yes, "SELL", Decimal(10), None, "FOK"),
                requested_amount=Decimal(10),
                usd_value=None,
                condition_id=market.condition_id,
                neg_risk=False,
                rule_id=None,
            ),
            status=TransactionStatus.PENDING,
            usd_value=None,
            execution_mode=ExecutionMode.LIVE,
            idempotency_key="crashed-1",
        )

    resolution = await skill.resolve_attempt("crashed-1")

    assert resolution.outcome is AttemptOutcome.NOT_SENT
    assert (await only_row(session_factory)).status is TransactionStatus.FAILED
    assert shares_of(exchange, wallet.funder, market.yes) == 10

    result = await skill.place_bet(sell(wallet, market.yes, "10", idempotency_key="crashed-1"))

    assert result.status is BetStatus.EXECUTED
    assert (await only_row(session_factory)).status is TransactionStatus.EXECUTED
    assert shares_of(exchange, wallet.funder, market.yes) == 0


def test_a_failed_resolution_without_its_typed_failure_is_refused() -> None:
    # Callers decide retry, no liquidity or failed from the failure's class alone.
    with pytest.raises(ValueError, match="needs its failure"):
        AttemptResolution(AttemptOutcome.FAILED, message="refused")
