"""MarketFeed keeps every shard covered: crashed connections restart, status tells the truth."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.engine_core.fake_market_server import FakeMarketServer
from tests.engine_core.feed_support import FAST, WAIT_S, Recorder, book_frame
from vincent.services.trade_manager.backoff import BackoffPolicy
from vincent.services.trade_manager.market_messages import ParsedFrame, parse_frame
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeed

BUG_FRAME = "CRASH ME"


def buggy_parser(frame: str | bytes) -> ParsedFrame:
    """The real parser, with a bug that only ``BUG_FRAME`` reaches."""
    if frame in (BUG_FRAME, BUG_FRAME.encode()):  # text frames arrive as bytes
        raise RuntimeError("parser bug")
    return parse_frame(frame)


class ManualClock:
    """Monotonic time that moves only when the test says so (no ping is ever due)."""

    def __init__(self) -> None:
        self.monotonic_s = 1000.0

    def now(self) -> datetime:
        return datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.monotonic_s


@pytest.fixture
async def server() -> AsyncIterator[FakeMarketServer]:
    async with FakeMarketServer() as running:
        yield running


async def test_a_crashed_connection_is_logged_counted_and_restarted(
    server: FakeMarketServer, caplog: pytest.LogCaptureFixture
) -> None:
    books = OrderBooks()
    recorder = Recorder(books)
    feed = MarketFeed(
        server.url, books, recorder, config=FAST, random_fn=lambda: 0.0, parse_frame=buggy_parser
    )
    feed.set_tokens(["a", "b"])

    with caplog.at_level(logging.ERROR):
        async with feed, asyncio.timeout(WAIT_S):
            first = await server.next_connection()
            await first.next_message()
            await first.send(BUG_FRAME)
            await first.closed.wait()
            second = await server.next_connection()
            resubscribe = await second.next_message()
            status = await feed.wait_for_status(lambda status: status.connected)
            await second.send(book_frame("a", "0.4", "0.6"))
            call = await recorder.calls.get()

    assert resubscribe["assets_ids"] == ["a", "b"]
    assert call == {"a": Decimal("0.4")}
    assert (status.connection_crashes, status.reconnects) == (1, 1)
    crashes = [r for r in caplog.records if r.msg == "market_feed.connection_crashed"]
    assert len(crashes) == 1
    assert crashes[0].exc_info is not None
    assert "parser bug" in str(crashes[0].exc_info[1])


async def test_a_crash_on_one_shard_leaves_the_other_connection_alone(
    server: FakeMarketServer,
) -> None:
    books = OrderBooks()
    config = dataclasses.replace(FAST, max_assets_per_connection=1)
    feed = MarketFeed(
        server.url,
        books,
        Recorder(books),
        config=config,
        random_fn=lambda: 0.0,
        parse_frame=buggy_parser,
    )
    feed.set_tokens(["a", "b"])

    async with feed, asyncio.timeout(WAIT_S):
        connections = [await server.next_connection(), await server.next_connection()]
        by_token = {(await c.next_message())["assets_ids"][0]: c for c in connections}
        await by_token["a"].send(BUG_FRAME)
        replacement = await server.next_connection()
        resubscribe = await replacement.next_message()
        status = await feed.wait_for_status(lambda status: status.connected)

    assert resubscribe["assets_ids"] == ["a"]
    assert by_token["a"].closed.is_set()
    assert status.connection_crashes == 1
    assert server.connections.empty()


async def test_connected_means_every_wanted_shard_is_live(server: FakeMarketServer) -> None:
    books = OrderBooks()
    # A slow reconnect keeps the dropped shard down long enough to look at.
    config = dataclasses.replace(
        FAST,
        max_assets_per_connection=1,
        reconnect_backoff=BackoffPolicy(min_delay_s=0.3, max_delay_s=0.3),
    )
    feed = MarketFeed(server.url, books, Recorder(books), config=config, random_fn=lambda: 0.0)
    feed.set_tokens(["a", "b"])
    assert not feed.status().connected

    async with feed, asyncio.timeout(WAIT_S):
        connections = [await server.next_connection(), await server.next_connection()]
        up = await feed.wait_for_status(lambda status: status.connected)
        await connections[0].drop()
        half = await feed.wait_for_status(lambda status: status.connections == 1)
        again = await feed.wait_for_status(lambda status: status.connected)

    assert (up.connections, up.wanted_connections) == (2, 2)
    assert not half.connected
    assert [shard.connected for shard in half.shards].count(False) == 1
    assert (again.connections, again.reconnects) == (2, 1)
    assert not feed.status().connected


async def test_status_gives_each_shard_its_last_message_age(server: FakeMarketServer) -> None:
    books = OrderBooks()
    clock = ManualClock()
    config = dataclasses.replace(FAST, max_assets_per_connection=1)
    recorder = Recorder(books)
    feed = MarketFeed(server.url, books, recorder, config=config, clock=clock)
    feed.set_tokens(["a", "b"])

    async with feed, asyncio.timeout(WAIT_S):
        connections = [await server.next_connection(), await server.next_connection()]
        by_token = {(await c.next_message())["assets_ids"][0]: c for c in connections}
        await feed.wait_for_status(lambda status: status.connected)
        await by_token["b"].send(book_frame("b", "0.4", "0.6"))
        await recorder.calls.get()
        clock.monotonic_s += 2.5
        status = feed.status()

    ages = {shard.number: shard.last_message_age_s for shard in status.shards}
    assert sorted(ages.values(), key=str) == [2.5, None]
    assert status.last_message_age_s == 2.5
    assert [shard.subscriptions for shard in status.shards] == [1, 1]
