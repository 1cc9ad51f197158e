"""The exchange's pure parts: wallet derivation agrees with the SDK; matching keeps its rules."""

from __future__ import annotations

from decimal import Decimal

from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.wallet import (
    derive_beacon_deposit_wallet_address,
    derive_proxy_wallet_address,
    derive_safe_wallet_address,
    derive_uups_deposit_wallet_address,
)

from vincent.sim import matching, wallets
from vincent.sim.book import UNIT, OrderBook

TICK = Decimal("0.01")
prices = st.integers(min_value=1, max_value=99).map(lambda ticks: ticks * TICK)
sizes = st.integers(min_value=1, max_value=500).map(lambda shares: shares * UNIT)
levels = st.lists(st.tuples(prices, sizes), max_size=12)


def test_wallet_derivation_matches_the_sdk() -> None:
    config = PRODUCTION_CONFIG.wallet_derivation
    for _ in range(5):
        signer = Account.create().address
        assert wallets.proxy_wallet(signer) == derive_proxy_wallet_address(signer, config)
        assert wallets.safe_wallet(signer) == derive_safe_wallet_address(signer, config)
        assert wallets.deposit_wallets(signer) == (
            derive_beacon_deposit_wallet_address(signer, config),
            derive_uups_deposit_wallet_address(signer, config),
        )


@given(bids=levels, limit=prices, shares=sizes)
def test_a_sell_never_overfills_and_never_trades_below_its_limit(
    bids: list[tuple[Decimal, int]], limit: Decimal, shares: int
) -> None:
    book = OrderBook()
    for index, (price, size) in enumerate(bids):
        book.rest("BUY", price, f"o{index}", "0xmaker", size)
    available = sum(size for price, size in bids if price >= limit)
    fills = matching.plan(book, "SELL", limit, shares=shares, budget=None, taker="0xtaker")
    assert sum(f.size for f in fills) == min(shares, available)
    assert all(f.price >= limit for f in fills)
    assert [f.price for f in fills] == sorted((f.price for f in fills), reverse=True)

    before = {p: book.bids.size_at(p) for p in book.bids.prices}
    matching.apply(book, "SELL", fills)
    taken: dict[Decimal, int] = {}
    for fill in fills:
        taken[fill.price] = taken.get(fill.price, 0) + fill.size
    for price, size in before.items():
        assert book.bids.size_at(price) == size - taken.get(price, 0)
        assert book.bids.size_at(price) == sum(e.remaining for e in book.bids.levels.get(price, ()))


@given(asks=levels, limit=prices, budget=st.integers(min_value=1, max_value=10**9))
def test_a_market_buy_never_spends_more_than_its_budget(
    asks: list[tuple[Decimal, int]], limit: Decimal, budget: int
) -> None:
    book = OrderBook()
    book.replace_synthetic({}, dict(asks))
    fills = matching.plan(book, "BUY", limit, shares=None, budget=budget, taker="0xtaker")
    assert sum(f.collateral for f in fills) <= budget
    assert all(f.price <= limit for f in fills)
