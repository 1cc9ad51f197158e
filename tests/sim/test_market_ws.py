"""The market WebSocket: snapshots, price changes, PING/PONG, subscriptions, drop and stall."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.sim.conftest import CONDITION_ID, NO, YES
from vincent.sim import LocalExchange

TIMEOUT_S = 2.0


async def receive(ws: ClientConnection) -> Any:
    async with asyncio.timeout(TIMEOUT_S):
        raw = await ws.recv()
    return raw if raw in ("PONG", "INVALID OPERATION") else json.loads(raw)


async def subscribe(exchange: LocalExchange, assets: list[str], custom: bool = False) -> Any:
    ws = await connect(exchange.ws_url)
    message: dict[str, Any] = {"assets_ids": assets, "type": "market"}
    if custom:
        message["custom_feature_enabled"] = True
    await ws.send(json.dumps(message))
    return ws


async def test_snapshot_then_price_changes_in_order(exchange: LocalExchange) -> None:
    async with await subscribe(exchange, [YES]) as ws:
        snapshot = await receive(ws)
        assert isinstance(snapshot, list)
        book = snapshot[0]
        assert (book["event_type"], book["asset_id"], book["market"]) == ("book", YES, CONDITION_ID)
        assert [lv["price"] for lv in book["bids"]] == ["0.47", "0.48"]  # best last
        assert [lv["price"] for lv in book["asks"]] == ["0.53", "0.52"]  # best last

        exchange.step_price(YES, "0.55", depth=1, size=10)
        change = await receive(ws)
        assert change["event_type"] == "price_change"
        entries = change["price_changes"]
        assert {(e["side"], e["price"], e["size"]) for e in entries} >= {
            ("BUY", "0.55", "10"),
            ("BUY", "0.48", "0"),
            ("SELL", "0.56", "10"),
        }
        assert {(e["best_bid"], e["best_ask"]) for e in entries} == {("0.55", "0.56")}


async def test_scripted_path_and_trades_reach_the_subscriber(exchange: LocalExchange) -> None:
    async with await subscribe(exchange, [YES]) as ws:
        await receive(ws)
        await exchange.start_path(YES, ["0.50", "0.51", "0.49"])
        best_bids = [(await receive(ws))["price_changes"][0]["best_bid"] for _ in range(3)]
        assert best_bids == ["0.50", "0.51", "0.49"]
        exchange.set_tick_size(YES, "0.001")
        tick = await receive(ws)
        assert (tick["event_type"], tick["old_tick_size"], tick["new_tick_size"]) == (
            "tick_size_change",
            "0.01",
            "0.001",
        )


async def test_ping_pong_and_unsubscribed_assets_stay_silent(exchange: LocalExchange) -> None:
    async with await subscribe(exchange, [YES]) as ws:
        await receive(ws)
        exchange.step_price(NO, "0.30")  # not subscribed: nothing may arrive
        await ws.send("PING")
        assert await receive(ws) == "PONG"

        await ws.send(json.dumps({"assets_ids": [NO], "operation": "subscribe"}))
        assert (await receive(ws))[0]["asset_id"] == NO
        await ws.send(json.dumps({"assets_ids": [YES], "operation": "unsubscribe"}))
        await ws.send("PING")
        assert await receive(ws) == "PONG"  # the unsubscribe is processed before this
        exchange.step_price(YES, "0.20")
        exchange.step_price(NO, "0.31")
        message = await receive(ws)
        assert {e["asset_id"] for e in message["price_changes"]} == {NO}


async def test_custom_feature_events(exchange: LocalExchange) -> None:
    async with await subscribe(exchange, [YES], custom=True) as ws:
        await receive(ws)
        exchange.step_price(YES, "0.60")
        assert (await receive(ws))["event_type"] == "price_change"
        best = await receive(ws)
        assert (best["event_type"], best["best_bid"], best["best_ask"], best["spread"]) == (
            "best_bid_ask",
            "0.60",
            "0.61",
            "0.01",
        )
        exchange.resolve(CONDITION_ID, YES)
        resolved = await receive(ws)
        assert resolved["event_type"] == "market_resolved"
        assert (resolved["winning_asset_id"], resolved["winning_outcome"]) == (YES, "Yes")


async def test_drop_closes_every_connection(exchange: LocalExchange) -> None:
    async with await subscribe(exchange, [YES]) as first, await subscribe(exchange, [NO]) as second:
        await receive(first)
        await receive(second)
        assert exchange.drop_websockets() == 2
        for ws in (first, second):
            with pytest.raises(ConnectionClosed):
                await receive(ws)


async def test_stall_withholds_everything_until_resume(exchange: LocalExchange) -> None:
    async with await subscribe(exchange, [YES]) as ws:
        await receive(ws)
        exchange.stall_websockets()
        await ws.send("PING")
        exchange.step_price(YES, "0.40")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ws.recv()
        exchange.resume_websockets()
        held = [await receive(ws), await receive(ws)]
        assert "PONG" in held
        assert [m["event_type"] for m in held if m != "PONG"] == ["price_change"]


async def test_price_sends_are_timed(exchange: LocalExchange) -> None:
    exchange.clear_timing()
    async with await subscribe(exchange, [YES]) as ws:
        await receive(ws)
        exchange.step_price(YES, "0.45")
        change = await receive(ws)
    sends = [s for s in exchange.price_sends() if s.event_type == "price_change"]
    assert len(sends) == 1
    assert sends[0].token_id == YES
    assert change["price_changes"][0]["hash"] == f"0x{sends[0].seq:040x}"
