"""Merging half-empty shards against a real WebSocket server: no token is ever unwatched."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.engine_core.fake_market_server import FakeConnection, FakeMarketServer
from tests.engine_core.feed_support import FAST, WAIT_S, Recorder, book_frame, feed_tasks
from vincent.services.trade_manager.backoff import BackoffPolicy
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeed, MarketFeedConfig

THREE_PER_CONNECTION = dataclasses.replace(FAST, max_assets_per_connection=3)


@pytest.fixture
async def server() -> AsyncIterator[FakeMarketServer]:
    async with FakeMarketServer() as running:
        yield running


def _feed(
    server: FakeMarketServer, config: MarketFeedConfig = THREE_PER_CONNECTION
) -> tuple[MarketFeed, Recorder]:
    books = OrderBooks()
    recorder = Recorder(books)
    feed = MarketFeed(server.url, books, recorder, config=config, random_fn=lambda: 0.0)
    return feed, recorder


async def _two_connections(
    server: FakeMarketServer,
) -> dict[str, FakeConnection]:
    """Return the connections by their first token ("a" and "d")."""
    connections = [await server.next_connection(), await server.next_connection()]
    return {(await c.next_message())["assets_ids"][0]: c for c in connections}


def _position(events: list[tuple[int, dict[str, Any] | None]], number: int, token: str) -> int:
    """Return where connection ``number`` was first told about ``token``."""
    for index, (connection, message) in enumerate(events):
        if connection == number and message is not None and token in message["assets_ids"]:
            return index
    raise AssertionError(f"connection {number} never subscribed {token}")


async def test_a_half_empty_shard_moves_its_tokens_then_closes(server: FakeMarketServer) -> None:
    feed, recorder = _feed(server)
    feed.set_tokens(["a", "b", "c", "d", "e", "f"])

    async with feed, asyncio.timeout(WAIT_S):
        by_first = await _two_connections(server)
        await feed.wait_for_status(lambda status: status.connected)
        feed.unsubscribe(["a", "b", "d"])
        source, target = by_first["a"], by_first["d"]
        await source.closed.wait()
        status = await feed.wait_for_status(lambda status: len(status.shards) == 1)
        await target.send(book_frame("c", "0.4", "0.6"))
        call = await recorder.calls.get()

    # The moved token was subscribed on the target before the source closed.
    closed_at = server.events.index((source.number, None))
    assert _position(server.events, target.number, "c") < closed_at
    assert {"assets_ids": ["c"], "operation": "subscribe"} in [
        message for number, message in server.events if number == target.number
    ]
    assert feed.shard_tokens() == (frozenset({"c", "e", "f"}),)
    assert (status.connected, status.connections, status.wanted_connections) == (True, 1, 1)
    assert call == {"c": Decimal("0.4")}
    assert status.reconnects == 0
    assert server.connections.empty()


async def test_a_merge_keeps_the_source_open_until_the_target_reconnects(
    server: FakeMarketServer,
) -> None:
    # The target's reconnect is slow enough to look at the draining source meanwhile.
    config = dataclasses.replace(
        THREE_PER_CONNECTION, reconnect_backoff=BackoffPolicy(min_delay_s=0.3, max_delay_s=0.3)
    )
    feed, _ = _feed(server, config)
    feed.set_tokens(["a", "b", "c", "d", "e", "f"])

    async with feed, asyncio.timeout(WAIT_S):
        by_first = await _two_connections(server)
        source, target = by_first["a"], by_first["d"]
        await feed.wait_for_status(lambda status: status.connected)
        await target.drop()
        await feed.wait_for_status(lambda status: status.connections == 1)
        feed.unsubscribe(["a", "b", "d"])
        waiting = feed.status()
        replacement = await server.next_connection()
        resubscribe = await replacement.next_message()
        await source.closed.wait()
        status = await feed.wait_for_status(lambda status: status.connected)

    assert [shard.draining for shard in waiting.shards] == [False, True]
    assert not waiting.connected
    assert resubscribe["assets_ids"] == ["c", "e", "f"]
    # The source closed only after the replacement had subscribed its moved token.
    assert _position(server.events, replacement.number, "c") < server.events.index(
        (source.number, None)
    )
    assert (status.connections, status.wanted_connections, len(status.shards)) == (1, 1, 1)


async def test_a_draining_connection_closes_once_its_tokens_are_unwanted(
    server: FakeMarketServer,
) -> None:
    # The target stays down for the whole test: only the unsubscribe can close the source.
    config = dataclasses.replace(
        THREE_PER_CONNECTION, reconnect_backoff=BackoffPolicy(min_delay_s=30.0, max_delay_s=30.0)
    )
    feed, _ = _feed(server, config)
    feed.set_tokens(["a", "b", "c", "d", "e", "f"])

    async with feed, asyncio.timeout(WAIT_S):
        by_first = await _two_connections(server)
        source, target = by_first["a"], by_first["d"]
        await feed.wait_for_status(lambda status: status.connected)
        await target.drop()
        await feed.wait_for_status(lambda status: status.connections == 1)
        feed.unsubscribe(["a", "b", "d"])
        draining = feed.status()
        # The source has sent its own diff, so nothing on it will change again.
        assert await source.next_message() == {"assets_ids": ["a", "b"], "operation": "unsubscribe"}
        feed.unsubscribe(["c"])
        await source.closed.wait()
        status = feed.status()

    assert [shard.draining for shard in draining.shards] == [False, True]
    assert [shard.draining for shard in status.shards] == [False]
    assert feed.shard_tokens() == (frozenset({"e", "f"}),)
    assert server.connections.empty()


async def test_a_merge_while_stopped_only_reassigns_tokens() -> None:
    feed = MarketFeed(
        "ws://127.0.0.1:9", OrderBooks(), lambda changed: None, config=THREE_PER_CONNECTION
    )
    feed.set_tokens(["a", "b", "c", "d", "e", "f"])
    feed.unsubscribe(["a", "b", "d"])

    assert feed.shard_tokens() == (frozenset({"c", "e", "f"}),)
    assert feed.status().wanted_connections == 1
    assert feed_tasks() == set()
