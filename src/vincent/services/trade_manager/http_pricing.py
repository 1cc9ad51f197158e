"""Price tokens from REST books when their WebSocket price is stale. No I/O.

A REST book goes through the same ``OrderBooks`` code as the feed, so an HTTP price and a
WebSocket price of the same book are the same number. ``TokenBackoff`` spaces out the
requests for a token whose book keeps failing (one tenant's rule on a token the exchange
does not know must not cost a request, or a failed tick, every tick).
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


class TokenBackoff:
    """Per-token backoff after failed HTTP prices. Time (``now_s``, monotonic) is passed in.

    After the n-th failure in a row a token is not asked again for
    ``min(base_delay_s * 2 ** (n - 1), max_delay_s)``; a success forgets it. Only tokens
    still watched are kept, so memory is bounded by the rules.
    """

    __slots__ = ("_base_delay_s", "_failures", "_max_delay_s")

    def __init__(self, base_delay_s: float, max_delay_s: float) -> None:
        if not 0 <= base_delay_s <= max_delay_s:
            raise ValueError(
                f"token backoff needs 0 <= base_delay_s <= max_delay_s, was {base_delay_s} "
                f"and {max_delay_s}"
            )
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._failures: dict[str, tuple[int, float]] = {}  # token -> (failures, retry at)

    def __len__(self) -> int:
        return len(self._failures)

    def due(self, tokens: Iterable[str], now_s: float) -> list[str]:
        """The tokens of ``tokens`` that may be asked for at ``now_s`` (order kept)."""
        failures = self._failures
        return [t for t in tokens if t not in failures or failures[t][1] <= now_s]

    def failed(self, token_id: str, now_s: float) -> float:
        """Count a failure of ``token_id`` at ``now_s``; return the delay before the next."""
        count = self._failures.get(token_id, (0, 0.0))[0] + 1
        delay_s = min(self._base_delay_s * 2.0 ** min(count - 1, 62), self._max_delay_s)
        self._failures[token_id] = (count, now_s + delay_s)
        return delay_s

    def succeeded(self, token_id: str) -> None:
        self._failures.pop(token_id, None)

    def keep_only(self, watched: Iterable[str]) -> None:
        """Forget every token that is no longer watched."""
        keep = set(watched)
        for token_id in [t for t in self._failures if t not in keep]:
            del self._failures[token_id]
