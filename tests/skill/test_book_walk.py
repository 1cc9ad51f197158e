"""Paper fills walk the book: properties over random books (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.skills.polymarket.book_walk import round_shares_down, sell_value, walk_book
from vincent.skills.polymarket.types import BookLevel

prices = st.integers(min_value=1, max_value=99).map(lambda cents: Decimal(cents) / 100)
sizes = st.integers(min_value=1, max_value=100_000).map(
    lambda hundredths: Decimal(hundredths) / 100
)


@st.composite
def books(draw: st.DrawFn, side: str) -> tuple[BookLevel, ...]:
    distinct = draw(st.lists(prices, min_size=0, max_size=8, unique=True))
    levels = [BookLevel(p, draw(sizes)) for p in distinct]
    # Best first: highest bid / lowest ask.
    levels.sort(key=lambda level: level.price, reverse=side == "SELL")
    return tuple(levels)


def naive_sell(levels: tuple[BookLevel, ...], shares: Decimal, floor: Decimal | None) -> Decimal:
    """Reference: take each level in turn; the value of what sold."""
    usd, left = Decimal(0), shares
    for level in levels:
        if floor is not None and level.price < floor:
            break
        take = min(left, level.size)
        usd += take * level.price
        left -= take
    return usd


@settings(max_examples=300, deadline=None)
@given(books("SELL"), sizes, st.none() | prices)
def test_sell_walk_matches_a_naive_walk_and_never_oversells(
    bids: tuple[BookLevel, ...], shares: Decimal, floor: Decimal | None
) -> None:
    walk = walk_book(bids, "SELL", shares, floor)

    assert walk.shares <= shares
    assert walk.usd == naive_sell(bids, shares, floor)
    assert all(floor is None or f.price >= floor for f in walk.fills)
    # Best prices first, each level at most once, never above its size.
    assert [f.price for f in walk.fills] == sorted((f.price for f in walk.fills), reverse=True)
    by_price = {level.price: level.size for level in bids}
    assert all(f.shares <= by_price[f.price] for f in walk.fills)
    depth = sum((lv.size for lv in bids if floor is None or lv.price >= floor), Decimal(0))
    assert walk.complete == (depth >= shares)
    assert walk.shares == min(shares, depth)


@settings(max_examples=300, deadline=None)
@given(books("BUY"), st.integers(min_value=1, max_value=100_000).map(Decimal), st.none() | prices)
def test_buy_walk_never_overspends_and_respects_the_cap(
    asks: tuple[BookLevel, ...], budget: Decimal, cap: Decimal | None
) -> None:
    walk = walk_book(asks, "BUY", budget, cap)

    assert walk.usd <= budget
    assert all(cap is None or f.price <= cap for f in walk.fills)
    assert [f.price for f in walk.fills] == sorted(f.price for f in walk.fills)
    assert all(f.shares == round_shares_down(f.shares) and f.shares > 0 for f in walk.fills)
    if walk.average_price is not None:
        assert walk.fills[0].price <= walk.average_price <= walk.fills[-1].price


@settings(max_examples=200, deadline=None)
@given(books("SELL"), sizes)
def test_sell_value_is_between_worst_and_best_bid(
    bids: tuple[BookLevel, ...], shares: Decimal
) -> None:
    value = sell_value(bids, shares)

    if not bids:
        assert value is None
    else:
        assert value is not None
        assert bids[-1].price * shares <= value <= bids[0].price * shares
