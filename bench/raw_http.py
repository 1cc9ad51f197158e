"""A minimal keep-alive HTTP/1.1 client for the API benchmark's load.

``httpx`` costs the benchmark ~0.7 ms of CPU per request, as much as the server's own
cost, and on a two-core machine the client's CPU is CPU the server does not get. This
client writes a request and reads ``Content-Length`` (or chunked) bytes back: about a
tenth of that. It knows only what the benchmark sends (small JSON bodies, one request at
a time per connection) and is not a general HTTP client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

TIMEOUT_S = 30.0


class RawHttpConnection:
    """One connection to ``host:port``, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any = None,
    ) -> tuple[int, bytes]:
        """Send ``method path`` (``body`` as JSON when given); the status and the body."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        payload = b""
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        async with asyncio.timeout(TIMEOUT_S):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            assert self._reader is not None
            self._writer.write(message)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, chunked, close = _framing(head)
            if chunked:
                data = await _read_chunked(self._reader)
            else:
                data = await self._reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


def _framing(head: bytes) -> tuple[int, bool, bool]:
    """(Content-Length, chunked, connection close) from a response head."""
    length, chunked, close = 0, False, False
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        value = value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and value == b"close":
            close = True
    return length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
