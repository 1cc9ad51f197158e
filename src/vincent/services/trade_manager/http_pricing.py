"""Price tokens from REST books when their WebSocket price is stale. No I/O.

A REST book goes through the same ``OrderBooks`` code as the feed, so an HTTP price and a
WebSocket price of the same book are the same number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from vincent.services.trade_manager.market_messages import BookEvent, LastTradePriceEvent
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.sell_planning import SellQuoter
from vincent.skills.polymarket.types import OrderBook


def quoter_for(books: OrderBooks) -> Callable[[str], SellQuoter]:
    """Token → a function pricing a market sell of some shares against ``books``."""

    def for_token(token_id: str) -> SellQuoter:
        return lambda shares: books.sell_quote(token_id, shares)

    return for_token


def books_from_http(book: OrderBook) -> OrderBooks:
    """An ``OrderBooks`` holding one REST book."""
    books = OrderBooks()
    books.track([book.token_id])
    books.apply(
        BookEvent(
            asset_id=book.token_id,
            market=book.market,
            bids=tuple((str(level.price), str(level.size)) for level in book.bids),
            asks=tuple((str(level.price), str(level.size)) for level in book.asks),
            timestamp_ms="0",
            hash="",
        ),
        0.0,
    )
    if book.last_trade_price is not None and 0 < book.last_trade_price <= 1:
        books.apply(
            LastTradePriceEvent(
                asset_id=book.token_id,
                market=book.market,
                price=str(book.last_trade_price),
                side="BUY",
                size="0",
                timestamp_ms="0",
            ),
            0.0,
        )
    return books


def stale_tokens(
    tokens: Iterable[str],
    books: OrderBooks | None,
    tracked_since_s: Mapping[str, float],
    *,
    now_s: float,
    stale_after_s: float,
) -> list[str]:
    """Tokens whose feed price is older than ``stale_after_s`` (all of them without a feed).

    A token that never had a price counts from when it was first watched, so a fresh
    subscription gets a chance to deliver its snapshot first.
    """
    if books is None:
        return sorted(tokens)
    stale = []
    for token_id in tokens:
        age_s = books.age_s(token_id, now_s)
        if age_s is None:
            age_s = now_s - tracked_since_s.get(token_id, now_s)
        if age_s >= stale_after_s:
            stale.append(token_id)
    return sorted(stale)
