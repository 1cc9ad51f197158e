"""Shared pieces of the MarketFeed tests: a fast config, frames, a recording callback, a clock."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from vincent.services.trade_manager.backoff import BackoffPolicy
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeedConfig

WAIT_S = 5.0
FAST = MarketFeedConfig(
    ping_interval_s=0.05,
    stale_after_s=2.0,
    close_timeout_s=0.2,
    reconnect_backoff=BackoffPolicy(min_delay_s=0.01, max_delay_s=0.05),
)


def book_frame(token_id: str, bid: str, ask: str) -> str:
    return json.dumps(
        {
            "event_type": "book",
            "asset_id": token_id,
            "market": "0xmarket",
            "bids": [{"price": bid, "size": "10"}],
            "asks": [{"price": ask, "size": "10"}],
            "timestamp": "1757908892351",
            "hash": "0x1",
        }
    )


class Recorder:
    """The callback: records what changed and the best bid it could read at that moment."""

    def __init__(self, books: OrderBooks) -> None:
        self.books = books
        self.calls: asyncio.Queue[dict[str, Decimal | None]] = asyncio.Queue()

    def __call__(self, changed: frozenset[str]) -> None:
        seen = {}
        for token_id in changed:
            top = self.books.top(token_id)
            seen[token_id] = None if top is None else top.best_bid
        self.calls.put_nowait(seen)


def feed_tasks() -> set[asyncio.Task[object]]:
    """Return the running tasks of any MarketFeed (they are all named market-feed-…)."""
    return {task for task in asyncio.all_tasks() if task.get_name().startswith("market-feed-")}
