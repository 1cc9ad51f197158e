"""The backend's one market-data feed: Polymarket's market WebSocket, sharded by token.

``MarketFeed`` is the facade the worker uses: it owns the desired token set (sharded by
``feed_shards``), one ``feed_connection.ShardConnection`` task per shard, merging half-empty
shards, the lifecycle and the status. Frames are applied by ``feed_frames.FrameHandler`` and
reach ``on_prices`` synchronously. Every connection task is owned here; ``stop`` cancels and
awaits them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable

from vincent.services.trade_manager.backoff import RandomFn
from vincent.services.trade_manager.feed_config import (
    POLYMARKET_MARKET_WS_URL,
    Coverage,
    FeedCounters,
    FeedState,
    MarketFeedConfig,
    MarketFeedStatus,
    ShardStatus,
)
from vincent.services.trade_manager.feed_connection import ShardConnection
from vincent.services.trade_manager.feed_frames import FrameHandler, FrameParser, OnPrices
from vincent.services.trade_manager.feed_shards import ShardChange, ShardMap
from vincent.services.trade_manager.loop_share import FEED_LOOP_SHARE_S, LoopShare
from vincent.services.trade_manager.market_messages import parse_frame
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.types import Clock, SystemClock

__all__ = [
    "POLYMARKET_MARKET_WS_URL",
    "Coverage",
    "FeedState",
    "FrameParser",
    "MarketFeed",
    "MarketFeedConfig",
    "MarketFeedStatus",
    "OnPrices",
    "ShardStatus",
]

logger = logging.getLogger(__name__)

StatusPredicate = Callable[[MarketFeedStatus], bool]


class MarketFeed:
    """Keeps ``books`` fed for a set of tokens and tells ``on_prices`` what changed.

    ``parse_frame`` replaces the frame parser (tests inject failures through it).
    """

    def __init__(
        self,
        url: str,
        books: OrderBooks,
        on_prices: OnPrices,
        *,
        config: MarketFeedConfig | None = None,
        clock: Clock | None = None,
        random_fn: RandomFn = random.random,
        parse_frame: FrameParser = parse_frame,
        yield_while: Callable[[], bool] = lambda: False,
        loop_share_s: float = FEED_LOOP_SHARE_S,
    ) -> None:
        """``yield_while``: whether a frame's reader should give the event loop back after
        each frame (the worker: while fires are on their way to their POST, so a backlog of
        frames does not hold a fire's next step; ``ShardConnection``). ``loop_share_s``:
        how long the readers may hold the loop in a row, by ``clock`` (``LoopShare``); a
        reader gives it back after the frame that reached it."""
        self._url = url
        self._yield_while = yield_while
        self._books = books
        self._config = config or MarketFeedConfig()
        self._clock: Clock = clock or SystemClock()
        self._loop_share = LoopShare(loop_share_s, self._clock.monotonic)
        self._random_fn = random_fn
        self._state = FeedState.STOPPED
        self._shard_map = ShardMap(self._config.max_assets_per_connection)
        self._connections: dict[int, ShardConnection] = {}
        # Connections a merge closed, open until their tokens are carried elsewhere.
        self._draining: list[ShardConnection] = []
        self._tasks: dict[asyncio.Task[None], ShardConnection] = {}
        self._waiters: list[tuple[StatusPredicate, asyncio.Future[None]]] = []
        self._counters = FeedCounters()
        self._frames = FrameHandler(
            books,
            on_prices,
            self._counters,
            waiters=self._waiters,
            notify=self._notify,
            parse=parse_frame,
        )

    # Lifecycle

    def start(self) -> None:
        """Open a connection per shard. Raise ``RuntimeError`` unless stopped."""
        if self._state is not FeedState.STOPPED:
            raise RuntimeError(f"market feed can only start when stopped, was {self._state}")
        self._state = FeedState.RUNNING
        for connection in self._connections.values():
            self._spawn(connection)
        logger.info("market_feed.started", extra={"subscriptions": self._shard_map.token_count()})
        self._notify()

    async def stop(self) -> None:
        """Cancel every connection task and await them (``stop_timeout_s``)."""
        if self._state is not FeedState.RUNNING:
            return
        self._state = FeedState.STOPPING
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._config.stop_timeout_s)
            if pending:
                logger.error(
                    "market_feed.stop_pending",
                    extra={"tasks": sorted(task.get_name() for task in pending)},
                )
        for connection in self._draining:
            self._retire(connection)
        self._draining.clear()
        self._state = FeedState.STOPPED
        logger.info("market_feed.stopped")
        self._notify()

    async def __aenter__(self) -> MarketFeed:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # Subscriptions

    def tokens(self) -> frozenset[str]:
        return self._shard_map.tokens()

    def subscribe(self, token_ids: Iterable[str]) -> None:
        self.update_tokens(added=token_ids)

    def unsubscribe(self, token_ids: Iterable[str]) -> None:
        self.update_tokens(removed=token_ids)

    def update_tokens(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """Subscribe ``added`` and unsubscribe ``removed``, as ``set_tokens`` would, in work
        proportional to the change rather than to every token watched."""
        self._apply(self._shard_map.update(added, removed))

    def set_tokens(self, token_ids: Iterable[str]) -> None:
        """Make the subscription exactly ``token_ids``.

        Live connections get subscribe/unsubscribe diffs (no reconnect). Tokens stay on their
        connection; new ones fill connections with room, then open new ones. When removals
        leave more connections than the tokens need, the smallest close and their tokens move:
        subscribed on the connection that takes them before the old one closes.
        """
        self._apply(self._shard_map.set_tokens(token_ids))

    def _apply(self, change: ShardChange) -> None:
        self._books.untrack(change.removed_tokens)
        self._books.track(change.added_tokens)
        for number in change.closed:
            self._retire(self._connections.pop(number))
        for number in change.opened:
            connection = self._connections[number] = self._new_connection(number)
            if self._state is FeedState.RUNNING:
                self._spawn(connection)
        for number in change.changed:
            self._connections[number].wake.set()
        if change.removed_tokens:
            self._merge()
            # A draining connection may now hold only tokens nobody wants.
            self._finish_draining()
        self._notify()

    def _merge(self) -> None:
        merge = self._shard_map.rebalance()
        if not merge.closed:
            return
        for number in merge.changed:
            self._connections[number].wake.set()
        for number, held in merge.closed.items():
            connection = self._connections.pop(number)
            # No longer a view of the shard map: keep carrying what it held until then.
            connection.desired = held
            if self._state is FeedState.RUNNING and connection.live:
                self._draining.append(connection)
            else:
                self._retire(connection)
        logger.info(
            "market_feed.shards_merged",
            extra={
                "closed": sorted(merge.closed),
                "moved_tokens": sum(len(held) for held in merge.closed.values()),
                "connections": len(self._connections),
            },
        )

    def _finish_draining(self) -> None:
        """Close each draining connection once every token it held that is still wanted is
        carried by a live connection that has sent its subscription."""
        if not self._draining:
            return
        still: list[ShardConnection] = []
        for connection in self._draining:
            if self._covered(connection.desired):
                self._retire(connection)
            else:
                still.append(connection)
        self._draining[:] = still

    def _covered(self, token_ids: Iterable[str]) -> bool:
        for token_id in token_ids:
            number = self._shard_map.shard_of(token_id)
            if number is not None and not self._connections[number].carries(token_id):
                return False
        return True

    # Status

    def coverage(self, token_id: str, now_s: float) -> Coverage:
        """Whether the feed covers ``token_id`` live at monotonic ``now_s`` (no I/O, O(1)).

        ``Coverage.LIVE``: its connection is open, within its heartbeat deadline, and has
        delivered the token's book since it (re)subscribed it, so a quiet book is a quiet
        market. Only the connection the token is assigned to counts (not a draining one).
        """
        if self._state is not FeedState.RUNNING:
            return Coverage.DOWN
        number = self._shard_map.shard_of(token_id)
        if number is None:
            return Coverage.NOT_SUBSCRIBED
        return self._connections[number].coverage(token_id, now_s)

    def live_tokens(self, now_s: float) -> frozenset[str]:
        """Every token whose ``coverage`` is ``LIVE`` at ``now_s``, by set operations per
        connection (the poll tick asks for all its tokens at once)."""
        if self._state is not FeedState.RUNNING:
            return frozenset()
        return frozenset().union(
            *(connection.live_tokens(now_s) for connection in self._connections.values())
        )

    def status(self) -> MarketFeedStatus:
        now_s = self._clock.monotonic()
        shards = tuple(connection.status(now_s) for connection in self._connections.values())
        live = sum(1 for shard in shards if shard.connected)
        draining = tuple(connection.status(now_s, draining=True) for connection in self._draining)
        last = self._frames.ts_last_frame_s
        counters = self._counters
        return MarketFeedStatus(
            state=self._state,
            connected=self._state is FeedState.RUNNING and bool(shards) and live == len(shards),
            connections=live,
            wanted_connections=len(shards),
            subscriptions=self._shard_map.token_count(),
            messages_received=counters.messages_received,
            malformed_messages=counters.malformed_messages,
            reconnects=counters.reconnects,
            stalls=counters.stalls,
            callback_errors=counters.callback_errors,
            last_message_age_s=None if last is None else now_s - last,
            connection_crashes=counters.connection_crashes,
            shards=shards + draining,
        )

    def shard_tokens(self) -> tuple[frozenset[str], ...]:
        """Return each connection's tokens, in connection order."""
        return tuple(frozenset(connection.desired) for connection in self._connections.values())

    async def wait_for_status(self, predicate: StatusPredicate) -> MarketFeedStatus:
        """Wait until ``predicate(status())`` holds; bound it with ``asyncio.timeout``."""
        status = self.status()
        if predicate(status):
            return status
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            await future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return self.status()

    def _notify(self) -> None:
        if not self._waiters:
            return
        status = self.status()
        for predicate, future in self._waiters:
            if not future.done() and predicate(status):
                future.set_result(None)

    # Connections and their tasks

    def _new_connection(self, number: int) -> ShardConnection:
        return ShardConnection(
            number,
            self._shard_map.desired(number),
            url=self._url,
            config=self._config,
            clock=self._clock,
            random_fn=self._random_fn,
            frames=self._frames,
            counters=self._counters,
            on_change=self._connection_changed,
            yield_while=self._yield_while,
            loop_share=self._loop_share,
        )

    def _connection_changed(self, connection: ShardConnection) -> None:
        self._finish_draining()
        self._notify()

    def _retire(self, connection: ShardConnection) -> None:
        # The task stays tracked in self._tasks until it has finished closing.
        for task, owner in self._tasks.items():
            if owner is connection:
                task.cancel()

    def _spawn(self, connection: ShardConnection) -> None:
        task = asyncio.get_running_loop().create_task(
            connection.run(), name=f"market-feed-shard-{connection.number}"
        )
        self._tasks[task] = connection
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # run() restarts after any Exception; only a BaseException gets here.
            self._counters.connection_crashes += 1
            logger.error(
                "market_feed.task_failed",
                exc_info=task.exception(),
                extra={"task": task.get_name()},
            )
