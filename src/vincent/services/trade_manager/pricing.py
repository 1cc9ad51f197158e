"""Derive the price a rule watches from a token's top of book. No I/O."""

from __future__ import annotations

from decimal import Decimal

from vincent.enums import TriggerSource
from vincent.services.trade_manager.order_book import TopOfBook

_TWO = Decimal(2)


def rule_price(top: TopOfBook, source: TriggerSource) -> Decimal | None:
    """Return the price for ``source``, or None when the book cannot give one.

    MIDPOINT needs both sides (a one-sided or empty book gives None), BEST_BID is what a
    market sell would get first, LAST_TRADE is the last traded price.
    """
    return source_price(source, top.best_bid, top.best_ask, top.last_trade)


def source_price(
    source: TriggerSource,
    best_bid: Decimal | None,
    best_ask: Decimal | None,
    last_trade: Decimal | None,
) -> Decimal | None:
    """``rule_price`` from the book's three prices, without a ``TopOfBook`` (hot path)."""
    if source is TriggerSource.MIDPOINT:
        if best_bid is None or best_ask is None:
            return None
        return (best_bid + best_ask) / _TWO
    if source is TriggerSource.BEST_BID:
        return best_bid
    if source is TriggerSource.LAST_TRADE:
        return last_trade
    raise ValueError(f"unknown trigger source {source!r}")
