"""The market WebSocket (``/ws/market``): subscriptions, fan-out, PING/PONG, drop and stall.

Each message is serialized once and queued to every subscriber of its asset; a sender
task per connection drains its queue. Knows nothing about books: snapshots come from a
callable the exchange passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.types import Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from vincent.sim.timing import TimingRecorder

logger = logging.getLogger(__name__)

Snapshot = Callable[[str], dict[str, Any] | None]
_PRICE_EVENTS = frozenset({"book", "price_change", "last_trade_price", "best_bid_ask"})


def dumps(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))


# A queued message: its text and its sequence number (0: not a timed price message).
Queued = tuple[str, int]


def next_frame(queue: deque[Queued], batch_max: int) -> tuple[str, list[int]]:
    """Pop the next frame: one message, or up to ``batch_max`` queued events as a JSON
    array; with the sequence numbers of the timed messages it carries.

    Under load this coalesces events (Polymarket frames may carry an array of events) so
    one write carries many; text replies (PONG) and snapshot arrays always go alone.
    """
    first, seq = queue.popleft()
    seqs = [seq] if seq else []
    if batch_max <= 1 or not queue or not first.startswith("{") or not queue[0][0].startswith("{"):
        return first, seqs
    parts = [first]
    while queue and len(parts) < batch_max and queue[0][0].startswith("{"):
        text, seq = queue.popleft()
        parts.append(text)
        if seq:
            seqs.append(seq)
    return "[" + ",".join(parts) + "]", seqs


class Subscriber:
    """One WebSocket connection: its assets, its custom-feature flag and its send queue."""

    def __init__(self, websocket: WebSocket, send: Send | None = None) -> None:
        """``send``: the server's ASGI send for the frames (default: through ``websocket``)."""
        self.websocket = websocket
        self.send_text: Callable[[str], Awaitable[None]] = websocket.send_text
        if send is not None:
            raw_send = send

            async def send_text(text: str) -> None:
                await raw_send({"type": "websocket.send", "text": text})

            self.send_text = send_text
        self.assets: set[str] = set()
        self.custom = False
        self.queue: deque[Queued] = deque()
        self.wake = asyncio.Event()
        self.dropped = False

    def push(self, text: str, seq: int = 0) -> None:
        """Queue ``text``; ``seq``: its sequence number when its write is timed."""
        self.queue.append((text, seq))
        self.wake.set()


class MarketFeed:
    """Fan-out of market events to subscribers, with fault switches (drop, stall)."""

    def __init__(self, timing: TimingRecorder, snapshot: Snapshot, batch_max: int = 1) -> None:
        """``batch_max``: most events per frame when a subscriber falls behind (1: never)."""
        self._timing = timing
        self._batch_max = batch_max
        self._snapshot = snapshot
        self._subscribers: set[Subscriber] = set()
        self._by_asset: dict[str, set[Subscriber]] = {}
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.messages_published = 0

    @property
    def connection_count(self) -> int:
        return len(self._subscribers)

    def has_custom_subscriber(self, asset_id: str) -> bool:
        return any(subscriber.custom for subscriber in self._by_asset.get(asset_id, ()))

    def subscribed_assets(self) -> set[str]:
        return {asset for asset, subs in self._by_asset.items() if subs}

    def publish(
        self,
        message: dict[str, Any],
        asset_ids: Iterable[str],
        custom: bool = False,
        seq: int | None = None,
    ) -> int:
        """Queue one event to subscribers of any of ``asset_ids``; return its sequence number.

        ``custom`` events go only to connections that enabled the custom feature. Pass
        ``seq`` when the message already carries it (in its ``hash``).
        """
        if seq is None:
            seq = self._timing.next_seq()
        assets = list(asset_ids)
        event_type = str(message.get("event_type", ""))
        if len(assets) == 1:
            self.publish_text(dumps(message), event_type, assets[0], seq, custom)
            return seq
        targets: set[Subscriber] = set()
        for asset in assets:
            targets |= self._by_asset.get(asset, set())
        if custom:
            targets = {subscriber for subscriber in targets if subscriber.custom}
        timed = 0
        if event_type in _PRICE_EVENTS:
            self._timing.record_send(
                seq, assets[0] if assets else "", event_type, self._timing.now_ns()
            )
            timed = seq
        if targets:
            # Serialized once for every subscriber.
            text = dumps(message)
            for subscriber in targets:
                subscriber.push(text, timed)
        self.messages_published += 1
        return seq

    def publish_text(
        self, text: str, event_type: str, asset_id: str, seq: int, custom: bool = False
    ) -> None:
        """``publish`` of one asset's event, already serialized (the price steps' path:
        their ``price_change`` and ``best_bid_ask`` are built as text)."""
        timed = 0
        if event_type in _PRICE_EVENTS:
            self._timing.record_send(seq, asset_id, event_type, self._timing.now_ns())
            timed = seq
        targets = self._by_asset.get(asset_id)
        if targets:
            for subscriber in targets:
                if subscriber.custom or not custom:
                    subscriber.push(text, timed)
        self.messages_published += 1

    def drop_all(self) -> int:
        """Close every connection now; return how many were dropped."""
        for subscriber in self._subscribers:
            subscriber.dropped = True
            subscriber.wake.set()
        return len(self._subscribers)

    def stall(self) -> None:
        """Stop sending on every connection (PONG included); queued messages wait."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    async def serve(self, websocket: WebSocket, send: Send | None = None) -> None:
        """Serve one connection until it closes; ``send``: see ``Subscriber``."""
        await websocket.accept()
        subscriber = Subscriber(websocket, send)
        self._subscribers.add(subscriber)
        sender = asyncio.create_task(self._send_loop(subscriber))
        try:
            await self._receive_loop(subscriber)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            self._forget(subscriber)

    async def _receive_loop(self, subscriber: Subscriber) -> None:
        websocket = subscriber.websocket
        while not subscriber.dropped:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                continue
            if text == "PING":
                subscriber.push("PONG")
                continue
            self._handle_request(subscriber, text)

    def _handle_request(self, subscriber: Subscriber, text: str) -> None:
        try:
            request = json.loads(text)
            assets = [str(a) for a in request["assets_ids"]]
        except (ValueError, KeyError, TypeError):
            subscriber.push("INVALID OPERATION")
            return
        if request.get("custom_feature_enabled"):
            subscriber.custom = True
        operation = request.get("operation", "subscribe")
        if operation == "unsubscribe":
            for asset in assets:
                subscriber.assets.discard(asset)
                self._by_asset.get(asset, set()).discard(subscriber)
            return
        if operation != "subscribe":
            subscriber.push("INVALID OPERATION")
            return
        snapshots = []
        for asset in assets:
            subscriber.assets.add(asset)
            self._by_asset.setdefault(asset, set()).add(subscriber)
            book = self._snapshot(asset)
            if book is not None:
                snapshots.append(book)
        if snapshots:
            subscriber.push(dumps(snapshots))

    async def _send_loop(self, subscriber: Subscriber) -> None:
        websocket = subscriber.websocket
        queue = subscriber.queue
        while True:
            await subscriber.wake.wait()
            subscriber.wake.clear()
            if subscriber.dropped:
                await websocket.close(code=1011)
                return
            if not self._flowing.is_set():
                await self._wait_flowing_or_woken(subscriber)
                subscriber.wake.set()  # re-check: resumed, dropped or more to send
                continue
            while queue and not subscriber.dropped:
                frame, seqs = next_frame(queue, self._batch_max)
                if seqs:
                    self._timing.record_written(seqs)
                await subscriber.send_text(frame)
                if not self._flowing.is_set():
                    break
            if queue or subscriber.dropped:
                subscriber.wake.set()

    async def _wait_flowing_or_woken(self, subscriber: Subscriber) -> None:
        flowing = asyncio.ensure_future(self._flowing.wait())
        woken = asyncio.ensure_future(subscriber.wake.wait())
        try:
            await asyncio.wait({flowing, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (flowing, woken):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _forget(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        for asset in subscriber.assets:
            self._by_asset.get(asset, set()).discard(subscriber)
