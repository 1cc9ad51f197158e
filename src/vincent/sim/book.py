"""One token's order book: price levels with FIFO queues of resting entries.

Pure state, no I/O. Sizes are integer base units (1 share = 1_000_000); prices are
Decimal. Synthetic liquidity (set by the control API) rests with ``owner=None``.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

UNIT = 1_000_000
Level = tuple[Decimal | str | float, Decimal | str | float]
"""A (price, size) pair as callers give it."""
_UNIT_DECIMAL = Decimal(UNIT)


def units_text(units: int) -> str:
    """Base units as Polymarket's decimal string ("30", "12.5")."""
    value = (Decimal(units) / _UNIT_DECIMAL).normalize()
    return format(value, "f")


def to_units(value: Decimal | str | float) -> int:
    return int((Decimal(str(value)) * _UNIT_DECIMAL).to_integral_value())


@dataclass(slots=True)
class Entry:
    """A resting quantity: a user order (order_id, owner) or synthetic liquidity (owner None)."""

    order_id: str
    owner: str | None
    remaining: int


class Side:
    """One side of a book: prices kept sorted ascending, a FIFO queue per price."""

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[Decimal] = []
        self.levels: dict[Decimal, deque[Entry]] = {}

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def best_first(self) -> list[Decimal]:
        return list(reversed(self.prices)) if self.is_bid else list(self.prices)

    def size_at(self, price: Decimal) -> int:
        return sum(entry.remaining for entry in self.levels.get(price, ()))

    def append(self, price: Decimal, entry: Entry) -> None:
        queue = self.levels.get(price)
        if queue is None:
            queue = self.levels[price] = deque()
            bisect.insort(self.prices, price)
        queue.append(entry)

    def prune(self, price: Decimal) -> None:
        queue = self.levels.get(price)
        if queue is None:
            return
        while queue and queue[0].remaining <= 0:
            queue.popleft()
        if any(entry.remaining <= 0 for entry in queue):
            self.levels[price] = deque(entry for entry in queue if entry.remaining > 0)
            queue = self.levels[price]
        if not queue:
            del self.levels[price]
            self.prices.remove(price)

    def wire(self) -> list[dict[str, str]]:
        """Levels in production order: bids lowest first, asks highest first (best last)."""
        order = self.prices if self.is_bid else list(reversed(self.prices))
        return [{"price": str(p), "size": units_text(self.size_at(p))} for p in order]


class OrderBook:
    """Both sides of one token's book plus an index of resting user orders."""

    def __init__(self) -> None:
        self.bids = Side(is_bid=True)
        self.asks = Side(is_bid=False)
        self.orders: dict[str, tuple[Side, Decimal, Entry]] = {}

    def side(self, book_side: str) -> Side:
        return self.bids if book_side == "BUY" else self.asks

    def best_bid(self) -> Decimal | None:
        return self.bids.best()

    def best_ask(self) -> Decimal | None:
        return self.asks.best()

    def rest(self, book_side: str, price: Decimal, order_id: str, owner: str, size: int) -> None:
        side = self.side(book_side)
        entry = Entry(order_id, owner, size)
        side.append(price, entry)
        self.orders[order_id] = (side, price, entry)

    def remove(self, order_id: str) -> tuple[str, Decimal] | None:
        """Take a user order off the book; return (book side, price) it rested at."""
        found = self.orders.pop(order_id, None)
        if found is None:
            return None
        side, price, entry = found
        entry.remaining = 0
        side.prune(price)
        return ("BUY" if side.is_bid else "SELL"), price

    def set_synthetic(self, book_side: str, price: Decimal, size: int) -> None:
        """Set the synthetic (market-maker) quantity at one level; user orders stay."""
        side = self.side(book_side)
        queue = side.levels.get(price)
        if queue is not None:
            for entry in queue:
                if entry.owner is None:
                    entry.remaining = 0
            side.prune(price)
        if size > 0:
            side.append(price, Entry("", None, size))

    def clear_synthetic(self) -> list[tuple[str, Decimal]]:
        """Remove every synthetic entry; return the levels touched."""
        touched: list[tuple[str, Decimal]] = []
        for name, side in (("BUY", self.bids), ("SELL", self.asks)):
            for price in list(side.prices):
                if any(entry.owner is None for entry in side.levels[price]):
                    touched.append((name, price))
                    self.set_synthetic(name, price, 0)
        return touched
