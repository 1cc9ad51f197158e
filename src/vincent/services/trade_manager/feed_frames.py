"""The feed's hot path: one frame → parsed events → ``OrderBooks`` → ``on_prices``.

Synchronous from frame to callback (no ``await`` between an event and its rules). Marks the
tokens whose ``book`` snapshot arrived on the frame's connection. Counts
frames, malformed objects and callback failures; a failing callback never costs the feed its
connection. Any other exception is a bug and propagates to the connection's supervisor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableSet, Sized

from vincent.services.trade_manager.feed_config import FeedCounters
from vincent.services.trade_manager.market_messages import BookEvent, ParsedFrame, parse_frame
from vincent.services.trade_manager.order_book import MalformedMarketData, OrderBooks

logger = logging.getLogger(__name__)

# Called once per event with the tokens whose best bid, best ask, last trade or resolution
# it changed (each once); the books already hold the new state.
OnPrices = Callable[[tuple[str, ...]], None]

# Turns one WebSocket frame into events; ``market_messages.parse_frame`` unless a test
# injects a failure (it must never raise on wire input).
FrameParser = Callable[[str | bytes], ParsedFrame]


class FrameHandler:
    """Applies frames to ``books`` and tells ``on_prices``; then wakes status waiters."""

    __slots__ = (
        "_apply",
        "_counters",
        "_notify",
        "_on_prices",
        "_parse",
        "_waiters",
        "ts_last_frame_s",
    )

    def __init__(
        self,
        books: OrderBooks,
        on_prices: OnPrices,
        counters: FeedCounters,
        *,
        waiters: Sized,
        notify: Callable[[], None],
        parse: FrameParser = parse_frame,
    ) -> None:
        self._apply = books.apply
        self._on_prices = on_prices
        self._counters = counters
        self._parse = parse
        # Checked per frame: the status snapshot is built only when someone waits for one.
        self._waiters = waiters
        self._notify = notify
        # Monotonic time of the newest frame on any connection (None: no frame yet).
        self.ts_last_frame_s: float | None = None

    def handle(
        self, frame: str | bytes, now_s: float, awaiting_snapshot: MutableSet[str] | None = None
    ) -> None:
        """Apply every event of ``frame`` received at monotonic ``now_s``.

        ``awaiting_snapshot``: the tokens of the frame's connection still waiting for their
        book snapshot; a token whose ``book`` event is applied leaves it. Empty once every
        snapshot is in, so the steady state pays one truth test per event.
        """
        self.ts_last_frame_s = now_s
        counters = self._counters
        counters.messages_received += 1
        parsed = self._parse(frame)
        malformed = parsed.malformed
        apply = self._apply
        # One call per event, not per frame: a dip and its recovery batched in one array
        # must both be seen, or a stop touched in between would never fire.
        for event in parsed.events:
            try:
                changed = apply(event, now_s)
            except MalformedMarketData:
                malformed += 1
                continue
            if awaiting_snapshot and type(event) is BookEvent:
                awaiting_snapshot.discard(event.asset_id)
            if changed:
                # Inline, not a call per event that changed a price.
                try:
                    self._on_prices(changed)
                except Exception:
                    # The consumer's failure must not cost the feed its connection.
                    self._counters.callback_errors += 1
                    logger.exception("market_feed.callback_failed")
        if malformed:
            counters.malformed_messages += malformed
            logger.debug("market_feed.malformed", extra={"count": malformed})
        if self._waiters:
            self._notify()
