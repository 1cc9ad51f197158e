"""An order's fate is learnt, never guessed: ambiguous answers, delayed fills, settlement,
and a stale balance cache, each against the real local exchange (issue 13, §1 and §1b)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.skill.conftest import MarketIds, Wallet, shares_of
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.errors import (
    InsufficientBalance,
    NoLiquidity,
    OrderNotPlaced,
    UnknownOutcome,
    is_retryable,
)
from vincent.skills.polymarket.execution import FOLLOWED, FOUND_BY_ID
from vincent.skills.polymarket.settlement import trades_named_at_placement
from vincent.skills.polymarket.types import (
    AttemptOutcome,
    BetRequest,
    BetResult,
    BetStatus,
    SettlementState,
)


async def rows(session_factory: SessionFactory) -> list[TransactionLog]:
    async with session_factory() as session:
        statement = sa.select(TransactionLog).order_by(TransactionLog.created_at)
        return list((await session.scalars(statement)).all())


def sell(wallet: Wallet, token_id: str, shares: str, **extra: object) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id,
        token_id=token_id,
        side="SELL",
        amount=Decimal(shares),
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425])
async def test_an_order_matched_but_answered_with_an_error_is_found_and_sold_once(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
    status: int,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="100")
    exchange.fail_after_next("/order", status=status)

    result = await skill.place_bet(sell(wallet, market.yes, "40", idempotency_key="k"))

    assert result.status is BetStatus.EXECUTED
    assert result.filled_shares == Decimal(40)
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(60)
    assert [r.order_id for r in exchange.order_receipts()] == [result.order_id]
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.response_data is not None and row.response_data["resolvedBy"] == FOUND_BY_ID
    # Asked again with the same key: the same answer, nothing sent.
    again = await skill.place_bet(sell(wallet, market.yes, "40", idempotency_key="k"))
    assert again.order_id == result.order_id
    assert len(exchange.order_receipts()) == 1


async def test_an_unreadable_answer_to_a_matched_order_is_found_and_sold_once(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="100")
    exchange.garble_next("/order")

    result = await skill.place_bet(sell(wallet, market.yes, "40"))

    assert (result.status, result.filled_shares) == (BetStatus.EXECUTED, Decimal(40))
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(60)
    assert len(exchange.order_receipts()) == 1


async def test_a_delayed_order_is_followed_to_its_fill(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.defer_next_orders(answer="delayed", delay_s=0.3)

    result = await skill.place_bet(sell(wallet, market.yes, "10"))

    # Executed means filled: the answer said "delayed" with nothing matched yet.
    assert (result.status, result.filled_shares) == (BetStatus.EXECUTED, Decimal(10))
    assert shares_of(exchange, wallet.funder, market.yes) == 0
    [row] = await rows(session_factory)
    assert row.response_data is not None
    assert (row.response_data["status"], row.response_data["resolvedBy"]) == ("matched", FOLLOWED)


async def test_a_fok_answered_live_then_killed_is_no_liquidity(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.defer_next_orders(answer="live", delay_s=0.2)

    with pytest.raises(NoLiquidity):
        # Nothing bids 0.60 or more: matched later, the FOK is killed.
        await skill.place_bet(sell(wallet, market.yes, "10", worst_price=Decimal("0.60")))

    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(10)
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.FAILED
    assert row.response_data is not None and row.response_data["errorCode"] == NoLiquidity.code


async def test_a_delayed_partial_fill_records_what_filled(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="150")
    exchange.defer_next_orders(answer="delayed", delay_s=0.2)

    # FAK down to 0.50: only the 100 bid at 0.50 is taken.
    result = await skill.place_bet(
        sell(wallet, market.yes, "150", order_type="FAK", worst_price=Decimal("0.50"))
    )

    assert (result.status, result.filled_shares) == (BetStatus.EXECUTED, Decimal(100))
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(50)


async def test_a_sell_refused_by_a_stale_balance_cache_refreshes_it_and_sells_once(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.stale_balance_cache(wallet.funder)

    result = await skill.place_bet(sell(wallet, market.yes, "10"))

    assert (result.status, result.filled_shares) == (BetStatus.EXECUTED, Decimal(10))
    assert shares_of(exchange, wallet.funder, market.yes) == 0
    assert exchange.status()["stale_balance_caches"] == []
    # The refused order and its one retry: never a loop.
    assert len(exchange.order_receipts()) == 2


async def test_a_sell_beyond_the_free_balance_sells_what_is_really_held(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="100")
    resting = await skill.place_bet(sell(wallet, market.yes, "30", price=Decimal("0.95")))
    assert resting.status is BetStatus.EXECUTED  # 30 shares now held by a resting order

    # The positions say 100; the exchange lets 70 be sold.
    result = await skill.place_bet(sell(wallet, market.yes, "100", shares_held=Decimal(100)))

    assert (result.status, result.filled_shares) == (BetStatus.EXECUTED, Decimal(70))
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(30)
    row = (await rows(session_factory))[-1]
    assert row.request_data["amount"] == "70.00"


async def test_a_sell_of_shares_truly_lacking_fails_after_one_refresh(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    await skill.place_bet(sell(wallet, market.yes, "10", price=Decimal("0.95")))
    receipts_before = len(exchange.order_receipts())

    with pytest.raises(InsufficientBalance):
        await skill.place_bet(sell(wallet, market.yes, "10", shares_held=Decimal(10)))

    assert len(exchange.order_receipts()) == receipts_before + 1  # refused once, no retry


async def _sell_whose_settlement_fails(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    **extra: object,
) -> BetResult:
    """A 10-share sell that matches, and whose trade fails on chain 0.2 s later."""
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.set_settlement_delay(0.2)
    exchange.fail_settlement_next()
    return await skill.place_bet(sell(wallet, market.yes, "10", **extra))


async def test_a_failed_settlement_is_recorded_on_the_audit_row(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    result = await _sell_whose_settlement_fails(
        exchange, skill, wallet, market, idempotency_key="s-1"
    )
    assert result.status is BetStatus.EXECUTED

    settling = await skill.follow_settlement(result.transaction_log_id)
    assert settling.state is SettlementState.SETTLING
    await exchange.wait_for_settlement(timeout_s=5.0)
    failed = await skill.follow_settlement(result.transaction_log_id)

    assert failed.state is SettlementState.FAILED
    assert failed.failed_shares == Decimal(10)
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(10)  # back in the wallet
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.FAILED
    assert row.response_data is not None
    assert row.response_data["errorCode"] == "SETTLEMENT_FAILED"
    assert row.response_data["settlement"]["tradeStatuses"] == ["FAILED"]
    resolution = await skill.resolve_attempt("s-1")
    assert resolution.outcome is AttemptOutcome.SETTLEMENT_FAILED
    assert resolution.order_id == result.order_id


async def test_a_fok_settlement_follows_the_trades_its_answer_named_without_reading_the_order(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    result = await _sell_whose_settlement_fails(exchange, skill, wallet, market)
    assert result.status is BetStatus.EXECUTED and result.order_id is not None
    # The order cannot be read: a FOK's trades are all named in its POST answer.
    exchange.fail_next(f"/data/order/{result.order_id}", count=10, status=500, method="GET")

    settling = await skill.follow_settlement(result.transaction_log_id)
    assert settling.state is SettlementState.SETTLING
    await exchange.wait_for_settlement(timeout_s=5.0)
    failed = await skill.follow_settlement(result.transaction_log_id)

    assert failed.state is SettlementState.FAILED
    assert failed.failed_shares == Decimal(10)
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.FAILED
    assert row.response_data is not None
    assert row.response_data["settlement"]["tradeStatuses"] == ["FAILED"]


async def test_a_confirmed_settlement_is_noted_on_the_audit_row(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    result = await skill.place_bet(sell(wallet, market.yes, "10"))

    settled = await skill.follow_settlement(result.transaction_log_id)

    assert settled.state is SettlementState.CONFIRMED
    assert settled.confirmed_shares == Decimal(10)
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.EXECUTED
    assert row.response_data is not None
    assert row.response_data["settlement"]["state"] == "confirmed"


async def test_the_row_a_bet_wrote_is_followed_without_reading_it_back(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    result = await _sell_whose_settlement_fails(exchange, skill, wallet, market)
    recorded = result.recorded
    assert recorded is not None
    # What the bet hands on is what it stored.
    [row] = await rows(session_factory)
    assert (recorded.secret_id, recorded.order_id) == (row.secret_id, row.order_id)
    assert recorded.trade_ids == trades_named_at_placement(row) != ()
    assert recorded.response_data == row.response_data

    read: list[str] = []

    def on_statement(_conn: object, _cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "transaction_logs" in statement:
            read.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    try:
        settling = await skill.follow_settlement(result.transaction_log_id, recorded)
        await exchange.wait_for_settlement(timeout_s=5.0)
        failed = await skill.follow_settlement(result.transaction_log_id, recorded)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_statement)

    assert read == []
    assert settling.state is SettlementState.SETTLING
    assert failed.state is SettlementState.FAILED
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.FAILED
    assert row.response_data == {
        **recorded.response_data,
        "settlement": row.response_data["settlement"],
        "errorCode": "SETTLEMENT_FAILED",
        "error": row.error_message,
        "retryable": False,
    }
    assert row.response_data["settlement"]["tradeStatuses"] == ["FAILED"]


async def test_an_order_never_placed_and_refused_again_is_known_dead(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.fail_next("/order", count=2, status=502, method="POST")  # before the matcher
    request = sell(wallet, market.yes, "10", price=Decimal("0.45"), idempotency_key="d-1")
    with pytest.raises(UnknownOutcome):
        await skill.place_bet(request)
    # Meanwhile the market moved to a coarser tick: the stored order can never be placed.
    exchange.set_tick_size(market.yes, "0.1")

    resolution = await skill.resolve_attempt("d-1")

    assert resolution.outcome is AttemptOutcome.FAILED
    assert isinstance(resolution.failure, OrderNotPlaced)
    assert is_retryable(resolution.failure)  # a rule signs a new order on its next attempt
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.FAILED
    assert row.response_data is not None and row.response_data["retryable"] is True
    assert shares_of(exchange, wallet.funder, market.yes) == Decimal(10)
