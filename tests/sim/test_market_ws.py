"""The market WebSocket: snapshots, price changes, PING/PONG, subscriptions, drop and stall."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.sim.conftest import CONDITION_ID, NO, YES, ClientFactory
from vincent.sim import LocalExchange

TIMEOUT_S = 2.0


class Feed:
    """A market-channel client: frames (an object, an array of them, or text) become events."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []
        self._pending: deque[Any] = deque()

    async def frame(self) -> Any:
        async with asyncio.timeout(TIMEOUT_S):
            raw = await self.ws.recv()
        frame = raw if raw in ("PONG", "INVALID OPERATION") else json.loads(raw)
        self.frames.append(frame)
        return frame

    async def event(self) -> Any:
        if not self._pending:
            frame = await self.frame()
            self._pending.extend(frame if isinstance(frame, list) else [frame])
        return self._pending.popleft()

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))


@asynccontextmanager
async def subscribe(
    exchange: LocalExchange, assets: list[str], custom: bool = False
) -> AsyncIterator[Feed]:
    async with connect(exchange.ws_url) as ws:
        feed = Feed(ws)
        message: dict[str, Any] = {"assets_ids": assets, "type": "market"}
        if custom:
            message["custom_feature_enabled"] = True
        await feed.send(message)
        yield feed


async def test_snapshot_then_price_changes_in_order(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES]) as feed:
        snapshot = await feed.frame()
        assert isinstance(snapshot, list)  # snapshots arrive as a JSON array
        book = snapshot[0]
        assert (book["event_type"], book["asset_id"], book["market"]) == ("book", YES, CONDITION_ID)
        assert [lv["price"] for lv in book["bids"]] == ["0.47", "0.48"]  # best last
        assert [lv["price"] for lv in book["asks"]] == ["0.53", "0.52"]  # best last

        exchange.step_price(YES, "0.55", depth=1, size=10)
        change = await feed.event()
        assert change["event_type"] == "price_change"
        entries = change["price_changes"]
        assert {(e["side"], e["price"], e["size"]) for e in entries} >= {
            ("BUY", "0.55", "10"),
            ("BUY", "0.48", "0"),
            ("SELL", "0.56", "10"),
        }
        assert {(e["best_bid"], e["best_ask"]) for e in entries} == {("0.55", "0.56")}


async def test_scripted_path_and_tick_size_change(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        await exchange.start_path(YES, ["0.50", "0.51", "0.49"], burst=3)
        best_bids = [(await feed.event())["price_changes"][0]["best_bid"] for _ in range(3)]
        assert best_bids == ["0.5", "0.51", "0.49"]
        exchange.set_tick_size(YES, "0.001")
        tick = await feed.event()
        assert (tick["event_type"], tick["old_tick_size"], tick["new_tick_size"]) == (
            "tick_size_change",
            "0.01",
            "0.001",
        )


async def test_random_walk_is_reproducible(exchange: LocalExchange) -> None:
    walks = []
    for _ in range(2):
        async with subscribe(exchange, [YES]) as feed:
            await feed.frame()
            await exchange.start_random_walk(YES, steps=20, seed=7, start="0.50")
            await feed.send("PING")  # PONG marks the end of the walk's events
            events = []
            while (event := await feed.event()) != "PONG":
                events.append(event["price_changes"][0]["best_bid"])
            walks.append(events)
    assert walks[0] == walks[1]
    assert len(set(walks[0])) > 3  # a seeded walk that actually moves


async def test_ping_pong_and_unsubscribed_assets_stay_silent(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        exchange.step_price(NO, "0.30")  # not subscribed: nothing may arrive
        await feed.send("PING")
        assert await feed.event() == "PONG"

        await feed.send({"assets_ids": [NO], "operation": "subscribe"})
        assert (await feed.event())["asset_id"] == NO  # its snapshot
        await feed.send({"assets_ids": [YES], "operation": "unsubscribe"})
        await feed.send("PING")
        assert await feed.event() == "PONG"  # the unsubscribe was handled before this
        exchange.step_price(YES, "0.20")
        exchange.step_price(NO, "0.31")
        message = await feed.event()
        assert {e["asset_id"] for e in message["price_changes"]} == {NO}


async def test_custom_feature_events(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES], custom=True) as feed:
        await feed.frame()
        exchange.step_price(YES, "0.60")
        assert (await feed.event())["event_type"] == "price_change"
        best = await feed.event()
        assert (best["event_type"], best["best_bid"], best["best_ask"], best["spread"]) == (
            "best_bid_ask",
            "0.6",
            "0.61",
            "0.01",
        )
        exchange.resolve(CONDITION_ID, YES)
        resolved = await feed.event()
        assert resolved["event_type"] == "market_resolved"
        assert (resolved["winning_asset_id"], resolved["winning_outcome"]) == (YES, "Yes")
        assert resolved["assets_ids"] == [YES, NO]


async def test_drop_closes_every_connection(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES]) as first, subscribe(exchange, [NO]) as second:
        await first.frame()
        await second.frame()
        assert exchange.drop_websockets() == 2
        for feed in (first, second):
            with pytest.raises(ConnectionClosed):
                await feed.frame()


async def test_stall_withholds_everything_until_resume(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        exchange.stall_websockets()
        await feed.send("PING")
        exchange.step_price(YES, "0.40")
        with pytest.raises(TimeoutError):  # a bounded window in which nothing may arrive
            async with asyncio.timeout(0.3):
                await feed.ws.recv()
        exchange.resume_websockets()
        held = [await feed.event(), await feed.event()]
        assert "PONG" in held
        assert [m["event_type"] for m in held if m != "PONG"] == ["price_change"]


async def test_stalled_connections_can_still_be_dropped(exchange: LocalExchange) -> None:
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        exchange.stall_websockets()
        exchange.step_price(YES, "0.40")
        assert exchange.drop_websockets() == 1
        with pytest.raises(ConnectionClosed):
            await feed.frame()


async def test_backlog_is_batched_into_arrays(exchange: LocalExchange) -> None:
    exchange.clear_timing()
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        exchange.stall_websockets()
        for price in ("0.40", "0.41", "0.42"):
            exchange.step_price(YES, price)
        held = [s for s in exchange.price_sends() if s.event_type == "price_change"]
        exchange.resume_websockets()
        frame = await feed.frame()
        assert [e["price_changes"][0]["best_bid"] for e in frame] == ["0.4", "0.41", "0.42"]
    # Held back, none was written while stalled; the one frame carrying them was written
    # once, after every one of them was queued.
    assert [s.ts_written_ns for s in held] == [None, None, None]
    sends = [s for s in exchange.price_sends() if s.event_type == "price_change"]
    written = {s.ts_written_ns for s in sends}
    assert len(sends) == 3 and len(written) == 1
    assert next(iter(written)) >= max(s.ts_send_ns for s in sends)


async def test_price_sends_are_timed(exchange: LocalExchange) -> None:
    exchange.clear_timing()
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        exchange.step_price(YES, "0.45")
        change = await feed.event()
    sends = [s for s in exchange.price_sends() if s.event_type == "price_change"]
    assert len(sends) == 1
    assert sends[0].token_id == YES
    assert change["price_changes"][0]["hash"] == f"0x{sends[0].seq:040x}"
    # Queued first, then written to the socket (the benchmark's latency starts there).
    written = sends[0].ts_written_ns
    assert written is not None and written >= sends[0].ts_send_ns


async def test_trade_publishes_last_trade_price_and_book(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=150)
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        await client.place_market_order(
            token_id=YES, side="SELL", shares="150", min_price="0.47", order_type="FAK"
        )
        trade = await feed.event()
        assert (trade["event_type"], trade["price"], trade["side"], trade["size"]) == (
            "last_trade_price",
            "0.47",
            "SELL",
            "150",
        )
        book = await feed.event()
        assert book["event_type"] == "book"
        assert (book["bids"], book["asks"][-1]["price"]) == (
            [{"price": "0.47", "size": "150"}],
            "0.52",
        )


async def test_resting_order_publishes_price_change(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=10)
    async with subscribe(exchange, [YES]) as feed:
        await feed.frame()
        await client.place_limit_order(token_id=YES, side="SELL", price="0.5", size="10")
        change = await feed.event()
        [entry] = change["price_changes"]
        assert (entry["side"], entry["price"], entry["size"], entry["best_ask"]) == (
            "SELL",
            "0.5",
            "10",
            "0.5",
        )
