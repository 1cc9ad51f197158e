"""Each policy type allows, denies or asks for approval; spending counts executed and
in-flight actions, never denied or failed ones."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.skill.conftest import MarketIds, Wallet, collateral_of, set_policy
from vincent.db.models import PendingApproval, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType, TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.errors import RateLimited
from vincent.skills.polymarket.types import BetRequest, BetStatus


def buy(wallet: Wallet, token_id: str, usd: str) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id, token_id=token_id, side="BUY", amount=Decimal(usd)
    )


async def rows(session_factory: SessionFactory) -> list[TransactionLog]:
    async with session_factory() as session:
        return list(
            (
                await session.scalars(sa.select(TransactionLog).order_by(TransactionLog.created_at))
            ).all()
        )


@pytest.fixture
def funded(exchange: LocalExchange, wallet: Wallet) -> Wallet:
    exchange.credit(wallet.funder, collateral="1000")
    return wallet


async def test_no_policies_allows(
    skill: PolymarketSkill, funded: Wallet, market: MarketIds, session_factory: SessionFactory
) -> None:
    result = await skill.place_bet(buy(funded, market.yes, "10"))

    assert result.status is BetStatus.EXECUTED
    assert [r.status for r in await rows(session_factory)] == [TransactionStatus.EXECUTED]


@pytest.mark.parametrize(
    ("usd", "status"), [("10", BetStatus.EXECUTED), ("10.01", BetStatus.DENIED)]
)
async def test_per_transaction_limit(
    skill: PolymarketSkill,
    funded: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    usd: str,
    status: BetStatus,
) -> None:
    await set_policy(
        session_factory, funded.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 10}
    )

    result = await skill.place_bet(buy(funded, market.yes, usd))

    assert result.status is status
    if status is BetStatus.DENIED:
        assert result.reason == "Transaction value $10.01 exceeds per-tx limit of $10.00"
        [row] = await rows(session_factory)
        assert row.status is TransactionStatus.DENIED


async def test_sell_is_valued_at_what_the_book_pays(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="150")
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 70}
    )

    result = await skill.place_bet(
        BetRequest(
            secret_id=wallet.secret_id, token_id=market.yes, side="SELL", amount=Decimal(150)
        )
    )

    # 100 at 0.50 plus 50 at 0.48 = $74, not 150 at a placeholder 0.5.
    assert result.status is BetStatus.DENIED
    assert result.reason == "Transaction value $74.00 exceeds per-tx limit of $70.00"


async def test_sell_without_bids_is_denied_under_a_spending_limit(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.set_book(market.yes, bids=[], asks=[("0.60", "10")])
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 70}
    )

    result = await skill.place_bet(
        BetRequest(secret_id=wallet.secret_id, token_id=market.yes, side="SELL", amount=Decimal(10))
    )

    assert result.status is BetStatus.DENIED
    assert result.reason == "Unable to determine USD value of transaction"


@pytest.mark.parametrize(
    ("policy_type", "window"),
    [(PolicyType.SPENDING_LIMIT_DAILY, "daily"), (PolicyType.SPENDING_LIMIT_WEEKLY, "weekly")],
)
async def test_spending_windows_skip_denied_and_failed_actions(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    funded: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    policy_type: PolicyType,
    window: str,
) -> None:
    await set_policy(session_factory, funded.secret_id, policy_type, {"maxUsd": 25})
    # A denied action and a failed one spend nothing.
    await set_policy(
        session_factory, funded.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 100}
    )
    assert (await skill.place_bet(buy(funded, market.yes, "30"))).status is BetStatus.DENIED
    exchange.rate_limit_next("/order", method="POST")
    with pytest.raises(RateLimited):
        await skill.place_bet(buy(funded, market.yes, "10"))

    first = await skill.place_bet(buy(funded, market.yes, "20"))
    second = await skill.place_bet(buy(funded, market.yes, "10"))

    assert first.status is BetStatus.EXECUTED
    assert second.status is BetStatus.DENIED
    assert second.reason == (
        f"Adding $10.00 would exceed {window} limit of $25.00 (already spent $20.00)"
    )
    # Only the $20 BUY moved money (the exchange may leave sub-cent dust unspent).
    assert Decimal(980) <= collateral_of(exchange, funded.funder) < Decimal("980.01")


async def test_market_allowlist(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    funded: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    await set_policy(
        session_factory,
        funded.secret_id,
        PolicyType.MARKET_ALLOWLIST,
        {"markets": [market.condition_id]},
    )
    other = MarketIds("0x" + "ab" * 32, str(7 << 200), str(9 << 200))
    exchange.create_market(other.condition_id, [other.yes, other.no])
    exchange.set_book(other.yes, bids=[("0.4", "100")], asks=[("0.6", "100")])

    allowed = await skill.place_bet(buy(funded, market.yes, "5"))
    denied = await skill.place_bet(buy(funded, other.yes, "5"))

    assert allowed.status is BetStatus.EXECUTED
    assert denied.status is BetStatus.DENIED
    assert denied.reason == f"Market {other.condition_id} is not in the allowlist"


async def test_require_approval_creates_a_pending_approval(
    skill: PolymarketSkill, funded: Wallet, market: MarketIds, session_factory: SessionFactory
) -> None:
    await set_policy(
        session_factory, funded.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
    )

    result = await skill.place_bet(
        BetRequest(
            secret_id=funded.secret_id,
            token_id=market.yes,
            side="BUY",
            amount=Decimal(5),
            rule_id="rule-123",
        )
    )

    assert result.status is BetStatus.PENDING_APPROVAL
    assert result.reason == "All transactions require human approval"
    async with session_factory() as session:
        [approval] = (await session.scalars(sa.select(PendingApproval))).all()
    assert approval.id == result.pending_approval_id
    assert approval.transaction_log_id == result.transaction_log_id
    assert approval.rule_id == "rule-123"
    assert 29 * 60 < (approval.expires_at - approval.created_at).total_seconds() <= 30 * 60
    [row] = await rows(session_factory)
    assert row.status is TransactionStatus.PENDING_APPROVAL


@pytest.mark.parametrize(
    ("usd", "status"), [("25", BetStatus.EXECUTED), ("25.5", BetStatus.PENDING_APPROVAL)]
)
async def test_approval_threshold(
    skill: PolymarketSkill,
    funded: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    usd: str,
    status: BetStatus,
) -> None:
    await set_policy(
        session_factory, funded.secret_id, PolicyType.APPROVAL_THRESHOLD, {"thresholdUsd": 25}
    )

    result = await skill.place_bet(buy(funded, market.yes, usd))

    assert result.status is status
    if status is BetStatus.PENDING_APPROVAL:
        assert result.reason == "Transaction value $25.50 exceeds approval threshold of $25.00"


async def test_unknown_value_under_a_threshold_asks_for_approval(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    exchange.set_book(market.yes, bids=[], asks=[])
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.APPROVAL_THRESHOLD, {"thresholdUsd": 25}
    )

    result = await skill.place_bet(
        BetRequest(secret_id=wallet.secret_id, token_id=market.yes, side="SELL", amount=Decimal(10))
    )

    assert result.status is BetStatus.PENDING_APPROVAL
    assert result.reason == "Unable to determine USD value; requiring approval as a precaution"


async def test_approval_override_turns_a_denial_into_an_approval_request(
    skill: PolymarketSkill, funded: Wallet, market: MarketIds, session_factory: SessionFactory
) -> None:
    await set_policy(
        session_factory,
        funded.secret_id,
        PolicyType.SPENDING_LIMIT_PER_TX,
        {"maxUsd": 5, "approvalOverride": True},
    )

    result = await skill.place_bet(buy(funded, market.yes, "6"))

    assert result.status is BetStatus.PENDING_APPROVAL
    assert (
        result.reason == "Transaction value $6.00 exceeds per-tx limit of $5.00 (requires approval)"
    )
