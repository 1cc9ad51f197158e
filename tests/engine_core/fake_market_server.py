"""A stand-in for Polymarket's market WebSocket: the outermost edge only.

A real ``websockets`` server on 127.0.0.1, port 0. It records what each connection sends,
answers ``PING`` with ``PONG`` (unless told to stall), and lets a test push frames or drop
the connection. ``events`` keeps, in arrival order, every connection's messages and closes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class FakeConnection:
    def __init__(self, ws: ServerConnection, number: int) -> None:
        self.ws = ws
        self.number = number
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pings: asyncio.Queue[None] = asyncio.Queue()
        self.closed = asyncio.Event()

    async def next_message(self) -> dict[str, Any]:
        return await self.messages.get()

    async def send(self, frame: str) -> None:
        await self.ws.send(frame)

    async def drop(self) -> None:
        await self.ws.close()


class FakeMarketServer:
    def __init__(self) -> None:
        self.connections: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self.answer_pings = True
        # (connection number, message) in arrival order; the message is None for a close.
        self.events: list[tuple[int, dict[str, Any] | None]] = []
        self._opened = 0
        self.url = ""
        self._server: Server | None = None

    async def __aenter__(self) -> FakeMarketServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def next_connection(self) -> FakeConnection:
        return await self.connections.get()

    async def _handle(self, ws: ServerConnection) -> None:
        connection = FakeConnection(ws, self._opened)
        self._opened += 1
        self.connections.put_nowait(connection)
        try:
            async for message in ws:
                if message == "PING":
                    connection.pings.put_nowait(None)
                    if self.answer_pings:
                        await ws.send("PONG")
                    continue
                decoded = json.loads(message)
                self.events.append((connection.number, decoded))
                connection.messages.put_nowait(decoded)
        except ConnectionClosed:
            pass
        finally:
            self.events.append((connection.number, None))
            connection.closed.set()
