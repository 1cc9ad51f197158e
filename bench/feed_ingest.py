"""The feed alone: CPU per frame from the socket to the books, without rules or a database.

    python -m bench.feed_ingest [--tokens 10000] [--frames 40000] [--events-per-frame 2]
                                [--rate 2000] [--rounds 3]

A ``websockets`` server in a process of its own sends ``--tokens`` book snapshots, then
``--frames`` frames of ``--events-per-frame`` ``price_change`` events (each moves one
token's best bid), ``--rate`` frames a second (0: as fast as it can). This process runs a
``MarketFeed`` (one connection) over ``OrderBooks`` with a callback that only counts, and
measures its own CPU (``time.process_time``: every thread) from the last snapshot to the
last event: the socket, ``websockets``, the frame handler, the parse and the books.
At a paced rate most reads carry one frame, as in ``bench.engine`` (its worker is idle most
of the drive); flat out, reads carry many. Each round is a fresh connection; the last line
is one JSON object with every round and the best.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeed, MarketFeedConfig

MARKET = "0xbench"


def _token(i: int) -> str:
    return f"{10**20 + i}"


def _book(token_id: str) -> str:
    return json.dumps(
        {
            "event_type": "book",
            "asset_id": token_id,
            "market": MARKET,
            "bids": [{"price": "0.40", "size": "100"}],
            "asks": [{"price": "0.60", "size": "100"}],
            "timestamp": "1757908892351",
            "hash": "0x0",
        },
        separators=(",", ":"),
    )


def _price_change(token_id: str, bid: str) -> dict[str, Any]:
    change = {
        "asset_id": token_id,
        "price": bid,
        "size": "100",
        "side": "BUY",
        "hash": "0x1",
        "best_bid": bid,
        "best_ask": "0.60",
    }
    return {
        "event_type": "price_change",
        "market": MARKET,
        "price_changes": [change],
        "timestamp": "1757908892351",
    }


def _frames(tokens: int, frames: int, per_frame: int) -> list[str]:
    out = []
    event = 0
    for _ in range(frames):
        events = []
        for _ in range(per_frame):
            # Every event moves its token's best bid (0.41 / 0.42 alternating per visit).
            bid = "0.41" if (event // tokens) % 2 == 0 else "0.42"
            events.append(_price_change(_token(event % tokens), bid))
            event += 1
        out.append(json.dumps(events[0] if per_frame == 1 else events, separators=(",", ":")))
    return out


def _serve(port_out: Any, tokens: int, frames: list[str], rate: float) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the subscription
        for i in range(tokens):
            await ws.send(_book(_token(i)))
        await ws.recv()  # the client's "go" (a PING): every snapshot is in
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, frame in enumerate(frames):
            await ws.send(frame)
            if rate and i % 4 == 3:
                delay = start + (i + 1) / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
            port_out.send(next(iter(server.sockets)).getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = asyncio.Event()

    def __call__(self, changed: tuple[str, ...]) -> None:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()

    async def until(self, target: int) -> None:
        self.target = target
        if self.count < target:
            self.reached.clear()
            await self.reached.wait()


async def _round(url: str, tokens: int, events: int, frames: int) -> dict[str, float]:
    books = OrderBooks()
    counter = _Counter()
    # One connection (the venue's limit is 500 tokens a connection; the server here sends
    # every token's frames on every connection it serves).
    feed = MarketFeed(
        url, books, counter, config=MarketFeedConfig(max_assets_per_connection=tokens)
    )
    feed.set_tokens([_token(i) for i in range(tokens)])
    async with feed, asyncio.timeout(600):
        await counter.until(tokens)  # the snapshots
        connection = next(iter(feed._connections.values()))
        assert connection._ws is not None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await connection._ws.send("PING")  # go
        await counter.until(tokens + events)
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "cpu_s": round(cpu_s, 3),
        "wall_s": round(wall_s, 3),
        "us_per_frame": round(1e6 * cpu_s / frames, 2),
        "us_per_event": round(1e6 * cpu_s / events, 2),
        "events_per_cpu_s": round(events / cpu_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=10000)
    parser.add_argument("--frames", type=int, default=40000)
    parser.add_argument("--events-per-frame", type=int, default=2)
    parser.add_argument("--rate", type=float, default=2000.0, help="frames/s (0: flat out)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frames = _frames(args.tokens, args.frames, args.events_per_frame)
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(send, args.tokens, frames, args.rate), daemon=True
    )
    server.start()
    try:
        url = f"ws://127.0.0.1:{receive.recv()}"
        events = args.frames * args.events_per_frame
        rounds = []
        for _ in range(args.rounds):
            result = asyncio.run(_round(url, args.tokens, events, args.frames))
            print(result, flush=True)
            rounds.append(result)
    finally:
        server.terminate()
        server.join()
    best = min(rounds, key=lambda result: result["cpu_s"])
    print(json.dumps({**vars(args), "rounds": rounds, "best": best}))


if __name__ == "__main__":
    main()
