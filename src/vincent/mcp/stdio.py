"""``vincent mcp``: the MCP server over stdio, for agents that spawn their tools.

It runs where the agent runs and calls a Vincent server's REST API over HTTP with the
agent's key, so it needs no database or wallet of its own. The key is checked once at start
(a refused key ends the process with one line on stderr); stdout carries only MCP messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context

from vincent.mcp.rest_client import VincentRestClient
from vincent.mcp.tools import build_mcp_server

REQUEST_TIMEOUT_S = 30.0


def rest_http_client(url: str, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=REQUEST_TIMEOUT_S,
    )


async def check_key(client: VincentRestClient) -> None:
    """Raise ``RestError`` unless the server accepts the key (one GET /rules/status)."""
    await client.request("GET", "/rules/status")


async def serve_stdio(url: str, api_key: str) -> None:
    """Serve MCP on stdin/stdout until the client closes it. Raises ``RestError`` at start
    when the server refuses the key or cannot be reached."""
    async with rest_http_client(url, api_key) as http:
        rest = VincentRestClient(http)
        await check_key(rest)

        @asynccontextmanager
        async def client_for(_ctx: Context[Any, Any]) -> AsyncIterator[VincentRestClient]:
            yield rest

        server = build_mcp_server(client_for, lambda _ctx: None)
        await server.run_stdio_async()
