"""Matching an incoming order against a book: plan the fills, then apply them.

Pure, no I/O. Planning never mutates, so FOK can be decided before anything moves.
Fills execute at the resting price (price improvement goes to the taker).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from vincent.sim.book import OrderBook


@dataclass(frozen=True, slots=True)
class Fill:
    """One match: ``size`` base units of shares at ``price`` against a resting entry."""

    price: Decimal
    size: int
    order_id: str
    owner: str | None

    @property
    def collateral(self) -> int:
        # Round the collateral down: the exchange never pays out more than it takes in.
        return int((self.price * self.size).to_integral_value(rounding=ROUND_DOWN))


def plan(
    book: OrderBook,
    taker_side: str,
    limit: Decimal,
    shares: int | None,
    budget: int | None,
    taker: str,
) -> list[Fill]:
    """Fills for a taker order. SELL/limit BUY give ``shares``; market BUY gives ``budget``.

    A SELL takes bids priced at or above ``limit``; a BUY takes asks at or below it.
    The taker's own resting orders are skipped (no self-trade).
    """
    opposite = book.asks if taker_side == "BUY" else book.bids
    fills: list[Fill] = []
    left_shares = shares
    left_budget = budget
    for price in opposite.best_first():
        if (taker_side == "BUY" and price > limit) or (taker_side == "SELL" and price < limit):
            break
        for entry in opposite.levels[price]:
            if entry.remaining <= 0 or entry.owner == taker:
                continue
            size = entry.remaining
            if left_shares is not None:
                size = min(size, left_shares)
            if left_budget is not None:
                affordable = int((Decimal(left_budget) / price).to_integral_value(ROUND_DOWN))
                size = min(size, affordable)
            if size <= 0:
                break
            fill = Fill(price, size, entry.order_id, entry.owner)
            fills.append(fill)
            if left_shares is not None:
                left_shares -= size
            if left_budget is not None:
                left_budget -= fill.collateral
            if left_shares == 0 or (left_budget is not None and left_budget <= 0):
                return fills
    return fills


def apply(book: OrderBook, taker_side: str, fills: list[Fill]) -> set[Decimal]:
    """Consume the planned fills from the book; return the prices whose level changed."""
    opposite = book.asks if taker_side == "BUY" else book.bids
    touched: set[Decimal] = set()
    for fill in fills:
        left = fill.size
        for entry in list(opposite.levels.get(fill.price, ())):
            if left <= 0:
                break
            if entry.order_id != fill.order_id or entry.owner != fill.owner:
                continue
            used = min(entry.remaining, left)
            opposite.reduce(fill.price, entry, used)
            left -= used
            if entry.order_id and entry.remaining <= 0:
                book.orders.pop(entry.order_id, None)
        touched.add(fill.price)
    return touched
