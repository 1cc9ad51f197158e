"""The worker's pure per-event path alone: frames → parse → books → prices → rule index.

    python -m bench.feed_replay [--rules 100000] [--tokens 10000] [--events 40000]
                                [--rounds 3] [--websocket]

No socket, no database, no exchange: ``bench.engine``'s scenario (seeded, no fires) turned
into the frames the local exchange would send for it (per step one ``price_change`` with the
level changes of a one-tick-spread book three levels deep, then its ``best_bid_ask``), applied
in this process by a ``FrameHandler`` over ``OrderBooks`` whose callback is a real
``PriceDispatcher`` over a ``RuleRegistry`` holding the rules (trailing raises recorded in
``TrailingLevels``, never flushed). Each round loads the rules afresh, freezes the GC as the
worker does after its load, and measures its CPU (``time.process_time``) over the frames.
Deterministic: the same arguments give the same frames and the same raises, so it also runs
under an instruction counter, which the machine's load does not move:

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next
        python -m bench.feed_replay --rules 10000 --tokens 1000 --events 4000 --rounds 1
        [--websocket]
    (one command)

``--websocket`` puts the client's WebSocket layer in front: the steps are encoded as the
server's text frames and fed, ``--frames-per-read`` at a time, to a ``websockets``
``ClientConnection`` (no socket: its transport only swallows writes), read by the feed's own
reader (``ShardConnection._read``; on a tree that has it, the feed's ``FeedClientConnection``
handing each message over from ``data_received``) and handed to the same ``FrameHandler``. Also
deterministic (every read is drained before the next is fed).

The last line is one JSON object with every round and the best.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections import deque
from decimal import Decimal
from itertools import starmap
from typing import Any, cast

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import OP_TEXT, Frame
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.scenario import TICK, Scenario, build_scenario
from vincent.services.trade_manager import feed_connection
from vincent.services.trade_manager.feed_config import FeedCounters, Heartbeat, MarketFeedConfig
from vincent.services.trade_manager.feed_connection import ShardConnection
from vincent.services.trade_manager.feed_frames import FrameHandler
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.price_dispatch import PriceDispatcher
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.task_owner import TaskOwner
from vincent.services.trade_manager.trailing_levels import TrailingLevels
from vincent.services.trade_manager.types import SystemClock
from vincent.sim import events
from vincent.sim.pricepath import QuoteShape, quote_levels

_SHAPE = QuoteShape()  # what ``bench.drive``'s steps quote: spread 1 tick, depth 3


def _dumps(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def _quote(bid: Decimal) -> tuple[dict[Decimal, str], dict[Decimal, str]]:
    bids, asks = quote_levels(bid, TICK, _SHAPE.spread_ticks, _SHAPE.depth, _SHAPE.size)
    return (
        {price: str(size) for price, size in bids},
        {price: str(size) for price, size in asks},
    )


def frames_for(scenario: Scenario) -> tuple[list[bytes], list[bytes]]:
    """The scenario's book snapshots, then its steps (round robin over tokens) as frames."""
    market_of = {
        token: market.condition_id for market in scenario.markets for token in market.token_ids
    }
    books: dict[str, tuple[dict[Decimal, str], dict[Decimal, str]]] = {}
    snapshots = []
    for path in scenario.paths:
        bids, asks = books[path.token_id] = _quote(path.start_bid)
        snapshots.append(
            _dumps(
                events.book_event(
                    market_of[path.token_id],
                    path.token_id,
                    [{"price": str(p), "size": s} for p, s in bids.items()],
                    [{"price": str(p), "size": s} for p, s in asks.items()],
                    "0x0",
                )
            )
        )
    steps = []
    longest = max(len(path.steps) for path in scenario.paths)
    for i in range(longest):
        for path in scenario.paths:
            if i >= len(path.steps):
                continue
            token, market = path.token_id, market_of[path.token_id]
            old_bids, old_asks = books[token]
            new_bids, new_asks = books[token] = _quote(path.steps[i])
            changed = [
                (side, price, new.get(price, "0"))
                for side, old, new in (("BUY", old_bids, new_bids), ("SELL", old_asks, new_asks))
                for price in sorted(old.keys() | new.keys())
                if old.get(price) != new.get(price)
            ]
            best_bid, best_ask = max(new_bids), min(new_asks)
            changes = [
                events.price_change_entry(token, price, size, side, "0x1", best_bid, best_ask)
                for side, price, size in changed
            ]
            steps.append(_dumps(events.price_change_event(market, changes)))
            steps.append(_dumps(events.best_bid_ask_event(market, token, best_bid, best_ask)))
    return snapshots, steps


class SwallowingTransport(asyncio.Transport):
    """A transport that swallows what a connection writes (a pong, its close) and never
    pauses reading: for driving a websockets connection from bytes in hand."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


def _reads(steps: list[bytes], frames_per_read: int) -> list[bytes]:
    """The steps as the server's unmasked text frames, ``frames_per_read`` to a read."""
    frames = [Frame(OP_TEXT, step).serialize(mask=False) for step in steps]
    return [
        b"".join(frames[i : i + frames_per_read]) for i in range(0, len(frames), frames_per_read)
    ]


async def _through_websocket(
    handler: FrameHandler, counters: FeedCounters, reads: list[bytes], frames: int
) -> None:
    """Feed ``reads`` to a ``ClientConnection`` read by the feed's reader, each drained."""
    # The feed's own connection class (messages handed over from ``data_received``) where
    # the tree has one; websockets' otherwise (a tree before round 13, for A/B runs).
    direct_kind: Any = getattr(feed_connection, "FeedClientConnection", None)
    ws: Any = (direct_kind or ClientConnection)(
        ClientProtocol(parse_uri("ws://replay/"), state=State.OPEN)
    )
    ws.connection_made(SwallowingTransport())
    ws.response = Response(101, "Switching Protocols", Headers())  # the handshake, done
    connection = ShardConnection(
        0,
        set(),
        url="ws://replay/",
        config=MarketFeedConfig(),
        clock=SystemClock(),
        random_fn=lambda: 0.0,
        frames=handler,
        counters=counters,
        on_change=lambda connection: None,
    )
    heartbeat = Heartbeat(3600.0, 7200.0, time.monotonic())
    start = counters.messages_received
    if direct_kind is not None:
        crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ws.direct = connection._direct_reader(ws, heartbeat, crashed)
    reader = asyncio.create_task(connection._read(ws, heartbeat))
    for data in reads:
        ws.data_received(data)
        await asyncio.sleep(0)  # the reader handles what this read delivered
    # The reader ran after each read (its wake-up was queued before this task's).
    assert counters.messages_received - start == frames, "a read was left undrained"
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


async def _prepare(
    scenario: Scenario, snapshots: list[bytes]
) -> tuple[FrameHandler, FeedCounters, WorkerMetrics, TrailingLevels]:
    rules = RuleRegistry()
    for rule in scenario.rules:
        rules.upsert(rule)
    books = OrderBooks()
    books.track(rules.tokens())
    trailing = TrailingLevels()
    metrics = WorkerMetrics()
    dispatcher = PriceDispatcher(
        rules=rules,
        books=books,
        trailing=trailing,
        executor=cast(Any, None),  # no rule fires (the scenario's fire fraction is 0)
        tasks=TaskOwner("bench"),
        metrics=metrics,
        clock=SystemClock(),
        stopping=asyncio.Event(),
        on_tokens=lambda changes: None,
        on_change=lambda: None,
    )
    counters = FeedCounters()
    handler = FrameHandler(books, dispatcher.on_prices, counters, waiters=(), notify=lambda: None)
    for snapshot in snapshots:
        handler.handle(snapshot, 0.0)
    return handler, counters, metrics, trailing


async def _handle_all(handler: FrameHandler, steps: list[bytes]) -> None:
    arrivals = [(frame, 1.0 + i * 1e-6) for i, frame in enumerate(steps)]
    # Consumed in C: the only ``starmap`` of the run, so ``--toggle-collect=starmap_next``
    # counts exactly the frames' instructions.
    deque(starmap(handler.handle, arrivals), maxlen=0)


def _round(
    scenario: Scenario,
    snapshots: list[bytes],
    steps: list[bytes],
    reads: list[bytes] | None = None,
) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        handler, counters, metrics, trailing = loop.run_until_complete(
            _prepare(scenario, snapshots)
        )
        gc.collect()
        gc.freeze()
        cpu0 = time.process_time()
        if reads is None:
            loop.run_until_complete(_handle_all(handler, steps))
        else:
            # The only ``starmap`` of this mode: the instructions of every read, fed and
            # handled (the loop's own turns included).
            feed = _through_websocket(handler, counters, reads, len(steps))
            deque(starmap(loop.run_until_complete, [(feed,)]), maxlen=0)
        cpu_s = time.process_time() - cpu0
        gc.unfreeze()
    finally:
        loop.close()
    raised = metrics.registry.get_sample_value(
        "vincent_trade_manager_evaluations_total", {"result": "trailing_raised"}
    )
    return {
        "cpu_s": round(cpu_s, 3),
        "us_per_event": round(1e6 * cpu_s / len(steps), 2),
        "events_per_cpu_s": round(len(steps) / cpu_s),
        "trailing_raised": raised,
        "trailing_pending": len(trailing),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--websocket", action="store_true", help="through a ClientConnection")
    parser.add_argument("--frames-per-read", type=int, default=2)
    args = parser.parse_args()
    scenario = build_scenario(
        rules=args.rules,
        tokens=args.tokens,
        events=args.events,
        tenants=100,
        fire_fraction=0.0,
        seed=args.seed,
    )
    snapshots, steps = frames_for(scenario)
    reads = _reads(steps, args.frames_per_read) if args.websocket else None
    rounds = []
    for _ in range(args.rounds):
        result = _round(scenario, snapshots, steps, reads)
        print(result, flush=True)
        rounds.append(result)
    best = min(rounds, key=lambda result: result["cpu_s"])
    print(json.dumps({**vars(args), "events": len(steps), "rounds": rounds, "best": best}))


if __name__ == "__main__":
    main()
