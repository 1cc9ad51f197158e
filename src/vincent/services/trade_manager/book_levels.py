"""The levels of one book side: read from wire text, checked, kept, walked best first. No I/O.

A side is kept as ``{price text: size text}`` and converted only when asked: hashing
``Decimal`` keys would cost more than the rest of a snapshot together. Price text is keyed
without trailing zeros, so "0.50" and "0.5" are one level. The values of wire texts already
read are remembered (a market quotes a few hundred prices at most), so most reads of a
level update are a dictionary lookup rather than a ``Decimal`` parse and its checks.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

from vincent.services.trade_manager.market_messages import Level

_ZERO = Decimal(0)
_ONE = Decimal(1)
# Texts remembered per kind of value; past this the memory starts again (only a cost).
_MAX_REMEMBERED = 4096
_T = TypeVar("_T")
_best_prices: dict[str, Decimal | None] = {}
# The texts read so far, for the order book's per-change loop to look up inline (a miss
# calls ``read_level_price`` or ``read_size``, which check the text and remember it).
# Only texts that passed their checks are here. Cleared, never rebound.
# A level price: (its depth key, its value).
LEVEL_PRICES: dict[str, tuple[str, Decimal]] = {}
# A size: whether it is positive (a level of size zero is removed).
POSITIVE_SIZES: dict[str, bool] = {}


class MalformedMarketData(ValueError):
    """A wire value that is not a usable price, size or tick size."""


def update_level(
    levels: dict[str, str],
    best: Decimal | None,
    price_text: str,
    price: Decimal,
    size_text: str,
    positive: bool,
    *,
    higher: bool,
) -> Decimal | None:
    """Set one level (removed unless its size is ``positive``) and return the side's new
    best, rescanning only when the best left."""
    if positive:
        levels[price_text] = size_text
        if best is None or (price > best if higher else price < best):
            return price
        return best
    levels.pop(price_text, None)
    if price != best:
        return best
    if not levels:
        return None
    prices = [Decimal(text) for text in levels]
    return max(prices) if higher else min(prices)


def level_key(price: str) -> str:
    """Return the depth key of a price: "0.50" and "0.5" are one level."""
    return price.rstrip("0") if "." in price else price


def read_side(levels: tuple[Level, ...], *, highest: bool) -> tuple[dict[str, str], Decimal | None]:
    """Return one side's depth and its best price, checking the side as a whole."""
    # Keys as level_key makes them, inline: this loop runs once per level of a snapshot.
    side = {(price.rstrip("0") if "." in price else price): size for price, size in levels}
    if not side:
        return side, None
    # Whole-side checks (min/max run in C) rather than a check per level: a snapshot can
    # hold hundreds of levels. NaN fails the ordering comparisons.
    try:
        sizes = [Decimal(size) for size in side.values()]
        if not all(sizes):
            side = {price: size for price, size in side.items() if Decimal(size)}
            if not side:
                return side, None
            sizes = [Decimal(size) for size in side.values()]
        prices = [Decimal(price) for price in side]
        low = min(prices)
        high = max(prices)
        valid = low > _ZERO and high < _ONE and min(sizes) > _ZERO and max(sizes).is_finite()
    except ArithmeticError:
        raise MalformedMarketData(f"book level not a number: {levels!r}") from None
    if not valid:
        raise MalformedMarketData(f"book level out of range: {levels!r}")
    return side, high if highest else low


def depth(
    levels: dict[str, str], *, best_first_highest: bool
) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple(
        sorted(
            ((Decimal(price), Decimal(size)) for price, size in levels.items()),
            reverse=best_first_highest,
        )
    )


def read_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise MalformedMarketData(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise MalformedMarketData(f"not a finite number: {text!r}")
    return value


def read_level_price(text: str) -> tuple[str, Decimal]:
    """A level price's depth key and value (``LEVEL_PRICES`` holds those read so far)."""
    level = LEVEL_PRICES.get(text)
    if level is None:
        level = _remember(LEVEL_PRICES, text, (level_key(text), _level_price(text)))
    return level


def read_size(text: str) -> bool:
    """Whether a level's size is positive (``POSITIVE_SIZES`` holds those read so far)."""
    positive = POSITIVE_SIZES.get(text)
    if positive is None:
        positive = _remember(POSITIVE_SIZES, text, _size(text) > 0)
    return positive


def read_best(text: str) -> Decimal | None:
    best = _best_prices.get(text, _ONE)
    if best is _ONE:
        best = _remember(_best_prices, text, _best(text))
    return best


def _remember(memory: dict[str, _T], text: str, value: _T) -> _T:
    # Only values that passed their checks get here: a bad text raises every time.
    if len(memory) >= _MAX_REMEMBERED:
        memory.clear()
    memory[text] = value
    return value


def _level_price(text: str) -> Decimal:
    price = read_decimal(text)
    if not _ZERO < price < _ONE:
        raise MalformedMarketData(f"level price must be in (0, 1), was {text}")
    return price


def _size(text: str) -> Decimal:
    size = read_decimal(text)
    if size < 0:
        raise MalformedMarketData(f"size must not be negative, was {text}")
    return size


def _best(text: str) -> Decimal | None:
    # The exchange marks an empty side with 0 (bid) or 1 (ask): no price there.
    price = read_decimal(text)
    return price if _ZERO < price < _ONE else None


def read_tick_size(text: str) -> Decimal:
    tick = read_decimal(text)
    if not _ZERO < tick < _ONE:
        raise MalformedMarketData(f"tick size must be in (0, 1), was {text}")
    return tick
