"""Walking an order book: what a market order would fill, level by level. Pure, no I/O.

Used to value a SELL for policies (what the book would pay) and to fill paper orders.
Rounding protects the user: a BUY never spends more than its budget, a SELL never sells
more than asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from vincent.skills.polymarket.types import BookLevel, Side

SHARE_STEP = Decimal("0.01")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fill:
    price: Decimal
    shares: Decimal

    @property
    def usd(self) -> Decimal:
        return self.price * self.shares


@dataclass(frozen=True, slots=True)
class Walk:
    """The fills a market order gets, best price first, and whether it was filled in full."""

    fills: tuple[Fill, ...]
    complete: bool

    @property
    def shares(self) -> Decimal:
        return sum((f.shares for f in self.fills), ZERO)

    @property
    def usd(self) -> Decimal:
        return sum((f.usd for f in self.fills), ZERO)

    @property
    def average_price(self) -> Decimal | None:
        shares = self.shares
        return self.usd / shares if shares > 0 else None


def round_shares_down(shares: Decimal) -> Decimal:
    """Shares to the 0.01 the exchange accepts for market orders, rounded toward the user."""
    return shares.quantize(SHARE_STEP, rounding=ROUND_DOWN)


def walk_book(
    levels: tuple[BookLevel, ...],
    side: Side,
    amount: Decimal,
    worst_price: Decimal | None = None,
) -> Walk:
    """Fill ``amount`` against ``levels`` (the opposite side, best first).

    SELL: ``amount`` is shares, walked down the bids while price >= ``worst_price``.
    BUY: ``amount`` is USD to spend, walked up the asks while price <= ``worst_price``;
    shares per level are rounded down to 0.01 so the spend never exceeds ``amount``.
    """
    remaining = amount
    fills: list[Fill] = []
    for level in levels:
        if remaining <= 0:
            break
        if worst_price is not None and (
            (side == "SELL" and level.price < worst_price)
            or (side == "BUY" and level.price > worst_price)
        ):
            break
        if side == "SELL":
            shares = min(level.size, remaining)
            remaining -= shares
        else:
            shares = round_shares_down(min(level.size, remaining / level.price))
            if shares <= 0:
                break
            remaining -= shares * level.price
        fills.append(Fill(level.price, shares))
    complete = remaining <= 0 if side == "SELL" else _budget_spent(remaining, fills)
    return Walk(tuple(fills), complete)


def _budget_spent(remaining: Decimal, fills: list[Fill]) -> bool:
    # A BUY is complete when what is left cannot buy one more 0.01 share at the last price
    # reached: rounding leaves dust, and dust is not a missing fill.
    if not fills:
        return False
    last_price = fills[-1].price
    return remaining < last_price * SHARE_STEP or remaining <= 0


def sell_value(bids: tuple[BookLevel, ...], shares: Decimal) -> Decimal | None:
    """USD a SELL of ``shares`` would get from ``bids``; None when there are no bids.

    Shares beyond the book's depth are valued at the last (worst) bid reached.
    """
    if not bids:
        return None
    walk = walk_book(bids, "SELL", shares)
    unfilled = shares - walk.shares
    return walk.usd + unfilled * bids[-1].price if unfilled > 0 else walk.usd
