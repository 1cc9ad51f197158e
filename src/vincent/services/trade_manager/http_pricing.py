"""Price tokens from REST books when their WebSocket price is stale. No I/O.

``http_price_plan`` decides which tokens a poll tick asks for: a token the feed covers live
is fresh however quiet its book (re-checked only after a long quiet, a bounded number per
tick); any other token is stale once its book is older than ``stale_after_s``.

A REST book goes through the same ``OrderBooks`` code as the feed, so an HTTP price and a
WebSocket price of the same book are the same number. ``TokenBackoff`` spaces out the
requests for a token whose book keeps failing (one tenant's rule on a token the exchange
does not know must not cost a request, or a failed tick, every tick).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from enum import StrEnum

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


class HttpPriceReason(StrEnum):
    """Why the poll tick asks for a token's book over HTTP (the metric's ``reason`` label)."""

    STALE = "stale"  # not covered live, and its feed book is older than ``stale_after_s``
    QUIET_RECHECK = "quiet_recheck"  # covered live, but quiet for ``quiet_recheck_s``


@dataclass(frozen=True, slots=True)
class HttpPricePlan:
    """The tokens a tick prices over HTTP: ``stale`` (sorted), then ``quiet`` (quiet longest
    first). ``quiet_deferred``: quiet tokens due that the per-tick bound left for later."""

    stale: tuple[str, ...] = ()
    quiet: tuple[str, ...] = ()
    quiet_deferred: int = 0


def quiet_rechecks_per_tick(watched: int, *, poll_interval_s: float, quiet_recheck_s: float) -> int:
    """At most this many quiet re-checks per tick: the steady rate that re-checks every
    watched token once per ``quiet_recheck_s`` (at least one). Tokens that all became quiet
    at once (a restart's snapshots) are spread over ``quiet_recheck_s``, not asked together.
    """
    return max(1, math.ceil(watched * poll_interval_s / quiet_recheck_s))


def http_price_plan(
    tokens: Iterable[str],
    books: OrderBooks | None,
    tracked_since_s: Mapping[str, float],
    *,
    covered_live: Set[str] | None,
    last_http_s: Mapping[str, float],
    now_s: float,
    stale_after_s: float,
    quiet_recheck_s: float,
    max_quiet: int,
) -> HttpPricePlan:
    """Which tokens to price over HTTP now, and why.

    A token the feed covers live (in ``covered_live``: its connection is up, within its
    heartbeat, and delivered the token's snapshot since it subscribed it) is fresh whatever
    its book's age: a quiet book on a live connection is a quiet market. It is re-checked
    (a safety net against a subscription that died while its connection lives) once neither
    its feed book nor its last HTTP answer (``last_http_s``) is newer than
    ``quiet_recheck_s``, at most ``max_quiet`` per tick, quiet longest first.

    Any other token (no feed at all, ``covered_live`` None, connection down or stalled, no
    snapshot since it (re)subscribed) is stale once its feed book is older than
    ``stale_after_s``; a token that never had a book counts from when it was first watched
    (``tracked_since_s``), so a fresh subscription gets a chance to deliver its snapshot.
    """
    if books is None:
        return HttpPricePlan(stale=tuple(sorted(tokens)))
    stale: list[str] = []
    quiet: list[tuple[float, str]] = []
    for token_id in tokens:
        age_s = books.age_s(token_id, now_s)
        if age_s is None:
            age_s = now_s - tracked_since_s.get(token_id, now_s)
        if covered_live is not None and token_id in covered_live:
            last_http = last_http_s.get(token_id)
            quiet_s = age_s if last_http is None else min(age_s, now_s - last_http)
            if quiet_s >= quiet_recheck_s:
                quiet.append((-quiet_s, token_id))
        elif age_s >= stale_after_s:
            stale.append(token_id)
    quiet.sort()
    return HttpPricePlan(
        stale=tuple(sorted(stale)),
        quiet=tuple(token_id for _, token_id in quiet[: max(0, max_quiet)]),
        quiet_deferred=max(0, len(quiet) - max(0, max_quiet)),
    )


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
