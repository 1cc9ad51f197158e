"""One shard's connection to the market channel, kept alive until it is cancelled.

Owns the connection's life: connect, subscribe its tokens in the first message, send later
token changes as subscribe/unsubscribe diffs, the text PING heartbeat and stall detection
(``feed_config.Heartbeat``), and reconnecting with backoff. Frames go to the shared
``FrameHandler``, which marks the tokens whose book snapshot arrived on this connection
(``awaiting_snapshot``), so ``coverage`` can tell a quiet token from one nobody covers.
Tells its owner (``on_change``) whenever it goes live, goes down or has sent subscriptions.
The owner runs ``run`` as a task and cancels it to close the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Set

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, WebSocketException
from websockets.frames import OP_TEXT, Frame
from websockets.protocol import Event

from vincent.services.trade_manager.backoff import Backoff, RandomFn
from vincent.services.trade_manager.feed_config import (
    Coverage,
    FeedCounters,
    Heartbeat,
    MarketFeedConfig,
    ShardStatus,
    coverage_of,
)
from vincent.services.trade_manager.feed_frames import FrameHandler
from vincent.services.trade_manager.loop_share import LoopShare
from vincent.services.trade_manager.types import Clock

logger = logging.getLogger(__name__)


class _Stalled(Exception):
    """No frame arrived for ``stale_after_s``."""


_CONNECTION_ERRORS = (OSError, EOFError, TimeoutError, WebSocketException, _Stalled)


class FeedClientConnection(ClientConnection):
    """websockets' asyncio client connection that can hand a message straight to the feed.

    While ``direct`` is set, a whole text message (one frame with FIN, as the market
    channel sends them) that arrives while nothing waits in the connection's message
    queue goes to ``direct`` from ``data_received``, as the protocol parsed it: no queue,
    no wake-up of the reader task, no ``recv``. ``direct`` answers False to leave it to
    the queue instead (the reader's turn: it gives the loop back first). Everything else
    takes websockets' own way: control frames (pings answered, the closing handshake),
    fragmented and binary messages, and any message behind one already queued, so the
    messages stay in order. websockets' protocol still parses and checks every frame
    (sizes, opcodes, reserved bits, the close codes).
    """

    direct: Callable[[bytes], bool] | None = None

    def process_event(self, event: Event) -> None:
        direct = self.direct
        if (
            direct is not None
            and type(event) is Frame
            and event.opcode is OP_TEXT
            and event.fin
            and not self.recv_messages.frames.queue
            and direct(bytes(event.data))
        ):
            return
        super().process_event(event)


class ShardConnection:
    """The connection of shard ``number``, carrying ``desired`` (a live view of its tokens)."""

    def __init__(
        self,
        number: int,
        desired: Set[str],
        *,
        url: str,
        config: MarketFeedConfig,
        clock: Clock,
        random_fn: RandomFn,
        frames: FrameHandler,
        counters: FeedCounters,
        on_change: Callable[[ShardConnection], None],
        yield_while: Callable[[], bool] = lambda: False,
        loop_share: LoopShare | None = None,
    ) -> None:
        self.number = number
        self.desired = desired
        # What the server has been told, recorded before sending (see _sync_subscriptions).
        self.subscribed: set[str] = set()
        # Tokens subscribed on the current connection whose book snapshot has not arrived on
        # it yet (the frame handler removes a token when its ``book`` event is applied).
        self.awaiting_snapshot: set[str] = set()
        self.wake = asyncio.Event()
        self.ts_last_message_s: float | None = None
        self._url = url
        self._config = config
        self._clock = clock
        self._frames = frames
        self._counters = counters
        self._on_change = on_change
        self._yield_while = yield_while
        # Shared by the feed's connections: their frames' share of the loop in a row.
        self._loop_share = loop_share or LoopShare(float("inf"), clock.monotonic)
        self._backoff = Backoff(config.reconnect_backoff, random_fn)
        self._ws: ClientConnection | None = None
        # The open connection's heartbeat (None while not open).
        self._heartbeat: Heartbeat | None = None
        # True while subscribe/unsubscribe diffs are being sent (subscribed is ahead of them).
        self._sending = False
        # Set by a crash: the next connection's frames don't reset the backoff, so a bug
        # that recurs on every connection backs off to the maximum delay.
        self._crashed = False

    @property
    def live(self) -> bool:
        """Whether the connection is open and has sent its first subscription."""
        return self._ws is not None

    def carries(self, token_id: str) -> bool:
        """Whether the live connection has finished sending the subscription of ``token_id``."""
        return self._ws is not None and not self._sending and token_id in self.subscribed

    def coverage(self, token_id: str, now_s: float) -> Coverage:
        """How this connection covers ``token_id`` at monotonic ``now_s`` (no I/O)."""
        return coverage_of(
            token_id,
            heartbeat=self._heartbeat if self._ws is not None else None,
            subscribed=self.subscribed,
            awaiting_snapshot=self.awaiting_snapshot,
            now_s=now_s,
        )

    def live_tokens(self, now_s: float) -> Set[str]:
        """Every token this connection covers live at ``now_s`` (``coverage`` is ``LIVE``).

        A read-only view that later changes may show through: copy it to keep it.
        """
        heartbeat = self._heartbeat
        if self._ws is None or heartbeat is None or heartbeat.stalled(now_s):
            return frozenset()
        if not self.awaiting_snapshot:
            return self.subscribed  # the steady state: no copy
        return self.subscribed - self.awaiting_snapshot

    def status(self, now_s: float, *, draining: bool = False) -> ShardStatus:
        last = self.ts_last_message_s
        return ShardStatus(
            number=self.number,
            connected=self._ws is not None,
            subscriptions=len(self.desired),
            last_message_age_s=None if last is None else now_s - last,
            draining=draining,
        )

    async def run(self) -> None:
        """Connect and serve until cancelled; after every end, back off and reconnect.

        A connection that ends by a bug is logged, counted (``connection_crashes``) and
        restarted like a dropped one: the new connection subscribes every desired token.
        """
        while True:
            try:
                await self._connect_and_serve()
            except _Stalled:
                self._crashed = False
                self._counters.stalls += 1
                logger.warning("market_feed.stalled", extra={"shard": self.number})
            except _CONNECTION_ERRORS as error:
                self._crashed = False
                logger.warning(
                    "market_feed.disconnected", extra={"shard": self.number, "error": repr(error)}
                )
            except Exception as error:
                # A bug (in the frame path or here) ended the connection: restart it rather
                # than silently lose the shard's tokens. CancelledError is not an Exception.
                self._counters.connection_crashes += 1
                self._crashed = True
                logger.error(
                    "market_feed.connection_crashed",
                    exc_info=error,
                    extra={"shard": self.number, "error": repr(error)},
                )
            else:
                self._crashed = False
                logger.warning("market_feed.closed_by_server", extra={"shard": self.number})
            finally:
                self._ws = None
                self._heartbeat = None
                self._on_change(self)
            await asyncio.sleep(self._backoff.next_delay_s())
            self._counters.reconnects += 1

    async def _connect_and_serve(self) -> None:
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
            create_connection=FeedClientConnection,
        ) as ws:
            heartbeat = Heartbeat(
                config.ping_interval_s, config.stale_after_s, self._clock.monotonic()
            )
            # Snapshot and send with no await in between: a later token change sees the
            # difference from self.subscribed and the writer sends it as a diff.
            self.subscribed = set(self.desired)
            # A new connection proves nothing until its own snapshots arrive.
            self.awaiting_snapshot = set(self.subscribed)
            await ws.send(_initial_message(self.subscribed, config.custom_feature_enabled))
            self._heartbeat = heartbeat
            self._ws = ws
            logger.info(
                "market_feed.connected",
                extra={"shard": self.number, "subscriptions": len(self.subscribed)},
            )
            self._on_change(self)
            await self._serve(ws, heartbeat)

    async def _serve(self, ws: ClientConnection, heartbeat: Heartbeat) -> None:
        # Reader and writer race: whichever ends first (closed, stalled, or a bug) ends the
        # connection; the other is cancelled and awaited before we return. A bug raised
        # by a frame handled from ``data_received`` (``FeedClientConnection.direct``) ends
        # it the same way, through ``crashed``.
        name = f"market-feed-shard-{self.number}"
        crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if isinstance(ws, FeedClientConnection):
            ws.direct = self._direct_reader(ws, heartbeat, crashed)
        reader = asyncio.create_task(self._read(ws, heartbeat), name=f"{name}-reader")
        writer = asyncio.create_task(self._write(ws, heartbeat), name=f"{name}-writer")
        try:
            done, _ = await asyncio.wait(
                {reader, writer, crashed}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if isinstance(ws, FeedClientConnection):
                ws.direct = None
            crashed.cancel()
            reader.cancel()
            writer.cancel()
            await asyncio.wait({reader, writer})
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    def _direct_reader(
        self, ws: FeedClientConnection, heartbeat: Heartbeat, crashed: asyncio.Future[None]
    ) -> Callable[[bytes], bool]:
        """What ``_read`` does with a frame, for ``ws`` to call from ``data_received``: the
        frame handled at once, unless the reader would give the loop back before it (a
        fire on its way, the feed's share spent): then False, and ``ws`` queues it for the
        reader task, which runs after the loop's other ready work."""
        clock = self._clock
        handle = self._frames.handle
        yield_while = self._yield_while
        share = self._loop_share
        reset_backoff = self._backoff.attempt > 0 and not self._crashed

        def direct(frame: bytes) -> bool:
            nonlocal reset_backoff
            if yield_while() or share.spent():
                return False
            now_s = clock.monotonic()
            share.begin(now_s)
            heartbeat.ts_last_traffic_s = now_s
            self.ts_last_message_s = now_s
            try:
                handle(frame, now_s, self.awaiting_snapshot)
            except Exception as error:
                # A bug: the connection ends as if the reader had raised it; later frames
                # wait in the queue for a reader that is cancelled.
                ws.direct = None
                if not crashed.done():
                    crashed.set_exception(error)
                return True
            if reset_backoff:
                self._backoff.reset()
                reset_backoff = False
            return True

        return direct

    async def _read(self, ws: ClientConnection, heartbeat: Heartbeat) -> None:
        clock = self._clock
        handle = self._frames.handle
        yield_while = self._yield_while
        share = self._loop_share
        reset_backoff = self._backoff.attempt > 0 and not self._crashed
        # Frames already received come out of ``ws`` without a pause of this task, so a
        # backlog would be handled in one go. The loop is given back after a frame once the
        # feed's readers have held it for their share (``LoopShare``) and, while
        # ``yield_while()`` (a fire on its way to its POST), after each frame: the fire's
        # next step (its database answer, its POST) runs after at most one more frame.
        # Frames stay in order: this task alone reads and handles this connection's.
        # Text frames come as their bytes (``decode=False``): orjson reads them as they are
        # and checks their UTF-8 itself, so websockets' decode to str is skipped; a frame
        # that is not UTF-8 counts as malformed (as bad JSON does) instead of closing the
        # connection. ``recv`` directly, not ``async for``: one async generator less.
        receive = ws.recv
        while True:
            try:
                frame = await receive(False)
            except ConnectionClosedOK:
                return  # closed by the server: what ``async for`` ends on
            now_s = clock.monotonic()
            share.begin(now_s)
            heartbeat.ts_last_traffic_s = now_s
            self.ts_last_message_s = now_s
            handle(frame, now_s, self.awaiting_snapshot)
            if reset_backoff:
                self._backoff.reset()
                reset_backoff = False
            if yield_while() or share.spent():
                await asyncio.sleep(0)

    async def _write(self, ws: ClientConnection, heartbeat: Heartbeat) -> None:
        clock = self._clock
        while True:
            self.wake.clear()
            await self._sync_subscriptions(ws)
            now_s = clock.monotonic()
            if heartbeat.stalled(now_s):
                raise _Stalled(f"no frame for {heartbeat.silent_for_s(now_s):.1f} s")
            if heartbeat.ping_due(now_s):
                await ws.send("PING")
                heartbeat.pinged(now_s)
            try:
                delay_s = heartbeat.ts_next_check_s() - clock.monotonic()
                async with asyncio.timeout(max(0.0, delay_s)):
                    await self.wake.wait()
            except TimeoutError:
                pass

    async def _sync_subscriptions(self, ws: ClientConnection) -> None:
        if self.desired == self.subscribed:
            return
        removed = sorted(self.subscribed - self.desired)
        added = sorted(self.desired - self.subscribed)
        # Recorded before sending: if a send fails the connection is gone, and the next one
        # subscribes self.desired in full.
        self.subscribed = set(self.desired)
        # A resubscribed token waits for its new snapshot; an unsubscribed one is not covered.
        self.awaiting_snapshot.difference_update(removed)
        self.awaiting_snapshot.update(added)
        self._sending = True
        try:
            # Unsubscribe first, so the connection never holds more than its limit.
            if removed:
                await ws.send(json.dumps({"assets_ids": removed, "operation": "unsubscribe"}))
            if added:
                await ws.send(json.dumps({"assets_ids": added, "operation": "subscribe"}))
        finally:
            self._sending = False
        self._on_change(self)


def _initial_message(token_ids: Set[str], custom_feature_enabled: bool) -> str:
    message: dict[str, object] = {"assets_ids": sorted(token_ids), "type": "market"}
    if custom_feature_enabled:
        message["custom_feature_enabled"] = True
    return json.dumps(message)
