"""MarketFeed against a real WebSocket server on loopback (tests/engine_core/fake_market_server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.engine_core.fake_market_server import FakeMarketServer
from tests.engine_core.feed_support import FAST, WAIT_S, Recorder, book_frame, feed_tasks
from vincent.services.trade_manager.backoff import BackoffPolicy
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import (
    FeedState,
    MarketFeed,
    MarketFeedConfig,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeMarketServer]:
    async with FakeMarketServer() as running:
        yield running


def _feed(
    server: FakeMarketServer, config: MarketFeedConfig = FAST
) -> tuple[MarketFeed, OrderBooks, Recorder]:
    books = OrderBooks()
    recorder = Recorder(books)
    feed = MarketFeed(server.url, books, recorder, config=config, random_fn=lambda: 0.0)
    return feed, books, recorder


async def test_first_message_subscribes_every_token(server: FakeMarketServer) -> None:
    feed, _, _ = _feed(server)
    feed.set_tokens(["b", "a"])

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        first = await connection.next_message()
        status = await feed.wait_for_status(lambda status: status.connected)

    assert first == {"assets_ids": ["a", "b"], "type": "market", "custom_feature_enabled": True}
    assert (status.connections, status.subscriptions) == (1, 2)


async def test_token_changes_are_diffs_on_the_live_connection(server: FakeMarketServer) -> None:
    feed, _, _ = _feed(server)
    feed.set_tokens(["a", "b"])

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        feed.set_tokens(["b", "c"])
        unsubscribe = await connection.next_message()
        subscribe = await connection.next_message()
        feed.subscribe(["d"])
        feed.unsubscribe(["b"])
        later = [await connection.next_message(), await connection.next_message()]

    assert unsubscribe == {"assets_ids": ["a"], "operation": "unsubscribe"}
    assert subscribe == {"assets_ids": ["c"], "operation": "subscribe"}
    # Changes made before the connection's writer runs again go out together.
    assert later == [
        {"assets_ids": ["b"], "operation": "unsubscribe"},
        {"assets_ids": ["d"], "operation": "subscribe"},
    ]
    assert feed.tokens() == {"c", "d"}
    assert server.connections.empty()
    assert feed.status().reconnects == 0


async def test_pings_are_sent_and_pongs_keep_the_connection(server: FakeMarketServer) -> None:
    feed, _, _ = _feed(server)
    feed.set_tokens(["a"])

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        for _ in range(3):
            await connection.pings.get()
        status = await feed.wait_for_status(lambda status: status.messages_received >= 3)

    assert (status.reconnects, status.stalls, status.malformed_messages) == (0, 0, 0)
    assert status.last_message_age_s is not None
    assert server.connections.empty()


async def test_a_dropped_connection_reconnects_and_resubscribes_everything(
    server: FakeMarketServer,
) -> None:
    feed, _, _ = _feed(server)
    feed.set_tokens(["a", "b"])

    async with feed, asyncio.timeout(WAIT_S):
        first = await server.next_connection()
        await first.next_message()
        feed.subscribe(["c"])
        await first.next_message()
        await first.drop()
        second = await server.next_connection()
        resubscribe = await second.next_message()
        status = await feed.wait_for_status(lambda status: status.connected)

    assert resubscribe["assets_ids"] == ["a", "b", "c"]
    assert resubscribe["type"] == "market"
    assert status.reconnects >= 1


async def test_a_stalled_connection_is_detected_and_replaced(server: FakeMarketServer) -> None:
    config = MarketFeedConfig(
        ping_interval_s=0.05,
        stale_after_s=0.3,
        close_timeout_s=0.1,
        reconnect_backoff=BackoffPolicy(min_delay_s=0.01, max_delay_s=0.05),
    )
    feed, _, _ = _feed(server, config)
    feed.set_tokens(["a"])
    server.answer_pings = False

    async with feed, asyncio.timeout(WAIT_S):
        stalled = await server.next_connection()
        await stalled.next_message()
        replacement = await server.next_connection()
        server.answer_pings = True
        resubscribe = await replacement.next_message()
        await stalled.closed.wait()
        status = await feed.wait_for_status(lambda status: status.stalls >= 1)

    assert resubscribe["assets_ids"] == ["a"]
    assert status.reconnects >= 1


async def test_600_tokens_are_sharded_over_two_connections(server: FakeMarketServer) -> None:
    feed, _, _ = _feed(server)
    tokens = {f"{number:077d}" for number in range(600)}
    feed.set_tokens(tokens)

    async with feed, asyncio.timeout(WAIT_S):
        connections = [await server.next_connection(), await server.next_connection()]
        firsts = [await connection.next_message() for connection in connections]
        status = await feed.wait_for_status(lambda status: status.connected)
        sizes = sorted(len(first["assets_ids"]) for first in firsts)
        subscribed = [set(first["assets_ids"]) for first in firsts]
        # Emptying the second shard closes its connection; the first is untouched.
        small = min(subscribed, key=len)
        feed.unsubscribe(small)
        closing = connections[[set(f["assets_ids"]) for f in firsts].index(small)]
        await closing.closed.wait()
        after = await feed.wait_for_status(lambda status: status.wanted_connections == 1)

    assert sizes == [100, 500]
    assert subscribed[0].isdisjoint(subscribed[1])
    assert subscribed[0] | subscribed[1] == tokens
    assert (status.connections, status.subscriptions) == (2, 600)
    assert (after.connections, after.subscriptions) == (1, 500)
    assert [len(shard) for shard in feed.shard_tokens()] == [500]


async def test_frames_reach_the_books_then_the_callback(server: FakeMarketServer) -> None:
    feed, books, recorder = _feed(server)
    feed.set_tokens(["a", "b"])

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        await connection.send(f"[{book_frame('a', '0.4', '0.6')},{book_frame('b', '0.3', '0.5')}]")
        first = [await recorder.calls.get(), await recorder.calls.get()]
        await connection.send(book_frame("zzz", "0.1", "0.2"))
        await connection.send(book_frame("a", "0.45", "0.6"))
        later = await recorder.calls.get()

    assert first == [{"a": Decimal("0.4")}, {"b": Decimal("0.3")}]
    # The untracked token changed nothing; the callback saw the new book.
    assert later == {"a": Decimal("0.45")}
    assert books.top("zzz") is None


async def test_every_event_of_a_batched_frame_is_delivered(server: FakeMarketServer) -> None:
    feed, _, recorder = _feed(server)
    feed.set_tokens(["a"])
    path = ["0.5", "0.2", "0.5"]

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        await connection.send("[" + ",".join(book_frame("a", bid, "0.6") for bid in path) + "]")
        seen = [await recorder.calls.get() for _ in path]

    # The dip to 0.2 is seen even though the same frame recovers from it.
    assert seen == [{"a": Decimal(bid)} for bid in path]


async def test_malformed_frames_are_counted_and_ignored(server: FakeMarketServer) -> None:
    feed, _, recorder = _feed(server)
    feed.set_tokens(["a"])

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        for frame in ("{oops", '{"event_type": "book"}', "[1, 2]", book_frame("a", "7", "0.6")):
            await connection.send(frame)
        await connection.send("INVALID OPERATION")
        await connection.send(book_frame("a", "0.4", "0.6"))
        call = await recorder.calls.get()
        status = feed.status()

    assert call == {"a": Decimal("0.4")}
    assert status.malformed_messages == 5
    assert (status.reconnects, status.connected) == (0, True)


async def test_a_text_frame_that_is_not_utf8_is_malformed_and_keeps_the_connection(
    server: FakeMarketServer,
) -> None:
    # Text frames reach the parser as bytes (websockets does not decode them): invalid UTF-8
    # is caught by the parse and counted, like bad JSON, and the connection goes on.
    feed, _, recorder = _feed(server)
    feed.set_tokens(["a"])
    bad = book_frame("a", "0.45", "0.6").encode().replace(b'"0x1"', b'"0x\xff"')

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        await connection.ws.send(bad, text=True)
        await connection.ws.send(b"\xc3\x28", text=True)
        await connection.send(book_frame("a", "0.4", "0.6"))
        call = await recorder.calls.get()
        status = feed.status()

    assert call == {"a": Decimal("0.4")}
    assert status.malformed_messages == 2
    assert (status.reconnects, status.connected) == (0, True)


async def test_a_failing_callback_is_counted_and_the_feed_goes_on(
    server: FakeMarketServer,
) -> None:
    books = OrderBooks()
    calls: list[frozenset[str]] = []

    def explode(changed: frozenset[str]) -> None:
        calls.append(changed)
        raise RuntimeError("consumer bug")

    feed = MarketFeed(server.url, books, explode, config=FAST, random_fn=lambda: 0.0)
    feed.set_tokens(["a"])

    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        await connection.send(book_frame("a", "0.4", "0.6"))
        await connection.send(book_frame("a", "0.41", "0.6"))
        status = await feed.wait_for_status(lambda status: status.callback_errors >= 2)

    assert len(calls) == 2
    assert (status.reconnects, status.connected) == (0, True)


async def test_stop_cancels_every_task_and_closes_connections(server: FakeMarketServer) -> None:
    feed, _, _ = _feed(server)
    feed.set_tokens({f"{number:077d}" for number in range(600)})
    feed.start()
    with pytest.raises(RuntimeError, match="only start when stopped"):
        feed.start()

    async with asyncio.timeout(WAIT_S):
        connections = [await server.next_connection(), await server.next_connection()]
        await feed.wait_for_status(lambda status: status.connected)
        assert feed_tasks()
        await feed.stop()
        for connection in connections:
            await connection.closed.wait()

    assert feed_tasks() == set()
    assert feed.status().state is FeedState.STOPPED
    assert feed.status().connections == 0


async def test_an_unreachable_exchange_is_retried_until_stop() -> None:
    async with FakeMarketServer() as gone:
        url = gone.url
    books = OrderBooks()
    feed = MarketFeed(url, books, lambda changed: None, config=FAST, random_fn=lambda: 0.0)
    feed.set_tokens(["a"])

    async with feed, asyncio.timeout(WAIT_S):
        status = await feed.wait_for_status(lambda status: status.reconnects >= 3)

    assert not status.connected
    assert feed_tasks() == set()


async def _deliver_as_one_backlog(
    feed: MarketFeed, server: FakeMarketServer, frames: list[str], handled: asyncio.Event
) -> None:
    """Run ``feed`` on token "a" and send it ``frames`` as one backlog (all received
    before its reader gets any of them); return once ``handled`` is set."""
    feed.set_tokens(["a"])
    async with feed, asyncio.timeout(WAIT_S):
        connection = await server.next_connection()
        await connection.next_message()
        await feed.wait_for_status(lambda status: status.connected)
        (shard,) = feed._connections.values()
        assert shard._ws is not None
        shard._ws.transport.pause_reading()
        for frame in frames:
            await connection.send(frame)
        shard._ws.transport.resume_reading()
        await handled.wait()


@pytest.mark.parametrize("fire_pending", [True, False])
async def test_a_backlog_of_frames_waits_for_a_fire_on_its_way(
    server: FakeMarketServer, fire_pending: bool
) -> None:
    # A fire started by the first frame of a backlog runs its next step after at most a
    # frame more while it is pending (``yield_while``); with none pending (and no bound on
    # the feed's share of the loop) the reader keeps the loop for every frame websockets has
    # queued (here ~10) before it pauses.
    books = OrderBooks()
    backlog = 200
    handled: list[frozenset[str]] = []
    all_handled = asyncio.Event()
    fire_saw: list[int] = []
    fires: list[asyncio.Task[None]] = []

    async def fire() -> None:
        fire_saw.append(len(handled))

    def on_prices(changed: frozenset[str]) -> None:
        handled.append(changed)
        if len(handled) == 1:
            fires.append(asyncio.get_running_loop().create_task(fire()))
        if len(handled) == backlog:
            all_handled.set()

    feed = MarketFeed(
        server.url,
        books,
        on_prices,
        config=FAST,
        random_fn=lambda: 0.0,
        yield_while=lambda: fire_pending and not fire_saw,
        loop_share_s=float("inf"),
    )
    frames = [book_frame("a", f"0.{10 + number % 80}", "0.95") for number in range(backlog)]
    await _deliver_as_one_backlog(feed, server, frames, all_handled)

    assert len(fire_saw) == 1
    if fire_pending:
        assert fire_saw[0] <= 2  # the triggering frame, at most one more
    else:
        assert fire_saw[0] > 5  # websockets hands the reader a run of queued frames


class SteppingClock:
    """Monotonic time moved by the test's callback: each frame "takes" ``frame_s``."""

    def __init__(self) -> None:
        self.monotonic_s = 1000.0

    def now(self) -> datetime:
        return datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.monotonic_s


async def test_a_backlog_of_frames_gives_the_loop_back_once_it_held_it_for_its_share(
    server: FakeMarketServer,
) -> None:
    # No fire pending: the reader still hands the loop back once the feed has held it for
    # ``loop_share_s`` in a row (here 1 ms, frames of 0.4 ms by the test's clock), so a
    # task made ready by the first frame runs after the third, not after the whole run of
    # queued frames; and every frame is handled, in the order sent.
    books = OrderBooks()
    clock = SteppingClock()
    backlog = 200
    sent = [Decimal(f"0.{10 + number % 80}") for number in range(backlog)]
    seen: list[Decimal | None] = []
    all_handled = asyncio.Event()
    task_saw: list[int] = []
    tasks: list[asyncio.Task[None]] = []

    async def ready_task() -> None:
        task_saw.append(len(seen))

    def on_prices(changed: frozenset[str]) -> None:
        clock.monotonic_s += 0.0004
        top = books.top("a")
        seen.append(None if top is None else top.best_bid)
        if len(seen) == 1:
            tasks.append(asyncio.get_running_loop().create_task(ready_task()))
        if len(seen) == backlog:
            all_handled.set()

    feed = MarketFeed(
        server.url,
        books,
        on_prices,
        config=FAST,
        clock=clock,
        random_fn=lambda: 0.0,
        loop_share_s=0.001,
    )
    frames = [book_frame("a", str(price), "0.95") for price in sent]
    await _deliver_as_one_backlog(feed, server, frames, all_handled)

    assert task_saw == [3]  # 0.4 + 0.4 + 0.4 ms reached the 1 ms share
    assert seen == sent
