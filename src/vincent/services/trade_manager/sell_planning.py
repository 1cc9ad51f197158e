"""Decide what a fired rule sells, from the live holdings and the book in hand. No I/O.

Returns a ``SellPlan`` or the message the rule fails with (the seed's wording). Market SELL
sizes carry at most 2 decimals on the exchange; sizes are rounded DOWN so the order never
asks for more than the position holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

from vincent.services.trade_manager.order_book import SellQuote
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.skills.polymarket.types import Holding
from vincent.wire_time import iso_millis

# A stop sells up to 5% below the book it saw (see ``slippage_floor``).
SELL_SLIPPAGE = Decimal("0.05")
PRICE_STEP = Decimal("0.01")
SHARE_STEP = Decimal("0.01")

# Shares → what a market sell of that size would do against the bids we hold.
SellQuoter = Callable[[Decimal], SellQuote | None]


@dataclass(frozen=True, slots=True)
class SellPlan:
    shares: Decimal
    # The lowest acceptable price, from the book in hand; None lets the skill read the book.
    worst_price: Decimal | None
    # The position just read; handed to the skill so it does not read it again.
    held: Decimal | None = None


def parse_end_date(text: str | None) -> datetime | None:
    """The Data API's ``endDate`` ("2026-03-01" or ISO-8601) as UTC, or None if unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def plan_sell(
    rule: RuleSnapshot,
    holdings: Sequence[Holding],
    *,
    now: datetime,
    quote: SellQuoter | None = None,
) -> SellPlan | str:
    """Return what to sell for ``rule``, or why it cannot be sold (a permanent failure)."""
    token = rule.token_id
    action = rule.action.type.value
    holding = next((h for h in holdings if h.token_id == token and h.shares > 0), None)
    if holding is not None and holding.redeemable:
        return f"Market is resolved and redeemable - cannot execute trades for tokenId {token}"
    end = parse_end_date(holding.end_date) if holding is not None else None
    if end is not None and end < now:
        return f"Market has ended ({iso_millis(end)}) - cannot execute trades for tokenId {token}"
    if holding is None:
        return f"Cannot execute {action}: No shares found for tokenId {token}"
    shares = sell_size(rule.action, holding.shares)
    if shares is None:
        return (
            f"Cannot execute {action}: {holding.shares} shares held for tokenId {token} "
            "round down to nothing sellable"
        )
    worst_price = None
    sell_quote = quote(shares) if quote is not None else None
    if sell_quote is not None and sell_quote.complete and sell_quote.worst_price is not None:
        worst_price = slippage_floor(sell_quote.worst_price)
    return SellPlan(shares=shares, worst_price=worst_price, held=holding.shares)


def slippage_floor(walked_price: Decimal) -> Decimal | None:
    """The lowest price the sell accepts: ``SELL_SLIPPAGE`` below the walked price.

    Fills happen at the resting bids, best first, so a lower bound never makes a fill worse
    where the book still holds; it only keeps a fast fall between the trigger and the order
    from killing a FOK stop. Rounded down to 0.01, which lies on every tick grid below 0.1.
    None (no bound) when that leaves nothing above zero.
    """
    floor = (walked_price * (1 - SELL_SLIPPAGE)).quantize(PRICE_STEP, rounding=ROUND_DOWN)
    return floor if floor > 0 else None


def sell_shares(shares_held: Decimal, requested: Decimal | None = None) -> Decimal:
    """Return ``min(requested, held)`` (all held when ``requested`` is None), rounded down.

    The result is a multiple of 0.01, never above ``shares_held``, and 0 when nothing can be
    sold (the caller fails the rule then).
    """
    wanted = shares_held if requested is None else min(requested, shares_held)
    if not wanted > 0:
        return Decimal(0)
    # Down, never up: selling more than is held would be refused, or sell shares not ours.
    return wanted.quantize(SHARE_STEP, rounding=ROUND_DOWN)


def sell_size(action: RuleAction, shares_held: Decimal) -> Decimal | None:
    """Return the shares ``action`` sells out of ``shares_held``, or None when nothing.

    SELL_ALL sells every held share, SELL_PARTIAL ``min(amount, held)``; both rounded down to
    0.01 share. Raise ``ValueError`` for a SELL_PARTIAL without a positive amount.
    """
    requested = None
    if action.type is ActionType.SELL_PARTIAL:
        if action.amount is None or not action.amount > 0:
            raise ValueError(f"SELL_PARTIAL amount must be positive, was {action.amount}")
        requested = action.amount
    size = sell_shares(shares_held, requested)
    return size if size > 0 else None
