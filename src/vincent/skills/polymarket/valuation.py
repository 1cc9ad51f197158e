"""The USD value of a skill action, as policies see it. Pure, no I/O.

A BUY is worth the collateral it spends; a limit SELL its shares at the limit price; a
market SELL what the current book would pay for those shares (None without bids).
"""

from __future__ import annotations

from decimal import Decimal

from vincent.skills.polymarket.book_walk import sell_value
from vincent.skills.polymarket.types import OrderBook, Side


def action_usd_value(
    side: Side, amount: Decimal, price: Decimal | None, book: OrderBook | None
) -> Decimal | None:
    """USD value of BUY ``amount`` USD / SELL ``amount`` shares; None when unknowable."""
    if side == "BUY":
        return amount
    if price is not None:
        return amount * price
    if book is None:
        return None
    return sell_value(book.bids, amount)
