"""The market-channel parser on recorded-style payloads, malformed input and fuzz."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.engine_core.recorded import MARKET, TOKEN_NO, TOKEN_YES, payload
from vincent.services.trade_manager.market_messages import (
    BestBidAskEvent,
    BookEvent,
    LastTradePriceEvent,
    MarketResolvedEvent,
    PriceChange,
    PriceChangeEvent,
    TickSizeChangeEvent,
    _best_bid_ask,
    _current_change,
    _current_changes,
    _tolerant_best_bid_ask,
    _tolerant_change,
    parse_frame,
)


def test_book_array_gives_one_event_per_book_with_levels_as_sent() -> None:
    parsed = parse_frame(payload("book_array"))

    assert (parsed.malformed, parsed.ignored) == (0, 0)
    assert [type(event) for event in parsed.events] == [BookEvent, BookEvent]
    book = parsed.events[0]
    assert isinstance(book, BookEvent)
    assert book.asset_id == TOKEN_YES
    assert book.market == MARKET
    assert book.bids[-1] == ("0.48", "30")
    assert book.asks[-1] == ("0.52", "25")
    assert book.timestamp_ms == "1757908892351"


def test_older_book_form_reads_buys_and_sells() -> None:
    (book,) = parse_frame(payload("book_buys_sells")).events

    assert isinstance(book, BookEvent)
    assert book.bids == (("0.30", "120"), ("0.34", "80"))
    assert book.asks == (("0.40", "60"), ("0.36", "15"))


def test_current_price_change_form_carries_each_asset_and_its_top_of_book() -> None:
    (event,) = parse_frame(payload("price_change_current")).events

    assert event == PriceChangeEvent(
        market=MARKET,
        changes=(
            PriceChange(TOKEN_YES, "0.5", "200", "BUY", best_bid="0.5", best_ask="0.52"),
            PriceChange(TOKEN_NO, "0.5", "200", "SELL", best_bid="0.47", best_ask="0.5"),
        ),
        timestamp_ms="1757908892351",
    )


def test_older_price_change_form_takes_the_asset_from_the_top_level() -> None:
    (event,) = parse_frame(payload("price_change_older")).events

    assert isinstance(event, PriceChangeEvent)
    assert event.changes == (
        PriceChange(TOKEN_YES, "0.48", "0", "BUY", best_bid=None, best_ask=None),
        PriceChange(TOKEN_YES, "0.49", "12.5", "SELL", best_bid=None, best_ask=None),
    )


def test_last_trade_tick_size_best_bid_ask_and_resolution() -> None:
    (trade,) = parse_frame(payload("last_trade_price")).events
    (tick,) = parse_frame(payload("tick_size_change")).events
    (top,) = parse_frame(payload("best_bid_ask")).events
    (resolved,) = parse_frame(payload("market_resolved")).events

    assert trade == LastTradePriceEvent(
        TOKEN_YES, MARKET, "0.456", "BUY", "219.217767", "1750428146322"
    )
    assert tick == TickSizeChangeEvent(TOKEN_YES, MARKET, "0.01", "0.001", "1750428146322")
    assert top == BestBidAskEvent(TOKEN_YES, MARKET, "0.73", "0.77", "1766789469958")
    assert resolved == MarketResolvedEvent(
        MARKET, (TOKEN_YES, TOKEN_NO), TOKEN_YES, "Yes", "1766790415550"
    )


def test_plain_text_frames_are_ignored() -> None:
    for text in ("PONG", "INVALID OPERATION", "  PONG\n"):
        assert parse_frame(text).events == ()
        assert parse_frame(text).ignored == 1
        assert parse_frame(text).malformed == 0
    assert parse_frame("").ignored == 0
    assert parse_frame("[]").events == ()


def test_unknown_event_types_are_ignored_not_malformed() -> None:
    parsed = parse_frame(payload("new_market"))

    assert (parsed.events, parsed.malformed, parsed.ignored) == ((), 0, 1)


def test_malformed_frames_are_counted_and_never_raise() -> None:
    frames: list[str | bytes] = [
        "{not json",
        '{"event_type": "book"}',
        '{"event_type": "book", "asset_id": "1", "bids": [{"price": "0.5"}]}',
        '{"event_type": "book", "asset_id": "1", "bids": {"price": "0.5"}}',
        '{"event_type": "price_change", "market": "0x1", "price_changes": [{"price": "0.5"}]}',
        '{"event_type": "price_change", "asset_id": "1", "changes": "0.5"}',
        '{"event_type": "last_trade_price", "asset_id": "1", "price": ["0.5"]}',
        '{"event_type": "last_trade_price", "asset_id": "1", "price": true}',
        '{"event_type": "market_resolved", "assets_ids": "1"}',
        '{"event_type": ["book"], "asset_id": "1"}',
        '{"no_event_type": 1}',
        b"\xff\xfe",
    ]
    for frame in frames:
        parsed = parse_frame(frame)
        assert (parsed.events, parsed.malformed) == ((), 1), frame


def test_an_array_keeps_its_good_events_and_counts_the_rest() -> None:
    good = json.loads(payload("last_trade_price"))
    frame = json.dumps([good, {"event_type": "book"}, 7, {"event_type": "new_market"}, good])

    parsed = parse_frame(frame)

    assert len(parsed.events) == 2
    assert (parsed.malformed, parsed.ignored) == (2, 1)


def test_numbers_keep_their_exact_text_and_never_become_floats() -> None:
    frame = '{"event_type": "last_trade_price", "asset_id": "1", "price": 0.1000000000000000055}'

    (event,) = parse_frame(frame).events

    assert isinstance(event, LastTradePriceEvent)
    assert event.price == "0.1000000000000000055"


EVENT_TYPES = [
    "book",
    "price_change",
    "last_trade_price",
    "tick_size_change",
    "best_bid_ask",
    "market_resolved",
    "other",
]
EVENT_KEYS = [
    "asset_id",
    "bids",
    "asks",
    "buys",
    "price",
    "size",
    "side",
    "changes",
    "price_changes",
    "assets_ids",
    "best_bid",
    "new_tick_size",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
event_objects = st.fixed_dictionaries(
    {"event_type": st.sampled_from(EVENT_TYPES)},
    optional={key: json_values | st.text() for key in EVENT_KEYS},
)


@settings(deadline=None)
@given(st.text())
def test_any_text_parses_without_raising(text: str) -> None:
    parsed = parse_frame(text)

    assert parsed.malformed + parsed.ignored + len(parsed.events) <= max(1, len(text))


@settings(deadline=None)
@given(st.lists(event_objects | json_values, max_size=5))
def test_any_json_array_is_split_into_events_malformed_and_ignored(objects: list[object]) -> None:
    parsed = parse_frame(json.dumps(objects))

    assert len(parsed.events) + parsed.malformed + parsed.ignored == len(objects)


def _numbers_as_text(value: object) -> object:
    # What the exact decoder makes of a JSON number with a fraction or exponent: its text.
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, list):
        return [_numbers_as_text(item) for item in value]
    if isinstance(value, dict):
        return {key: _numbers_as_text(item) for key, item in value.items()}
    return value


@settings(deadline=None)
@given(st.lists(event_objects | json_values, max_size=5))
def test_json_numbers_read_exactly_as_the_text_they_were_sent_as(objects: list[object]) -> None:
    as_numbers = parse_frame(json.dumps(objects))
    as_text = parse_frame(json.dumps(_numbers_as_text(objects)))

    assert as_numbers == as_text
    assert parse_frame(json.dumps(objects).encode()) == as_numbers


def test_frames_the_fast_decoder_refuses_are_read_like_any_other() -> None:
    huge = '{"event_type": "last_trade_price", "asset_id": 123456789012345678901234567890, '
    not_a_number = '{"event_type": "last_trade_price", "asset_id": "1", "price": NaN}'

    (event,) = parse_frame(huge + '"price": "0.5"}').events
    assert isinstance(event, LastTradePriceEvent)
    assert event.asset_id == "123456789012345678901234567890"
    assert (parse_frame(not_a_number).events, parse_frame(not_a_number).malformed) == ((), 1)


change_values = st.sampled_from(["BUY", "SELL", "buy", "", "0.5", "12"]) | json_values
CHANGE_KEYS = ("asset_id", "price", "size", "side", "best_bid", "best_ask")
change_objects = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(CHANGE_KEYS, change_values),
) | st.fixed_dictionaries(
    {
        "asset_id": st.text(max_size=3),
        "price": st.sampled_from(["0.5", "0.50", "1"]),
        "size": st.sampled_from(["0", "10"]),
        "side": st.sampled_from(["BUY", "SELL", "sell"]),
        "best_bid": st.sampled_from(["0.49", "", "0"]) | st.none(),
        "best_ask": st.sampled_from(["0.51", "", "1"]) | st.none(),
    }
)


def _read_change(read: Callable[[object], PriceChange], change: object) -> object:
    try:
        return read(change)
    except Exception as error:  # the kind of refusal is part of the behaviour
        return type(error)


@settings(deadline=None)
@given(change_objects | json_values, st.booleans())
def test_the_fast_read_of_a_level_change_agrees_with_the_field_by_field_read(
    change: object, through_orjson: bool
) -> None:
    # The fast path reads all six fields in one call; it must accept, refuse and read
    # exactly what the tolerant path (the reader before it) does, for either decoder.
    if through_orjson:
        try:
            change = orjson.loads(json.dumps(change))
        except orjson.JSONDecodeError:
            assume(False)  # an integer past 64 bits: orjson refuses the frame

    assert _read_change(_current_change, change) == _read_change(_tolerant_change, change)


@settings(deadline=None)
@given(st.lists(change_objects, max_size=4), st.booleans())
def test_a_price_change_frame_reads_as_its_changes_read_one_by_one(
    changes: list[dict[str, object]], as_bytes: bool
) -> None:
    frame = json.dumps({"event_type": "price_change", "market": "m", "price_changes": changes})
    parsed = parse_frame(frame.encode() if as_bytes else frame)
    # Numbers with a fraction are read as their text (the exact decoder's way).
    exact = json.loads(frame, parse_float=str)["price_changes"]
    one_by_one = [_read_change(_tolerant_change, change) for change in exact]

    if all(isinstance(change, PriceChange) for change in one_by_one):
        (event,) = parsed.events
        assert isinstance(event, PriceChangeEvent)
        assert list(event.changes) == one_by_one
    else:
        assert (parsed.events, parsed.malformed) == ((), 1)


# Level changes of the plain current form (every key, plain strings): lists of them take the
# whole-list read, and one odd value (an empty best, a lower-case side, a number, a missing
# key) sends the list change by change.
plain_changes = st.fixed_dictionaries(
    {
        "asset_id": st.sampled_from(["1", "2"]),
        "price": st.sampled_from(["0.5", "0.50"]),
        "size": st.sampled_from(["0", "10"]),
        "side": st.sampled_from(["BUY", "SELL"]),
        "best_bid": st.sampled_from(["0.49", "0"]),
        "best_ask": st.sampled_from(["0.51", "1"]),
    }
)
ODD_VALUES = ["", "sell", None, 7, 0.5, "missing"]


# Every odd value at every key (and none): each case is tried, not left to chance.
@pytest.mark.parametrize("key", [*CHANGE_KEYS, None])
@pytest.mark.parametrize("value", ODD_VALUES)
@settings(deadline=None, max_examples=20)
@given(st.lists(plain_changes, min_size=1, max_size=4), st.integers(0, 3), st.booleans())
def test_the_whole_list_read_of_level_changes_agrees_with_the_read_change_by_change(
    key: str | None,
    value: object,
    changes: list[dict[str, object]],
    at: int,
    through_orjson: bool,
) -> None:
    if key is not None:
        change = changes[at % len(changes)]
        if value == "missing":
            del change[key]
        else:
            change[key] = value
    # ``_current_changes`` keeps the list in one pass when every change is plain; it must
    # read (or refuse) exactly what ``_current_change`` does, one change at a time.
    if through_orjson:
        changes = orjson.loads(json.dumps(changes))

    def one_by_one(changes: object) -> tuple[PriceChange, ...]:
        assert isinstance(changes, list)
        return tuple(_current_change(change) for change in changes)

    together = _read_change(_current_changes, changes)  # type: ignore[arg-type]
    assert together == _read_change(one_by_one, changes)  # type: ignore[arg-type]
    if isinstance(together, tuple):
        assert all(type(change) is PriceChange for change in together)


TOP_KEYS = ("asset_id", "market", "best_bid", "best_ask", "timestamp")
plain_tops = st.fixed_dictionaries(
    {
        "event_type": st.just("best_bid_ask"),
        "asset_id": st.sampled_from(["1", "2"]),
        "market": st.sampled_from(["0xm", ""]),
        "best_bid": st.sampled_from(["0.49", "0"]),
        "best_ask": st.sampled_from(["0.51", "1"]),
        "spread": st.sampled_from(["0.02", ""]),
        "timestamp": st.sampled_from(["1757908892351", ""]),
    }
)


@pytest.mark.parametrize("key", [*TOP_KEYS, None])
@pytest.mark.parametrize("value", ODD_VALUES)
@settings(deadline=None, max_examples=10)
@given(plain_tops, st.booleans())
def test_the_fast_read_of_a_top_of_book_agrees_with_the_field_by_field_read(
    key: str | None, value: object, obj: dict[str, object], through_orjson: bool
) -> None:
    if key is not None:
        if value == "missing":
            del obj[key]
        else:
            obj[key] = value
    if through_orjson:
        obj = orjson.loads(json.dumps(obj))

    fast = _read_change(_best_bid_ask, obj)  # type: ignore[arg-type]
    assert fast == _read_change(_tolerant_best_bid_ask, obj)  # type: ignore[arg-type]
    if not isinstance(fast, type):
        assert type(fast) is BestBidAskEvent
