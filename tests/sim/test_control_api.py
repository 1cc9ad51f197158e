"""The /_sim control API over HTTP (what docs/local-exchange.md shows) and the CLI entry point."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from vincent.sim import LocalExchange

CONDITION = "0x" + "e5" * 32
UP, DOWN = (
    "1111111111111111111111111111111111111111111",
    "2222222222222222222222222222222222222222222",
)
WALLET = "0x00000000000000000000000000000000000000aa"


async def test_control_api_round_trip() -> None:
    async with (
        LocalExchange.start() as exchange,
        httpx.AsyncClient(base_url=exchange.control_url) as control,
        httpx.AsyncClient(base_url=exchange.base_url) as http,
    ):
        created = await control.post(
            "/markets",
            json={
                "condition_id": CONDITION,
                "token_ids": [UP, DOWN],
                "tick_size": "0.001",
                "min_order_size": 1,
                "neg_risk": True,
                "title": "Up or down?",
                "slug": "up-or-down",
                "outcomes": ["Up", "Down"],
            },
        )
        assert created.status_code == 200
        book = {"bids": [["0.499", 10]], "asks": [["0.501", 12]]}
        assert (await control.put(f"/books/{UP}", json=book)).status_code == 200
        assert (await http.get("/midpoint", params={"token_id": UP})).json() == {"mid": "0.5"}
        assert (await http.get("/neg-risk", params={"token_id": UP})).json() == {"neg_risk": True}
        clob_market = (await http.get(f"/clob-markets/{CONDITION}")).json()
        assert (clob_market["mts"], clob_market["mos"], clob_market["nr"]) == (0.001, 1.0, True)

        await control.post(f"/prices/{UP}", json={"best_bid": "0.6", "depth": 1})
        assert (await http.get("/price", params={"token_id": UP, "side": "BUY"})).json() == {
            "price": "0.6"
        }
        await control.post(
            "/credits", json={"address": WALLET, "collateral": "12.5", "token_id": UP, "shares": 3}
        )
        balances = (await control.get(f"/balances/{WALLET}")).json()
        assert (balances["collateral"], balances["shares"]) == ("12.5", {UP: "3"})

        await control.put("/version", json={"version": 3})
        assert (await http.get("/version")).json() == {"version": 3}

        armed = await control.post(
            "/faults", json={"kind": "rate_limit", "path": "/book", "count": 1, "retry_after_s": 2}
        )
        assert armed.json()["faults"]["/book"][0]["kind"] == "rate_limit"
        limited = await http.get("/book", params={"token_id": UP})
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
        await control.post("/faults", json={"kind": "error", "path": "/book", "status": 503})
        await control.delete("/faults")
        assert (await http.get("/book", params={"token_id": UP})).status_code == 200

        async with connect(exchange.ws_url) as ws:
            await ws.send(json.dumps({"assets_ids": [UP], "type": "market"}))
            await ws.recv()
            await control.post(f"/paths/{UP}", json={"prices": ["0.41", "0.42"]})
            await control.post(
                "/resolutions", json={"condition_id": CONDITION, "winning_token_id": UP}
            )
            assert (await control.post("/ws/drop")).json() == {"ok": True, "dropped": 1}
            received = []
            try:
                async with asyncio.timeout(2):
                    while True:
                        received.append(await ws.recv())
            except ConnectionClosed:
                pass
        assert received  # the path's price changes arrived before the drop
        timing = (await control.get("/timing")).json()
        assert timing["clock"] == "perf_counter_ns"
        assert {s["event_type"] for s in timing["price_sends"]} >= {"price_change"}
        status = (await control.get("/status")).json()
        assert (status["version"], status["markets"]) == (3, 1)
        unknown = await control.post("/faults", json={"kind": "nope", "path": "/book"})
        assert unknown.status_code == 400


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_python_module_serves_and_stops(loop: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vincent.sim",
        "--port",
        "0",
        "--loop",
        loop,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(5):
            line = (await process.stdout.readline()).decode()
        clob_url = line.split("CLOB ")[1].split()[0]
        async with httpx.AsyncClient(base_url=clob_url) as http:
            assert (await http.get("/version")).json() == {"version": 2}
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(5):
            assert await process.wait() == 0
