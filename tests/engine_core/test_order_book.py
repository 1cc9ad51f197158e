"""The order books kept from market events: top of book, depth, last trade, resolution."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.engine_core.recorded import TOKEN_NO, TOKEN_YES, payload
from vincent.services.trade_manager.book_levels import (
    LEVEL_PRICES,
    POSITIVE_SIZES,
    level_key,
    read_level_price,
    read_size,
)
from vincent.services.trade_manager.market_messages import (
    BestBidAskEvent,
    BookEvent,
    MarketEvent,
    PriceChange,
    PriceChangeEvent,
    parse_frame,
)
from vincent.services.trade_manager.order_book import MalformedMarketData, OrderBooks


def _books(*frames: str, now_s: float = 1.0) -> OrderBooks:
    books = OrderBooks()
    books.track([TOKEN_YES, TOKEN_NO])
    for frame in frames:
        for event in parse_frame(frame).events:
            books.apply(event, now_s)
    return books


def _event(frame: str) -> MarketEvent:
    (event,) = parse_frame(frame).events
    return event


def test_best_prices_do_not_depend_on_level_order() -> None:
    books = _books(payload("book_array"))

    yes = books.top(TOKEN_YES)
    no = books.top(TOKEN_NO)
    assert yes is not None
    assert no is not None
    # Recorded order puts the best last; the other token's book lists it first.
    assert (yes.best_bid, yes.best_ask) == (Decimal("0.48"), Decimal("0.52"))
    assert (no.best_bid, no.best_ask) == (Decimal("0.47"), Decimal("0.52"))


def test_older_book_form_sets_the_top_of_book() -> None:
    top = _books(payload("book_buys_sells")).top(TOKEN_YES)

    assert top is not None
    assert (top.best_bid, top.best_ask) == (Decimal("0.34"), Decimal("0.36"))


def test_apply_reports_only_tokens_whose_prices_changed() -> None:
    books = _books()
    book = parse_frame(payload("book_array")).events[0]

    assert books.apply(book, 1.0) == (TOKEN_YES,)
    assert books.apply(book, 2.0) == ()
    assert books.age_s(TOKEN_YES, 5.0) == 3.0


def test_current_price_change_uses_the_exchange_top_of_book() -> None:
    books = _books(payload("book_array"))

    changed = books.apply(_event(payload("price_change_current")), 2.0)

    assert set(changed) == {TOKEN_YES, TOKEN_NO}
    yes = books.top(TOKEN_YES)
    no = books.top(TOKEN_NO)
    assert yes is not None
    assert no is not None
    assert (yes.best_bid, yes.best_ask) == (Decimal("0.5"), Decimal("0.52"))
    assert (no.best_bid, no.best_ask) == (Decimal("0.47"), Decimal("0.5"))
    assert books.bids(TOKEN_YES)[0] == (Decimal("0.5"), Decimal("200"))


def test_older_price_change_recomputes_the_best_when_it_is_removed() -> None:
    books = _books(payload("book_array"))

    changed = books.apply(_event(payload("price_change_older")), 2.0)

    top = books.top(TOKEN_YES)
    assert changed == (TOKEN_YES,)
    assert top is not None
    # 0.48 removed: the next bid is best; a new ask at 0.49 is better than 0.52.
    assert (top.best_bid, top.best_ask) == (Decimal("0.47"), Decimal("0.49"))


def test_last_trade_tick_size_best_bid_ask_and_resolution() -> None:
    books = _books(payload("book_array"))

    assert books.apply(_event(payload("last_trade_price")), 2.0) == (TOKEN_YES,)
    assert books.apply(_event(payload("tick_size_change")), 3.0) == ()
    assert books.apply(_event(payload("best_bid_ask")), 4.0) == (TOKEN_YES,)
    assert set(books.apply(_event(payload("market_resolved")), 5.0)) == {TOKEN_YES, TOKEN_NO}

    top = books.top(TOKEN_YES)
    assert top is not None
    assert top.last_trade == Decimal("0.456")
    assert top.tick_size == Decimal("0.001")
    assert (top.best_bid, top.best_ask) == (Decimal("0.73"), Decimal("0.77"))
    assert top.resolved
    assert top.ts_updated_s == 5.0


def test_events_for_untracked_tokens_are_ignored() -> None:
    books = OrderBooks()
    books.track([TOKEN_NO])

    books.apply(_event(payload("last_trade_price")), 1.0)
    books.untrack([TOKEN_NO])

    assert books.top(TOKEN_YES) is None
    assert len(books) == 0


@pytest.mark.parametrize(
    ("bids", "message"),
    [
        ((("abc", "1"),), "not a number"),
        ((("NaN", "1"),), "not a number"),
        ((("1.5", "1"),), "out of range"),
        ((("0.5", "-1"),), "out of range"),
        ((("0.5", "Infinity"),), "out of range"),
    ],
)
def test_unusable_levels_raise_and_leave_the_book_unchanged(
    bids: tuple[tuple[str, str], ...], message: str
) -> None:
    books = _books(payload("book_array"))
    before = books.top(TOKEN_YES)

    with pytest.raises(MalformedMarketData, match=message):
        books.apply(BookEvent(TOKEN_YES, "", bids, (), "", ""), 9.0)

    assert books.top(TOKEN_YES) == before


def test_an_unusable_change_leaves_every_book_of_the_event_unchanged() -> None:
    books = _books(payload("book_array"))
    event = PriceChangeEvent(
        "",
        (
            PriceChange(TOKEN_YES, "0.49", "10", "BUY", None, None),
            PriceChange(TOKEN_NO, "x", "10", "BUY", None, None),
        ),
        "",
    )

    with pytest.raises(MalformedMarketData):
        books.apply(event, 9.0)

    top = books.top(TOKEN_YES)
    assert top is not None
    assert top.best_bid == Decimal("0.48")


def test_sell_quote_walks_bids_best_first() -> None:
    books = _books(payload("book_array"))

    quote = books.sell_quote(TOKEN_YES, Decimal("100"))
    too_big = books.sell_quote(TOKEN_YES, Decimal("1000000"))

    assert quote is not None
    assert quote.complete
    # 30 @ 0.48 + 70 @ 0.47
    assert quote.proceeds == Decimal("14.40") + Decimal("32.90")
    assert quote.worst_price == Decimal("0.47")
    assert too_big is not None
    assert not too_big.complete
    assert too_big.worst_price == Decimal("0.001")


def test_one_price_written_two_ways_is_one_level() -> None:
    books = _books()
    books.apply(
        BookEvent(TOKEN_YES, "", (("0.50", "10"), ("0.4", "5")), (("0.60", "7"),), "", ""), 1.0
    )
    books.apply(
        PriceChangeEvent("", (PriceChange(TOKEN_YES, "0.5", "0", "BUY", None, None),), ""), 2.0
    )

    top = books.top(TOKEN_YES)
    assert top is not None
    assert top.best_bid == Decimal("0.4")
    assert books.bids(TOKEN_YES) == ((Decimal("0.4"), Decimal("5")),)


def test_sell_quote_skips_levels_above_the_exchange_best_bid() -> None:
    books = _books(payload("book_array"))
    # The exchange says the best bid is now 0.47, though our depth still holds 0.48.
    books.apply(
        PriceChangeEvent("", (PriceChange(TOKEN_YES, "0.46", "5", "BUY", "0.47", "0.52"),), ""), 2.0
    )

    quote = books.sell_quote(TOKEN_YES, Decimal("10"))

    assert quote is not None
    assert quote.proceeds == Decimal("4.70")
    assert quote.worst_price == Decimal("0.47")


prices = st.integers(min_value=1, max_value=99).map(lambda cents: f"0.{cents:02d}")
sizes = st.sampled_from(["0", "1", "25.5", "300"])
changes = st.lists(st.tuples(prices, sizes, st.sampled_from(["BUY", "SELL"])), max_size=40)


@settings(deadline=None)
@given(
    st.lists(st.tuples(prices, sizes.filter(lambda size: size != "0")), max_size=10),
    st.lists(st.tuples(prices, sizes.filter(lambda size: size != "0")), max_size=10),
    changes,
)
def test_best_prices_always_match_the_depth(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], updates: list[tuple[str, str, str]]
) -> None:
    books = OrderBooks()
    books.track([TOKEN_YES])
    books.apply(BookEvent(TOKEN_YES, "", tuple(bids), tuple(asks), "", ""), 0.0)
    for price, size, side in updates:
        change = PriceChange(TOKEN_YES, price, size, side, None, None)
        books.apply(PriceChangeEvent("", (change,), ""), 0.0)

        top = books.top(TOKEN_YES)
        assert top is not None
        depth_bids = books.bids(TOKEN_YES)
        depth_asks = books.asks(TOKEN_YES)
        assert top.best_bid == (max(p for p, _ in depth_bids) if depth_bids else None)
        assert top.best_ask == (min(p for p, _ in depth_asks) if depth_asks else None)


def _text(price: Decimal | None, empty: str) -> str:
    return empty if price is None else str(price)


@settings(deadline=None)
@given(
    st.lists(st.tuples(prices, sizes.filter(lambda size: size != "0")), max_size=10),
    st.lists(st.tuples(prices, sizes.filter(lambda size: size != "0")), max_size=10),
    changes,
)
def test_a_change_carrying_the_exchange_top_keeps_the_same_depth_and_top(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], updates: list[tuple[str, str, str]]
) -> None:
    older = OrderBooks()
    current = OrderBooks()
    for books in (older, current):
        books.track([TOKEN_YES])
        books.apply(BookEvent(TOKEN_YES, "", tuple(bids), tuple(asks), "", ""), 0.0)
    for price, size, side in updates:
        change = PriceChange(TOKEN_YES, price, size, side, None, None)
        reported = older.apply(PriceChangeEvent("", (change,), ""), 0.0)
        top = older.top(TOKEN_YES)
        assert top is not None
        # The exchange writes an empty side as 0 (bids) or 1 (asks).
        with_top = change._replace(
            best_bid=_text(top.best_bid, "0"), best_ask=_text(top.best_ask, "1")
        )

        assert current.apply(PriceChangeEvent("", (with_top,), ""), 0.0) == reported
        assert current.top(TOKEN_YES) == top
        assert current.bids(TOKEN_YES) == older.bids(TOKEN_YES)
        assert current.asks(TOKEN_YES) == older.asks(TOKEN_YES)


def test_each_change_of_one_event_gets_the_top_of_book_it_carries() -> None:
    books = _books(payload("book_array"))
    event = PriceChangeEvent(
        "",
        (
            PriceChange(TOKEN_YES, "0.47", "10", "BUY", "0.47", "0.52"),
            PriceChange(TOKEN_NO, "0.45", "10", "SELL", "0.40", "0.45"),
            PriceChange(TOKEN_YES, "0.53", "10", "SELL", "0.47", "0.52"),
        ),
        "",
    )

    assert books.apply(event, 2.0) == (TOKEN_YES, TOKEN_NO)

    assert books.prices(TOKEN_YES) == (Decimal("0.47"), Decimal("0.52"), None)
    assert books.prices(TOKEN_NO) == (Decimal("0.40"), Decimal("0.45"), None)


def test_an_unusable_top_of_book_in_a_later_change_leaves_every_book_unchanged() -> None:
    books = _books(payload("book_array"))
    before = (books.prices(TOKEN_YES), books.prices(TOKEN_NO))
    event = PriceChangeEvent(
        "",
        (
            PriceChange(TOKEN_YES, "0.47", "10", "BUY", "0.47", "0.52"),
            PriceChange(TOKEN_NO, "0.45", "10", "BUY", "x", "0.52"),
        ),
        "",
    )

    with pytest.raises(MalformedMarketData):
        books.apply(event, 2.0)

    assert (books.prices(TOKEN_YES), books.prices(TOKEN_NO)) == before


tops = st.sampled_from(["0.40", "0.4", "0.45", "0", "1", "0.55"]) | st.none()
# One level change's fields: token, price, size, side, the best bid and ask sent with it.
level_changes = st.tuples(
    st.sampled_from([TOKEN_YES, TOKEN_NO]),
    prices,
    sizes,
    st.sampled_from(["BUY", "SELL"]),
    tops,
    tops,
)


@settings(deadline=None)
@given(st.lists(level_changes, max_size=8))
def test_one_event_of_many_changes_leaves_the_books_its_changes_would_one_by_one(
    updates: list[tuple[str, str, str, str, str | None, str | None]],
) -> None:
    together = _books(payload("book_array"))
    apart = _books(payload("book_array"))
    changes = tuple(PriceChange(*update) for update in updates)

    reported = together.apply(PriceChangeEvent("", changes, ""), 2.0)
    reported_apart: list[str] = []
    for change in changes:
        for token_id in apart.apply(PriceChangeEvent("", (change,), ""), 2.0):
            if token_id not in reported_apart:
                reported_apart.append(token_id)

    for token_id in (TOKEN_YES, TOKEN_NO):
        assert together.prices(token_id) == apart.prices(token_id)
        assert together.bids(token_id) == apart.bids(token_id)
        assert together.asks(token_id) == apart.asks(token_id)
    # Each change is compared with the top just before it, as if it came alone.
    assert reported == tuple(reported_apart)


level_texts = (
    st.sampled_from(["0.5", "0.50", "0.500", "5E-1", "1", "0", "-0.1", "1.5", "NaN", "x", ""])
    | prices
    | sizes
)


@settings(deadline=None)
@given(st.lists(level_texts, max_size=6))
def test_a_remembered_level_text_reads_as_it_did_the_first_time(texts: list[str]) -> None:
    # Read twice, the second time from memory: the same key and value, or the same refusal.
    def read(reader: Callable[[str], object], text: str) -> object:
        try:
            return reader(text)
        except MalformedMarketData:
            return MalformedMarketData

    def fresh_price(text: str) -> object:
        try:
            value = Decimal(text)
        except ArithmeticError:
            return MalformedMarketData
        if not value.is_finite() or not Decimal(0) < value < Decimal(1):
            return MalformedMarketData
        return (level_key(text), value)

    def fresh_size(text: str) -> object:
        try:
            value = Decimal(text)
        except ArithmeticError:
            return MalformedMarketData
        if not value.is_finite() or value < 0:
            return MalformedMarketData
        return value > 0

    for _ in range(2):
        for text in texts:
            assert read(read_level_price, text) == fresh_price(text)
            assert read(read_size, text) == fresh_size(text)
    assert all(LEVEL_PRICES[text] == fresh_price(text) for text in LEVEL_PRICES)
    assert all(POSITIVE_SIZES[text] == fresh_size(text) for text in POSITIVE_SIZES)


@settings(deadline=None)
@given(
    st.lists(
        st.one_of(
            level_changes.map(lambda change: ("change", *change)),
            st.tuples(st.just("top"), st.sampled_from([TOKEN_YES, TOKEN_NO]), tops, tops),
        ),
        max_size=12,
    )
)
# The two ways of writing one value, in each kind of event.
@example([("top", TOKEN_YES, "0.40", "0.55"), ("top", TOKEN_YES, "0.4", "0.55")])
@example([("top", TOKEN_YES, "0.45", "0.55"), ("top", TOKEN_YES, "0.45", "0.550")])
@example(
    [
        ("change", TOKEN_NO, "0.01", "0", "BUY", "0.40", "0.55"),
        ("change", TOKEN_NO, "0.01", "0", "SELL", "0.4", "0.55"),
    ]
)
def test_a_token_is_reported_exactly_when_its_best_bid_or_ask_changes_value(
    steps: list[tuple[str, ...]],
) -> None:
    # The same value written two ways ("0.40", "0.4") is no change; any other value is.
    books = _books(payload("book_array"))
    for step in steps:
        token_id = step[1]
        if step[0] == "change":
            _, _, price, size, side, best_bid, best_ask = step
            change = PriceChange(token_id, price, size, side, best_bid, best_ask)
            event: MarketEvent = PriceChangeEvent("", (change,), "")
        else:
            event = BestBidAskEvent(token_id, "", step[2], step[3], "")
        before = books.prices(token_id)
        reported = books.apply(event, 2.0)
        after = books.prices(token_id)
        assert before is not None and after is not None
        assert reported == ((token_id,) if before[:2] != after[:2] else ())
