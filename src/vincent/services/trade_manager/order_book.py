"""Keep each tracked token's book from market events: top of book, depth, last trade. No I/O.

Best bid is the highest bid and best ask the lowest ask, whatever order the levels arrive in.
Prices and sizes are ``Decimal``. Events for tokens that are not tracked are ignored, so an
unsubscribed token's late messages never grow memory. Wire values that cannot be prices raise
``MalformedMarketData`` (from ``book_levels``) before anything is changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from vincent.services.trade_manager.book_levels import (
    LEVEL_PRICES,
    POSITIVE_SIZES,
    MalformedMarketData,
    depth,
    read_best,
    read_decimal,
    read_level_price,
    read_side,
    read_size,
    read_tick_size,
    update_level,
)
from vincent.services.trade_manager.market_messages import (
    BUY,
    BestBidAskEvent,
    BookEvent,
    LastTradePriceEvent,
    MarketEvent,
    MarketResolvedEvent,
    PriceChange,
    PriceChangeEvent,
    TickSizeChangeEvent,
)

__all__ = ["MalformedMarketData", "OrderBooks", "SellQuote", "TopOfBook"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_NO_CHANGE: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """A snapshot of one token. ``ts_updated_s`` is the monotonic time of the last event."""

    token_id: str
    best_bid: Decimal | None
    best_ask: Decimal | None
    last_trade: Decimal | None
    tick_size: Decimal | None
    resolved: bool
    ts_updated_s: float | None


@dataclass(frozen=True, slots=True)
class SellQuote:
    """What a market sell of ``shares_requested`` would do against the bids in hand."""

    shares_requested: Decimal
    shares_filled: Decimal
    proceeds: Decimal
    # The lowest bid the sell reaches; None when there are no bids.
    worst_price: Decimal | None

    @property
    def complete(self) -> bool:
        return self.shares_filled >= self.shares_requested


class _TokenBook:
    __slots__ = (
        "asks",
        "best_ask",
        "best_bid",
        "bids",
        "last_trade",
        "resolved",
        "tick_size",
        "ts_updated_s",
    )

    def __init__(self) -> None:
        # Depth as sent (price text -> size text), converted only when someone asks for it:
        # hashing Decimal keys would cost more than the rest of a snapshot together.
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.best_bid: Decimal | None = None
        self.best_ask: Decimal | None = None
        self.last_trade: Decimal | None = None
        self.tick_size: Decimal | None = None
        self.resolved = False
        self.ts_updated_s: float | None = None

    def prices(self) -> tuple[Decimal | None, Decimal | None, Decimal | None, bool]:
        return (self.best_bid, self.best_ask, self.last_trade, self.resolved)


# One level change read and checked: its book, the change, (depth key, price), whether its
# size is positive, and the exchange's best bid and best ask after it.
_Update = tuple[_TokenBook, PriceChange, tuple[str, Decimal], bool, Decimal | None, Decimal | None]


class OrderBooks:
    """The books of the tracked tokens, updated by ``apply``."""

    __slots__ = ("_books", "_resolutions")

    def __init__(self) -> None:
        self._books: dict[str, _TokenBook] = {}
        # Tracked tokens whose market resolved: the event, for the winner (issue 15).
        self._resolutions: dict[str, MarketResolvedEvent] = {}

    def track(self, token_ids: Iterable[str]) -> None:
        """Start keeping books for these tokens (an already tracked token keeps its book)."""
        for token_id in token_ids:
            if token_id not in self._books:
                self._books[token_id] = _TokenBook()

    def untrack(self, token_ids: Iterable[str]) -> None:
        """Forget these tokens' books."""
        for token_id in token_ids:
            self._books.pop(token_id, None)
            self._resolutions.pop(token_id, None)

    def tracked(self) -> frozenset[str]:
        return frozenset(self._books)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._books

    def __len__(self) -> int:
        return len(self._books)

    def apply(self, event: MarketEvent, now_s: float) -> tuple[str, ...]:
        """Apply one event at monotonic time ``now_s``.

        Return the tokens whose best bid, best ask, last trade or resolved flag changed.
        Raise ``MalformedMarketData`` (changing nothing) when a value is not usable.
        """
        # The most frequent first: a custom feed follows each price change by its top.
        if type(event) is PriceChangeEvent:
            return self._apply_price_change(event, now_s)
        if type(event) is BestBidAskEvent:
            return self._apply_best_bid_ask(event, now_s)
        if type(event) is BookEvent:
            return self._apply_book(event, now_s)
        if type(event) is LastTradePriceEvent:
            return self._apply_last_trade(event, now_s)
        if type(event) is TickSizeChangeEvent:
            book = self._books.get(event.asset_id)
            if book is not None:
                book.tick_size = read_tick_size(event.new_tick_size)
                book.ts_updated_s = now_s
            return _NO_CHANGE
        if type(event) is MarketResolvedEvent:
            return self._apply_resolved(event, now_s)
        raise TypeError(f"not a market event: {type(event).__name__}")

    def top(self, token_id: str) -> TopOfBook | None:
        """Return the token's top of book, or None when it is not tracked."""
        book = self._books.get(token_id)
        if book is None:
            return None
        return TopOfBook(
            token_id=token_id,
            best_bid=book.best_bid,
            best_ask=book.best_ask,
            last_trade=book.last_trade,
            tick_size=book.tick_size,
            resolved=book.resolved,
            ts_updated_s=book.ts_updated_s,
        )

    def prices(self, token_id: str) -> tuple[Decimal | None, Decimal | None, Decimal | None] | None:
        """Return the token's (best bid, best ask, last trade), or None when not tracked.

        ``top`` without building a snapshot: the feed's callback reads this per event.
        """
        book = self._books.get(token_id)
        if book is None:
            return None
        return (book.best_bid, book.best_ask, book.last_trade)

    def age_s(self, token_id: str, now_s: float) -> float | None:
        """Seconds since the token's last event, or None when nothing has arrived yet."""
        book = self._books.get(token_id)
        if book is None or book.ts_updated_s is None:
            return None
        return now_s - book.ts_updated_s

    def bids(self, token_id: str) -> tuple[tuple[Decimal, Decimal], ...]:
        """Return the token's bids as (price, size), best (highest) first."""
        book = self._books.get(token_id)
        if book is None:
            return ()
        return depth(book.bids, best_first_highest=True)

    def asks(self, token_id: str) -> tuple[tuple[Decimal, Decimal], ...]:
        """Return the token's asks as (price, size), best (lowest) first."""
        book = self._books.get(token_id)
        if book is None:
            return ()
        return depth(book.asks, best_first_highest=False)

    def sell_quote(self, token_id: str, shares: Decimal) -> SellQuote | None:
        """Walk the bids, best first, for a market sell of ``shares``; None if not tracked.

        Only levels at or below the best bid count, so a stale level never inflates the quote.
        """
        book = self._books.get(token_id)
        if book is None:
            return None
        remaining = shares
        proceeds = _ZERO
        worst: Decimal | None = None
        best_bid = book.best_bid
        for price, size in depth(book.bids, best_first_highest=True):
            if remaining <= 0 or best_bid is None:
                break
            if price > best_bid:
                # Above the exchange's own best bid: a level our depth failed to drop.
                # Walking it would promise proceeds (and a worst price) the book can't pay.
                continue
            taken = min(size, remaining)
            proceeds += taken * price
            remaining -= taken
            worst = price
        return SellQuote(
            shares_requested=shares,
            shares_filled=shares - max(remaining, _ZERO),
            proceeds=proceeds,
            worst_price=worst,
        )

    def _apply_book(self, event: BookEvent, now_s: float) -> tuple[str, ...]:
        book = self._books.get(event.asset_id)
        if book is None:
            return _NO_CHANGE
        bids, best_bid = read_side(event.bids, highest=True)
        asks, best_ask = read_side(event.asks, highest=False)
        before = book.prices()
        book.bids = bids
        book.asks = asks
        book.best_bid = best_bid
        book.best_ask = best_ask
        book.ts_updated_s = now_s
        return (event.asset_id,) if book.prices() != before else _NO_CHANGE

    def _apply_price_change(self, event: PriceChangeEvent, now_s: float) -> tuple[str, ...]:
        # Read every value first so a bad one leaves every book untouched. A side whose best
        # the exchange sent needs no best of ours: its level only goes into the depth.
        books = self._books
        # Texts already read are looked up inline (a miss reads, checks and remembers).
        level_prices = LEVEL_PRICES
        positive_sizes = POSITIVE_SIZES
        updates: list[_Update] = []
        # The changes of one event carry the same top of book (the exchange sends it after
        # the whole change): read each distinct text once.
        bid_text: str | None = None
        ask_text: str | None = None
        exchange_bid: Decimal | None = None
        exchange_ask: Decimal | None = None
        # Each change's fields by unpacking, not by name: a ``NamedTuple`` field read by
        # name is a generic attribute lookup, and this loop runs per level change.
        for change in event[1]:  # event.changes
            asset_id, price_text, size, _, best_bid_text, best_ask_text = change
            book = books.get(asset_id)
            if book is None:
                continue
            if best_bid_text != bid_text:
                bid_text = best_bid_text
                exchange_bid = None if bid_text is None else read_best(bid_text)
            if best_ask_text != ask_text:
                ask_text = best_ask_text
                exchange_ask = None if ask_text is None else read_best(ask_text)
            level = level_prices.get(price_text)
            if level is None:
                level = read_level_price(price_text)
            positive = positive_sizes.get(size)
            if positive is None:
                positive = read_size(size)
            updates.append((book, change, level, positive, exchange_bid, exchange_ask))
        changed: list[str] = []
        for book, change, (key, price), positive, exchange_bid, exchange_ask in updates:
            asset_id, _, size, side, best_bid_text, best_ask_text = change
            best_bid = book.best_bid
            best_ask = book.best_ask
            if side == BUY:
                if best_bid_text is None:
                    book.best_bid = update_level(
                        book.bids, best_bid, key, price, size, positive, higher=True
                    )
                elif positive:  # set_level, inline (the exchange sent the side's best)
                    book.bids[key] = size
                else:
                    book.bids.pop(key, None)
            elif best_ask_text is None:
                book.best_ask = update_level(
                    book.asks, best_ask, key, price, size, positive, higher=False
                )
            elif positive:
                book.asks[key] = size
            else:
                book.asks.pop(key, None)
            # The exchange's own top of book after the change wins over our depth (an empty
            # side, sent as 0 or 1, reads as None).
            if best_bid_text is not None:
                book.best_bid = exchange_bid
            if best_ask_text is not None:
                book.best_ask = exchange_ask
            book.ts_updated_s = now_s
            # Bests read from one text are one object (``read_best`` remembers them): the
            # identity test spares most ``Decimal`` comparisons (and decides none of them:
            # the same object is equal to itself).
            new_bid = book.best_bid
            new_ask = book.best_ask
            if (
                (new_bid is not best_bid and new_bid != best_bid)
                or (new_ask is not best_ask and new_ask != best_ask)
            ) and asset_id not in changed:
                changed.append(asset_id)
        return tuple(changed)

    def _apply_last_trade(self, event: LastTradePriceEvent, now_s: float) -> tuple[str, ...]:
        book = self._books.get(event.asset_id)
        if book is None:
            return _NO_CHANGE
        price = read_decimal(event.price)
        if not _ZERO < price <= _ONE:
            raise MalformedMarketData(f"last trade price must be in (0, 1], was {event.price}")
        book.ts_updated_s = now_s
        if price == book.last_trade:
            return _NO_CHANGE
        book.last_trade = price
        return (event.asset_id,)

    def _apply_best_bid_ask(self, event: BestBidAskEvent, now_s: float) -> tuple[str, ...]:
        asset_id, _, bid_text, ask_text, _ = event
        book = self._books.get(asset_id)
        if book is None:
            return _NO_CHANGE
        best_bid = None if bid_text is None else read_best(bid_text)
        best_ask = None if ask_text is None else read_best(ask_text)
        # Only the two sides can change here: compare them, not the whole top of book (the
        # same object first: a text read before gives the object remembered for it).
        old_bid = book.best_bid
        old_ask = book.best_ask
        unchanged = (best_bid is old_bid or best_bid == old_bid) and (
            best_ask is old_ask or best_ask == old_ask
        )
        book.best_bid = best_bid
        book.best_ask = best_ask
        book.ts_updated_s = now_s
        return _NO_CHANGE if unchanged else (asset_id,)

    def resolutions(self) -> Mapping[str, MarketResolvedEvent]:
        """The ``market_resolved`` events of tracked tokens, by token (a live view, almost
        always empty: the feed's callback checks it once per event, not once per token)."""
        return self._resolutions

    def resolution(self, token_id: str) -> MarketResolvedEvent | None:
        """The ``market_resolved`` event of a tracked token's market; None while it trades."""
        return self._resolutions.get(token_id) if self._resolutions else None

    def _apply_resolved(self, event: MarketResolvedEvent, now_s: float) -> tuple[str, ...]:
        changed: list[str] = []
        for asset_id in event.assets_ids:
            book = self._books.get(asset_id)
            if book is None:
                continue
            self._resolutions[asset_id] = event
            book.ts_updated_s = now_s
            if not book.resolved:
                book.resolved = True
                changed.append(asset_id)
        return tuple(changed)
