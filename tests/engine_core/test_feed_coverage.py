"""Whether the feed covers a token live: the pure decision (``feed_config.coverage_of``), the
frame handler marking snapshots, and ``MarketFeed.coverage`` against a real WebSocket server
through connects, snapshots, subscription diffs, drops, silence and stop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.engine_core.fake_market_server import FakeMarketServer
from tests.engine_core.feed_support import FAST, WAIT_S, Recorder, book_frame
from vincent.services.trade_manager.feed_config import (
    Coverage,
    FeedCounters,
    Heartbeat,
    coverage_of,
)
from vincent.services.trade_manager.feed_frames import FrameHandler
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeed


@given(
    open_=st.booleans(),
    silent_s=st.floats(min_value=0.0, max_value=100.0),
    subscribed=st.booleans(),
    awaiting=st.booleans(),
)
def test_only_an_open_heartbeating_connection_with_the_snapshot_covers_live(
    open_: bool, silent_s: float, subscribed: bool, awaiting: bool
) -> None:
    heartbeat = Heartbeat(ping_interval_s=10.0, stale_after_s=30.0, now_s=0.0)

    coverage = coverage_of(
        "t",
        heartbeat=heartbeat if open_ else None,
        subscribed={"t"} if subscribed else set(),
        awaiting_snapshot={"t"} if awaiting else set(),
        now_s=silent_s,
    )

    live = open_ and silent_s < 30.0 and subscribed and not awaiting
    assert (coverage is Coverage.LIVE) == live
    if not open_:
        assert coverage is Coverage.DOWN
    elif silent_s >= 30.0:
        assert coverage is Coverage.STALLED


def _price_change(token_id: str) -> str:
    change = {"asset_id": token_id, "price": "0.4", "size": "5", "side": "BUY"}
    message = {"event_type": "price_change", "market": "0xm", "price_changes": [change]}
    return json.dumps({**message, "timestamp": "1"})


def test_only_an_applied_book_snapshot_ends_the_wait() -> None:
    books = OrderBooks()
    books.track(["a", "b", "c"])
    handler = FrameHandler(books, lambda _: None, FeedCounters(), waiters=(), notify=lambda: None)
    awaiting = {"a", "b", "c"}

    handler.handle(_price_change("a"), 1.0, awaiting)
    handler.handle(book_frame("b", "0.4", "0.6"), 1.0, awaiting)
    handler.handle(book_frame("c", "2.5", "0.6"), 1.0, awaiting)  # malformed: no price

    assert awaiting == {"a", "c"}


@pytest.fixture
async def server() -> AsyncIterator[FakeMarketServer]:
    async with FakeMarketServer() as running:
        yield running


def _coverage(feed: MarketFeed, token_id: str, later_s: float = 0.0) -> Coverage:
    """The token's coverage now (or ``later_s`` from now); the poll tick's bulk answer,
    ``live_tokens``, must agree with it."""
    now_s = time.monotonic() + later_s
    coverage = feed.coverage(token_id, now_s)
    assert (token_id in feed.live_tokens(now_s)) == (coverage is Coverage.LIVE)
    return coverage


async def _wait_for(feed: MarketFeed, token_id: str, wanted: Coverage) -> None:
    await feed.wait_for_status(lambda _: feed.coverage(token_id, time.monotonic()) is wanted)


async def test_a_token_is_live_from_its_snapshot_on_the_current_connection(
    server: FakeMarketServer,
) -> None:
    books = OrderBooks()
    feed = MarketFeed(server.url, books, Recorder(books), config=FAST, random_fn=lambda: 0.0)
    feed.set_tokens(["a", "b"])
    before_start = _coverage(feed, "a")

    async with feed, asyncio.timeout(WAIT_S):
        first = await server.next_connection()
        await first.next_message()
        await feed.wait_for_status(lambda status: status.connected)
        connected = _coverage(feed, "a")
        await first.send(book_frame("a", "0.4", "0.6"))
        await _wait_for(feed, "a", Coverage.LIVE)
        a_live = _coverage(feed, "a")
        await first.send(_price_change("b"))
        await feed.wait_for_status(lambda status: status.messages_received >= 2)
        b_after_a_change = _coverage(feed, "b")
        # Silence past the heartbeat's deadline (asked about a later moment: no waiting).
        silent = _coverage(feed, "a", later_s=FAST.stale_after_s)

        # A new subscription waits for its own snapshot; an unsubscribed token is not covered.
        feed.update_tokens(added=["c"], removed=["b"])
        await first.next_message()
        await first.next_message()
        c_subscribed = _coverage(feed, "c")
        b_removed = _coverage(feed, "b")

        # A new connection proves nothing until its own snapshot arrives.
        await first.drop()
        await _wait_for(feed, "a", Coverage.DOWN)
        second = await server.next_connection()
        await second.next_message()
        await feed.wait_for_status(lambda status: status.connected)
        reconnected = _coverage(feed, "a")
        kept = books.top("a")
        await second.send(book_frame("a", "0.4", "0.6"))
        await _wait_for(feed, "a", Coverage.LIVE)
        live_again = _coverage(feed, "a")
        live_tokens = feed.live_tokens(time.monotonic())
    stopped = _coverage(feed, "a")

    assert before_start is Coverage.DOWN
    assert connected is Coverage.AWAITING_SNAPSHOT
    assert a_live is live_again is Coverage.LIVE
    assert live_tokens == {"a"}  # c still waits for its snapshot
    assert b_after_a_change is Coverage.AWAITING_SNAPSHOT
    assert silent is Coverage.STALLED
    assert c_subscribed is Coverage.AWAITING_SNAPSHOT
    assert b_removed is Coverage.NOT_SUBSCRIBED
    # Its book from the first connection is still in hand, yet it is not covered.
    assert kept is not None and kept.best_bid is not None
    assert reconnected is Coverage.AWAITING_SNAPSHOT
    assert stopped is Coverage.DOWN
