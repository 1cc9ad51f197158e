"""Parse Polymarket market-channel frames into frozen typed events. No I/O.

Owns the wire shape of the market WebSocket: one class per ``event_type``, prices and sizes
kept as the strings the exchange sent (the order book converts the ones it keeps). Never
raises on wire input: non-JSON text and unknown event types are ignored, anything else that
cannot be read is dropped and counted as malformed.

Events are ``NamedTuple``s (immutable and typed, and three times cheaper to build than a
frozen dataclass: a busy feed builds one per level change). Frames are decoded by ``orjson``;
a frame it refuses, or one holding a JSON number where text is read, is decoded again by the
standard library with numbers kept as their exact text, so no price ever passes through a
float.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple, NoReturn, TypeAlias, cast

import orjson

# (price, size) exactly as sent, e.g. ("0.48", "30").
Level: TypeAlias = tuple[str, str]

BUY = "BUY"
SELL = "SELL"


class BookEvent(NamedTuple):
    """A full snapshot of one token's book. Levels come in any order (best is often last)."""

    asset_id: str
    market: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    timestamp_ms: str
    hash: str


class PriceChange(NamedTuple):
    """One level update: ``size`` is the new total at ``price`` ("0" removes the level).

    ``side`` BUY updates the bids, SELL the asks. ``best_bid``/``best_ask`` are the top of book
    after the change when the exchange sent them (the current form), else None.
    """

    asset_id: str
    price: str
    size: str
    side: str
    best_bid: str | None
    best_ask: str | None


class PriceChangeEvent(NamedTuple):
    """Level updates, possibly for several tokens of one market (both wire forms)."""

    market: str
    changes: tuple[PriceChange, ...]
    timestamp_ms: str


class LastTradePriceEvent(NamedTuple):
    asset_id: str
    market: str
    price: str
    side: str
    size: str
    timestamp_ms: str


class TickSizeChangeEvent(NamedTuple):
    asset_id: str
    market: str
    old_tick_size: str
    new_tick_size: str
    timestamp_ms: str


class BestBidAskEvent(NamedTuple):
    """Top of book (custom feature). A missing or empty side is None."""

    asset_id: str
    market: str
    best_bid: str | None
    best_ask: str | None
    timestamp_ms: str


class MarketResolvedEvent(NamedTuple):
    """The market is resolved (custom feature): no more trading, positions are redeemed."""

    market: str
    assets_ids: tuple[str, ...]
    winning_asset_id: str | None
    winning_outcome: str | None
    timestamp_ms: str


MarketEvent: TypeAlias = (
    BookEvent
    | PriceChangeEvent
    | LastTradePriceEvent
    | TickSizeChangeEvent
    | BestBidAskEvent
    | MarketResolvedEvent
)


class ParsedFrame(NamedTuple):
    """What one frame held: its events, plus how many objects were malformed or ignored."""

    events: tuple[MarketEvent, ...]
    malformed: int = 0
    ignored: int = 0


_NOTHING = ParsedFrame(events=())
_IGNORED = ParsedFrame(events=(), ignored=1)
_MALFORMED = ParsedFrame(events=(), malformed=1)

# NaN and Infinity are no numbers we read: a value of this type fails every type check.
_NOT_A_NUMBER = type("_NotANumber", (), {"__slots__": ()})()
# Numbers keep their exact text: a price sent as a JSON number never becomes a float.
_decode_exact = json.JSONDecoder(parse_float=str, parse_constant=lambda _name: _NOT_A_NUMBER).decode
_decode_fast = orjson.loads
_BRACES = (ord("{"), ord("["))


class _Malformed(Exception):
    """An object that claims a known event type but lacks what that type needs."""


class _InexactNumber(Exception):
    """``orjson`` gave a float where text is read: decode the frame again, exactly."""


def parse_frame(frame: str | bytes) -> ParsedFrame:
    """Parse one WebSocket frame (one JSON object or an array of them). Never raises."""
    # PONG, INVALID OPERATION and other plain text: skip without paying for an exception.
    head = frame[:1]
    if head != "{" and head != "[" and head not in (b"{", b"["):
        if isinstance(frame, bytes):
            try:
                frame = frame.decode()
            except UnicodeDecodeError:
                return _MALFORMED
        head = frame.lstrip()[:1]
        if head != "{" and head != "[":
            return _IGNORED if frame.strip() else _NOTHING
    try:
        decoded = _decode_fast(frame)
        # One object, the common frame: straight to its builder.
        if type(decoded) is dict:
            return _parse_object(decoded)
        return _parse_decoded(decoded)
    except (orjson.JSONDecodeError, _InexactNumber):
        pass
    if isinstance(frame, bytes):
        try:
            frame = frame.decode()
        except UnicodeDecodeError:
            return _MALFORMED
    try:
        decoded = _decode_exact(frame)
    except (ValueError, RecursionError):
        return _MALFORMED
    return _parse_decoded(decoded)


def _parse_decoded(decoded: Any) -> ParsedFrame:
    if isinstance(decoded, dict):
        return _parse_object(decoded)
    if isinstance(decoded, list):
        return _parse_objects(decoded) if decoded else _NOTHING
    return _MALFORMED


def _not_text(value: object, key: str) -> NoReturn:
    if type(value) is float:
        raise _InexactNumber(key)
    raise _Malformed(key)


def _parse_object(obj: dict[str, Any]) -> ParsedFrame:
    # The common case, one event per frame, without the array's bookkeeping.
    event_type = obj.get("event_type")
    builder = _BUILDERS.get(event_type) if type(event_type) is str else None
    if builder is None:
        if type(event_type) is float:
            raise _InexactNumber("event_type")
        return _IGNORED if type(event_type) is str else _MALFORMED
    try:
        return _new_parsed(((builder(obj),), 0, 0))
    except _Malformed:
        return _MALFORMED


def _parse_objects(objects: list[Any] | tuple[Any, ...]) -> ParsedFrame:
    events: list[MarketEvent] = []
    malformed = 0
    ignored = 0
    for obj in objects:
        if not isinstance(obj, dict):
            malformed += 1
            continue
        event_type = obj.get("event_type")
        builder = _BUILDERS.get(event_type) if type(event_type) is str else None
        if builder is None:
            if type(event_type) is float:
                raise _InexactNumber("event_type")
            if type(event_type) is str:
                ignored += 1
            else:
                malformed += 1
            continue
        try:
            events.append(builder(obj))
        except _Malformed:
            malformed += 1
    return ParsedFrame(events=tuple(events), malformed=malformed, ignored=ignored)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if type(value) is str:
        return value
    # An integer stays exact as text; bool is an int subclass, so check the exact type.
    if type(value) is int:
        return str(value)
    _not_text(value, key)


def _optional_text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    _not_text(value, key)


def _side(obj: dict[str, Any]) -> str:
    side = _text(obj, "side")
    if side in (BUY, SELL):
        return side
    upper = side.upper()
    if upper in (BUY, SELL):
        return upper
    raise _Malformed("side")


def _levels(obj: dict[str, Any], key: str, older_key: str) -> tuple[Level, ...]:
    raw = obj.get(key)
    if raw is None:
        raw = obj.get(older_key)
    if raw is None:
        return ()
    # One comprehension per side: this is the widest loop of the parser (books run to
    # hundreds of levels), so no per-level helper calls.
    try:
        levels = tuple([(level["price"], level["size"]) for level in raw])
    except (KeyError, TypeError):
        raise _Malformed(key) from None
    for price, size in levels:
        if type(price) is not str:
            _not_text(price, key)
        if type(size) is not str:
            _not_text(size, key)
    return levels


def _book(obj: dict[str, Any]) -> BookEvent:
    return BookEvent(
        asset_id=_text(obj, "asset_id"),
        market=_optional_text(obj, "market") or "",
        bids=_levels(obj, "bids", "buys"),
        asks=_levels(obj, "asks", "sells"),
        timestamp_ms=_optional_text(obj, "timestamp") or "",
        hash=_optional_text(obj, "hash") or "",
    )


def _price_change(obj: dict[str, Any]) -> PriceChangeEvent:
    current = obj.get("price_changes")
    if current is not None:
        if not isinstance(current, list):
            raise _Malformed("price_changes")
        changes = _current_changes(current)
    else:
        # The older form: one asset at the top level, its level updates under "changes".
        asset_id = _text(obj, "asset_id")
        older = obj.get("changes")
        if not isinstance(older, list):
            raise _Malformed("changes")
        changes = tuple([_older_change(asset_id, change) for change in older])
    # Read directly when they are the plain strings they almost always are.
    market = obj.get("market")
    if type(market) is not str:
        market = _optional_text(obj, "market") or ""
    timestamp = obj.get("timestamp")
    if type(timestamp) is not str:
        timestamp = _optional_text(obj, "timestamp") or ""
    return _new_price_change_event((market, changes, timestamp))


def _current_changes(changes: list[Any]) -> tuple[PriceChange, ...]:
    # The whole list in one loop when every change is the plain form (``_is_plain``, the
    # test ``_current_change`` makes, inline: no call per change); otherwise change by
    # change.
    plain: list[PriceChange] = []
    append = plain.append
    try:
        for fields in map(_CHANGE_FIELDS, changes):
            asset_id, price, size, side, best_bid, best_ask = fields
            if not (
                type(asset_id) is str
                and type(price) is str
                and type(size) is str
                and side in (BUY, SELL)
                and type(best_bid) is str
                and best_bid
                and type(best_ask) is str
                and best_ask
            ):
                break
            append(_new_change(fields))
        else:
            return tuple(plain)
    except (KeyError, TypeError):
        pass
    return tuple([_current_change(change) for change in changes])


def _current_change(change: Any) -> PriceChange:
    # The most frequent object on the wire: its six fields in one C call, kept as the event
    # when each is the plain string it almost always is; anything else takes the tolerant
    # path, which reads (or refuses) each field on its own.
    if type(change) is dict:
        try:
            fields = _CHANGE_FIELDS(change)
        except KeyError:
            return _tolerant_change(change)
        if _is_plain(fields):
            return _new_change(fields)
    return _tolerant_change(change)


def _is_plain(fields: tuple[Any, ...]) -> bool:
    """Whether a change's six fields are the plain strings they almost always are (kept
    as the event as they are)."""
    asset_id, price, size, side, best_bid, best_ask = fields
    return (
        type(asset_id) is str
        and type(price) is str
        and type(size) is str
        and side in (BUY, SELL)
        and type(best_bid) is str
        and bool(best_bid)
        and type(best_ask) is str
        and bool(best_ask)
    )


def _tolerant_change(change: Any) -> PriceChange:
    if not isinstance(change, dict):
        raise _Malformed("price_changes")
    asset_id = change.get("asset_id")
    price = change.get("price")
    size = change.get("size")
    side = change.get("side")
    if type(asset_id) is not str or type(price) is not str or type(size) is not str:
        asset_id = _text(change, "asset_id")
        price = _text(change, "price")
        size = _text(change, "size")
    if side != BUY and side != SELL:
        side = _side(change)
    best_bid = change.get("best_bid")
    if type(best_bid) is not str or not best_bid:
        best_bid = _optional_text(change, "best_bid")
    best_ask = change.get("best_ask")
    if type(best_ask) is not str or not best_ask:
        best_ask = _optional_text(change, "best_ask")
    return _new_change((asset_id, price, size, side, best_bid, best_ask))


def _older_change(asset_id: str, change: Any) -> PriceChange:
    if not isinstance(change, dict):
        raise _Malformed("changes")
    return PriceChange(
        asset_id=asset_id,
        price=_text(change, "price"),
        size=_text(change, "size"),
        side=_side(change),
        best_bid=None,
        best_ask=None,
    )


def _last_trade_price(obj: dict[str, Any]) -> LastTradePriceEvent:
    return LastTradePriceEvent(
        asset_id=_text(obj, "asset_id"),
        market=_optional_text(obj, "market") or "",
        price=_text(obj, "price"),
        side=_optional_text(obj, "side") or "",
        size=_optional_text(obj, "size") or "",
        timestamp_ms=_optional_text(obj, "timestamp") or "",
    )


def _tick_size_change(obj: dict[str, Any]) -> TickSizeChangeEvent:
    return TickSizeChangeEvent(
        asset_id=_text(obj, "asset_id"),
        market=_optional_text(obj, "market") or "",
        old_tick_size=_optional_text(obj, "old_tick_size") or "",
        new_tick_size=_text(obj, "new_tick_size"),
        timestamp_ms=_optional_text(obj, "timestamp") or "",
    )


def _best_bid_ask(obj: dict[str, Any]) -> BestBidAskEvent:
    # Its five fields in one C call, kept as the event when each is the plain non-empty
    # string it almost always is; anything else is read field by field.
    try:
        fields = _BEST_BID_ASK_FIELDS(obj)
    except KeyError:
        return _tolerant_best_bid_ask(obj)
    asset_id, market, best_bid, best_ask, timestamp = fields
    if (
        type(asset_id) is str
        and type(market) is str
        and type(best_bid) is str
        and best_bid
        and type(best_ask) is str
        and best_ask
        and type(timestamp) is str
    ):
        return _new_best_bid_ask(fields)
    return _tolerant_best_bid_ask(obj)


def _tolerant_best_bid_ask(obj: dict[str, Any]) -> BestBidAskEvent:
    return _new_best_bid_ask(
        (
            _text(obj, "asset_id"),
            _optional_text(obj, "market") or "",
            _optional_text(obj, "best_bid"),
            _optional_text(obj, "best_ask"),
            _optional_text(obj, "timestamp") or "",
        )
    )


def _market_resolved(obj: dict[str, Any]) -> MarketResolvedEvent:
    assets = obj.get("assets_ids")
    if not isinstance(assets, list):
        raise _Malformed("assets_ids")
    for asset in assets:
        if type(asset) is not str:
            _not_text(asset, "assets_ids")
    return MarketResolvedEvent(
        market=_optional_text(obj, "market") or "",
        assets_ids=tuple(assets),
        winning_asset_id=_optional_text(obj, "winning_asset_id"),
        winning_outcome=_optional_text(obj, "winning_outcome"),
        timestamp_ms=_optional_text(obj, "timestamp") or "",
    )


# Built from a tuple of the right length by ``tuple.__new__`` itself, without the
# keyword-argument ``__new__`` or ``_make``'s Python frame: these run per event (and
# ``_new_change`` per level change). Only given tuples of the fields in order.
_new_parsed = cast(Callable[[tuple[Any, ...]], ParsedFrame], partial(tuple.__new__, ParsedFrame))
_new_change = cast(Callable[[tuple[Any, ...]], PriceChange], partial(tuple.__new__, PriceChange))
_new_price_change_event = cast(
    Callable[[tuple[Any, ...]], PriceChangeEvent], partial(tuple.__new__, PriceChangeEvent)
)
_new_best_bid_ask = cast(
    Callable[[tuple[Any, ...]], BestBidAskEvent], partial(tuple.__new__, BestBidAskEvent)
)
# A current-form level change's fields in ``PriceChange``'s order.
_CHANGE_FIELDS = itemgetter("asset_id", "price", "size", "side", "best_bid", "best_ask")
# A ``best_bid_ask`` event's fields in ``BestBidAskEvent``'s order.
_BEST_BID_ASK_FIELDS = itemgetter("asset_id", "market", "best_bid", "best_ask", "timestamp")

_BUILDERS: dict[str, Callable[[dict[str, Any]], MarketEvent]] = {
    "book": _book,
    "price_change": _price_change,
    "last_trade_price": _last_trade_price,
    "tick_size_change": _tick_size_change,
    "best_bid_ask": _best_bid_ask,
    "market_resolved": _market_resolved,
}
