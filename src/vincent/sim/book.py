"""One token's order book: price levels with FIFO queues of resting entries.

Pure state, no I/O. Sizes are integer base units (1 share = 1_000_000); prices are
Decimal. Synthetic liquidity (set by the control API) rests with ``owner=None``, one
entry per level. Every size change goes through ``Side`` so level totals stay exact.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

UNIT = 1_000_000
Level = tuple[Decimal | str | float, Decimal | str | float]
"""A (price, size) pair as callers give it."""
_UNIT_DECIMAL = Decimal(UNIT)


def units_text(units: int) -> str:
    """Base units as Polymarket's decimal string ("30", "12.5")."""
    if units % UNIT == 0:
        return str(units // UNIT)
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
    """One side of a book: prices sorted ascending, a FIFO queue and a total per price."""

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.name = "BUY" if is_bid else "SELL"
        self.prices: list[Decimal] = []
        self.levels: dict[Decimal, deque[Entry]] = {}
        self.totals: dict[Decimal, int] = {}
        self.synthetic: dict[Decimal, Entry] = {}

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def best_first(self) -> list[Decimal]:
        return self.prices[::-1] if self.is_bid else list(self.prices)

    def size_at(self, price: Decimal) -> int:
        return self.totals.get(price, 0)

    def append(self, price: Decimal, entry: Entry) -> None:
        queue = self.levels.get(price)
        if queue is None:
            queue = self.levels[price] = deque()
            self.totals[price] = 0
            bisect.insort(self.prices, price)
        queue.append(entry)
        self.totals[price] += entry.remaining

    def reduce(self, price: Decimal, entry: Entry, amount: int) -> None:
        """Take ``amount`` off a resting entry (a fill or a cancel)."""
        entry.remaining -= amount
        self.totals[price] -= amount
        if entry.remaining <= 0:
            self._drop_empty(price)

    def set_synthetic(self, price: Decimal, size: int) -> bool:
        """Set the synthetic quantity at one level; return whether it changed."""
        entry = self.synthetic.get(price)
        old = 0 if entry is None else entry.remaining
        if old == size:
            return False
        if entry is not None:
            del self.synthetic[price]
            self.reduce(price, entry, old)
        if size > 0:
            entry = Entry("", None, size)
            self.synthetic[price] = entry
            self.append(price, entry)
        return True

    def wire(self) -> list[dict[str, str]]:
        """Levels in production order: bids lowest first, asks highest first (best last)."""
        order = self.prices if self.is_bid else self.prices[::-1]
        return [{"price": str(p), "size": units_text(self.totals[p])} for p in order]

    def _drop_empty(self, price: Decimal) -> None:
        queue = self.levels[price]
        live = deque(entry for entry in queue if entry.remaining > 0)
        synthetic = self.synthetic.get(price)
        if synthetic is not None and synthetic.remaining <= 0:
            del self.synthetic[price]
        if live:
            self.levels[price] = live
            return
        del self.levels[price]
        del self.totals[price]
        self.prices.pop(bisect.bisect_left(self.prices, price))


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
        if entry.remaining > 0:
            side.reduce(price, entry, entry.remaining)
        return side.name, price

    def replace_synthetic(
        self, bids: Mapping[Decimal, int], asks: Mapping[Decimal, int]
    ) -> list[tuple[str, Decimal]]:
        """Make the synthetic liquidity exactly ``bids``/``asks``; return the changed levels."""
        changed: list[tuple[str, Decimal]] = []
        for side, wanted in ((self.bids, bids), (self.asks, asks)):
            for price in [p for p in side.synthetic if p not in wanted]:
                side.set_synthetic(price, 0)
                changed.append((side.name, price))
            for price, size in wanted.items():
                if side.set_synthetic(price, size):
                    changed.append((side.name, price))
        return changed
