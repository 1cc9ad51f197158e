"""The backend's one market-data feed: Polymarket's market WebSocket, sharded by token.

Owns the connections: subscribing the desired token set (diffs on live connections), the
text PING heartbeat, stall detection, reconnects with backoff, and the frame path. Every
event of a frame is applied to the ``OrderBooks`` and then, synchronously, the tokens whose
prices it changed go to ``on_prices`` (the worker's hot path: no ``await`` between an event
and its rules). Each connection is a task the feed owns; ``stop`` cancels and awaits them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from enum import StrEnum

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from vincent.services.trade_manager.backoff import Backoff, BackoffPolicy, RandomFn
from vincent.services.trade_manager.feed_shards import ShardMap
from vincent.services.trade_manager.market_messages import parse_frame
from vincent.services.trade_manager.order_book import MalformedMarketData, OrderBooks
from vincent.services.trade_manager.types import Clock, SystemClock

logger = logging.getLogger(__name__)

POLYMARKET_MARKET_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"

# Called once per event with the tokens whose best bid, best ask, last trade or resolution
# it changed; the books already hold the new state.
OnPrices = Callable[[frozenset[str]], None]


@dataclass(frozen=True, slots=True)
class MarketFeedConfig:
    """Knobs of the market feed.

    ping_interval_s: text ``PING`` every 10 s (Polymarket closes silent connections).
    stale_after_s: a connection with no frame at all (not even ``PONG``) for 30 s is dead.
    max_assets_per_connection: 500, the practical venue limit; more tokens open more shards.
    connect_timeout_s / close_timeout_s: 10 s to open, 2 s for the closing handshake.
    stop_timeout_s: 5 s for ``stop`` to await the connection tasks.
    max_message_bytes: 32 MiB (the first frame holds a book per subscribed token).
    reconnect_backoff: 1 s doubling to 60 s with full jitter; reset once a frame arrives.
    use_environment_proxy: honour HTTP(S)_PROXY variables (off: connect directly).
    """

    ping_interval_s: float = 10.0
    stale_after_s: float = 30.0
    max_assets_per_connection: int = 500
    connect_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    stop_timeout_s: float = 5.0
    max_message_bytes: int = 32 * 1024 * 1024
    custom_feature_enabled: bool = True
    reconnect_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    use_environment_proxy: bool = False

    def __post_init__(self) -> None:
        if self.ping_interval_s <= 0:
            raise ValueError(f"ping_interval_s must be positive, was {self.ping_interval_s}")
        if self.stale_after_s <= self.ping_interval_s:
            raise ValueError(
                f"stale_after_s must exceed ping_interval_s ({self.ping_interval_s}), "
                f"was {self.stale_after_s}"
            )
        if self.max_assets_per_connection < 1:
            raise ValueError(
                f"max_assets_per_connection must be at least 1, "
                f"was {self.max_assets_per_connection}"
            )


class FeedState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class MarketFeedStatus:
    """An immutable snapshot of the feed. ``connected``: every wanted connection is up."""

    state: FeedState
    connected: bool
    connections: int
    wanted_connections: int
    subscriptions: int
    messages_received: int
    malformed_messages: int
    reconnects: int
    stalls: int
    callback_errors: int
    last_message_age_s: float | None


class _Stalled(Exception):
    """No frame arrived for ``stale_after_s``."""


_CONNECTION_ERRORS = (OSError, EOFError, TimeoutError, WebSocketException, _Stalled)


class _Shard:
    """One connection: the tokens it should carry (a live view of the ShardMap's set), what
    the server has been told, and the connection's task and state."""

    __slots__ = ("desired", "number", "subscribed", "task", "ts_last_traffic_s", "wake", "ws")

    def __init__(self, number: int, desired: Set[str]) -> None:
        self.number = number
        self.desired = desired
        self.subscribed: set[str] = set()
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.ts_last_traffic_s = 0.0
        self.wake = asyncio.Event()


class MarketFeed:
    """Keeps ``books`` fed for a set of tokens and tells ``on_prices`` what changed."""

    def __init__(
        self,
        url: str,
        books: OrderBooks,
        on_prices: OnPrices,
        *,
        config: MarketFeedConfig | None = None,
        clock: Clock | None = None,
        random_fn: RandomFn = random.random,
    ) -> None:
        self._url = url
        self._books = books
        self._on_prices = on_prices
        self._config = config or MarketFeedConfig()
        self._clock: Clock = clock or SystemClock()
        self._random_fn = random_fn
        self._state = FeedState.STOPPED
        self._shard_map = ShardMap(self._config.max_assets_per_connection)
        self._shards: dict[int, _Shard] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[tuple[Callable[[MarketFeedStatus], bool], asyncio.Future[None]]] = []
        self._messages_received = 0
        self._malformed_messages = 0
        self._reconnects = 0
        self._stalls = 0
        self._callback_errors = 0
        self._ts_last_message_s: float | None = None

    # Lifecycle

    def start(self) -> None:
        """Open a connection per shard. Raise ``RuntimeError`` unless stopped."""
        if self._state is not FeedState.STOPPED:
            raise RuntimeError(f"market feed can only start when stopped, was {self._state}")
        self._state = FeedState.RUNNING
        for shard in self._shards.values():
            self._spawn(shard)
        logger.info("market_feed.started", extra={"subscriptions": len(self._shard_map.tokens())})
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
        self.set_tokens(self._shard_map.tokens() | set(token_ids))

    def unsubscribe(self, token_ids: Iterable[str]) -> None:
        self.set_tokens(self._shard_map.tokens() - set(token_ids))

    def set_tokens(self, token_ids: Iterable[str]) -> None:
        """Make the subscription exactly ``token_ids``.

        Live connections get subscribe/unsubscribe diffs (no reconnect). Tokens stay on their
        connection; new ones fill connections with room, then open new ones.
        """
        change = self._shard_map.set_tokens(token_ids)
        self._books.untrack(change.removed_tokens)
        self._books.track(change.added_tokens)
        for number in change.closed:
            self._retire(self._shards.pop(number))
        for number in change.opened:
            shard = self._shards[number] = _Shard(number, self._shard_map.desired(number))
            if self._state is FeedState.RUNNING:
                self._spawn(shard)
        for number in change.changed:
            self._shards[number].wake.set()
        self._notify()

    # Status

    def status(self) -> MarketFeedStatus:
        live = sum(1 for shard in self._shards.values() if shard.ws is not None)
        last = self._ts_last_message_s
        return MarketFeedStatus(
            state=self._state,
            connected=bool(self._shards) and live == len(self._shards),
            connections=live,
            wanted_connections=len(self._shards),
            subscriptions=self._shard_map.token_count(),
            messages_received=self._messages_received,
            malformed_messages=self._malformed_messages,
            reconnects=self._reconnects,
            stalls=self._stalls,
            callback_errors=self._callback_errors,
            last_message_age_s=None if last is None else self._clock.monotonic() - last,
        )

    def shard_tokens(self) -> tuple[frozenset[str], ...]:
        """Return each connection's tokens, in connection order."""
        return tuple(frozenset(shard.desired) for shard in self._shards.values())

    async def wait_for_status(
        self, predicate: Callable[[MarketFeedStatus], bool]
    ) -> MarketFeedStatus:
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

    # Shards and their tasks

    def _retire(self, shard: _Shard) -> None:
        if shard.task is not None:
            # Still tracked in self._tasks until it has finished closing.
            shard.task.cancel()
            shard.task = None
        shard.ws = None

    def _spawn(self, shard: _Shard) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run_shard(shard), name=f"market-feed-shard-{shard.number}"
        )
        shard.task = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "market_feed.task_failed",
                exc_info=task.exception(),
                extra={"task": task.get_name()},
            )

    async def _run_shard(self, shard: _Shard) -> None:
        backoff = Backoff(self._config.reconnect_backoff, self._random_fn)
        while True:
            try:
                await self._connect_and_serve(shard, backoff)
            except _Stalled:
                self._stalls += 1
                logger.warning("market_feed.stalled", extra={"shard": shard.number})
            except _CONNECTION_ERRORS as error:
                logger.warning(
                    "market_feed.disconnected", extra={"shard": shard.number, "error": repr(error)}
                )
            else:
                logger.warning("market_feed.closed_by_server", extra={"shard": shard.number})
            finally:
                shard.ws = None
                self._notify()
            await asyncio.sleep(backoff.next_delay_s())
            self._reconnects += 1

    async def _connect_and_serve(self, shard: _Shard, backoff: Backoff) -> None:
        config = self._config
        async with connect(
            self._url,
            open_timeout=config.connect_timeout_s,
            close_timeout=config.close_timeout_s,
            # Polymarket's heartbeat is the text PING, not protocol pings.
            ping_interval=None,
            ping_timeout=None,
            max_size=config.max_message_bytes,
            proxy=True if config.use_environment_proxy else None,
        ) as ws:
            # Snapshot and send with no await in between: a later set_tokens sees the
            # difference from shard.subscribed and the writer sends it as a diff.
            shard.subscribed = set(shard.desired)
            shard.ts_last_traffic_s = self._clock.monotonic()
            await ws.send(self._initial_message(shard.subscribed))
            shard.ws = ws
            logger.info(
                "market_feed.connected",
                extra={"shard": shard.number, "subscriptions": len(shard.subscribed)},
            )
            self._notify()
            await self._serve(shard, ws, backoff)

    async def _serve(self, shard: _Shard, ws: ClientConnection, backoff: Backoff) -> None:
        # Reader and writer race: whichever ends first (closed, stalled, or a bug) ends the
        # connection; the other is cancelled and awaited before we return.
        reader = asyncio.create_task(self._read(shard, ws, backoff))
        writer = asyncio.create_task(self._write(shard, ws))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            writer.cancel()
            await asyncio.wait({reader, writer})
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _read(self, shard: _Shard, ws: ClientConnection, backoff: Backoff) -> None:
        async for frame in ws:
            self._on_frame(shard, frame)
            if backoff.attempt:
                backoff.reset()

    async def _write(self, shard: _Shard, ws: ClientConnection) -> None:
        config = self._config
        clock = self._clock
        ts_next_ping_s = clock.monotonic() + config.ping_interval_s
        while True:
            shard.wake.clear()
            await self._sync_subscriptions(shard, ws)
            now_s = clock.monotonic()
            if now_s - shard.ts_last_traffic_s >= config.stale_after_s:
                raise _Stalled(f"no frame for {now_s - shard.ts_last_traffic_s:.1f} s")
            if now_s >= ts_next_ping_s:
                await ws.send("PING")
                ts_next_ping_s = now_s + config.ping_interval_s
            ts_wake_s = min(ts_next_ping_s, shard.ts_last_traffic_s + config.stale_after_s)
            try:
                async with asyncio.timeout(max(0.0, ts_wake_s - clock.monotonic())):
                    await shard.wake.wait()
            except TimeoutError:
                pass

    async def _sync_subscriptions(self, shard: _Shard, ws: ClientConnection) -> None:
        if shard.desired == shard.subscribed:
            return
        removed = sorted(shard.subscribed - shard.desired)
        added = sorted(shard.desired - shard.subscribed)
        # Recorded before sending: if a send fails the connection is gone, and the next one
        # subscribes shard.desired in full.
        shard.subscribed = set(shard.desired)
        if removed:
            await ws.send(json.dumps({"assets_ids": removed, "operation": "unsubscribe"}))
        if added:
            await ws.send(json.dumps({"assets_ids": added, "operation": "subscribe"}))

    def _initial_message(self, token_ids: set[str]) -> str:
        message: dict[str, object] = {"assets_ids": sorted(token_ids), "type": "market"}
        if self._config.custom_feature_enabled:
            message["custom_feature_enabled"] = True
        return json.dumps(message)

    # The hot path

    def _on_frame(self, shard: _Shard, frame: str | bytes) -> None:
        now_s = self._clock.monotonic()
        shard.ts_last_traffic_s = now_s
        self._ts_last_message_s = now_s
        self._messages_received += 1
        parsed = parse_frame(frame)
        malformed = parsed.malformed
        apply = self._books.apply
        # One call per event, not per frame: a dip and its recovery batched in one array
        # must both be seen, or a stop touched in between would never fire.
        for event in parsed.events:
            try:
                changed = apply(event, now_s)
            except MalformedMarketData:
                malformed += 1
                continue
            if changed:
                self._deliver(frozenset(changed))
        if malformed:
            self._malformed_messages += malformed
            logger.debug("market_feed.malformed", extra={"count": malformed})
        if self._waiters:
            self._notify()

    def _deliver(self, changed: frozenset[str]) -> None:
        try:
            self._on_prices(changed)
        except Exception:
            # The consumer's failure must not cost the feed its connection.
            self._callback_errors += 1
            logger.exception("market_feed.callback_failed")
