"""``/mcp`` on the API server: streamable HTTP, authenticated with the agent's API key.

The Bearer key is checked as the REST API checks it (same parser, same resolver, same
401 envelope) before the MCP layer sees the request. Each tool call then makes its REST
request in process (``httpx.ASGITransport`` into this same app) with that key and the
caller's address: the same routes, tenancy and request limit as a REST call. Stateless:
any API process can answer any MCP request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vincent.api.auth import parse_bearer
from vincent.api.envelope import error_body
from vincent.api.middleware import trace_id_var
from vincent.api.rate_limit import (
    INTERNAL_HEADER,
    INTERNAL_TOKEN,
    RequestLimitExceeded,
    charge_address,
    charge_key,
    retry_after_header,
)
from vincent.api.state import AppState, key_lookup_sessions
from vincent.errors import Unauthorized
from vincent.mcp.rest_client import VincentRestClient
from vincent.mcp.tools import build_mcp_server
from vincent.services.api_keys import authenticate_api_key

# Where the endpoint leaves the resolved secret id for the tools (the request scope).
SECRET_ID_SCOPE_KEY = "vincent.secret_id"
MCP_PATH = "/mcp"


def _scope_of(ctx: Context[Any, Any]) -> Scope | None:
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, dict) else None


class McpEndpoint:
    """The ASGI endpoint mounted at ``/mcp``: API-key auth, then the MCP session manager."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.server: MCPServer = build_mcp_server(self._client_for, self._secret_id_for)
        # Host/Origin checks guard unauthenticated local servers against DNS rebinding; this
        # endpoint takes a bearer key from every caller instead.
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the session manager (its task group) while the app's lifespan lasts.

        The task group lives in a task of its own: an anyio cancel scope must be left by the
        task that entered it, and a lifespan may be entered and left by different tasks.
        """
        started = asyncio.Event()
        stop = asyncio.Event()

        async def hold() -> None:
            async with self.server.session_manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(hold(), name="mcp-session-manager")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()  # raises what stopped it
        try:
            yield
        finally:
            stop.set()
            await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._authenticate(scope)
        except (Unauthorized, RequestLimitExceeded) as error:
            await _refuse(send, error)
            return
        await self.server.session_manager.handle_request(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> None:
        headers = dict(scope.get("headers", []))
        raw = headers.get(b"authorization")
        request = Request(scope)
        try:
            key = parse_bearer(None if raw is None else raw.decode("latin-1"))
        except Unauthorized:
            charge_address(request)
            raise
        state: AppState = scope["app"].state.vincent
        secret = await authenticate_api_key(key_lookup_sessions(state), key, state.api_key_cache)
        if secret is None:
            charge_address(request)  # guessing keys over MCP is as slow as over REST
            raise Unauthorized("Invalid or revoked API key")
        # The request limit of the key, once per MCP request: the tools' REST calls carry
        # the internal header and are not charged again.
        charge_key(request, secret.api_key_id)
        scope[SECRET_ID_SCOPE_KEY] = secret.id

    def _secret_id_for(self, ctx: Context[Any, Any]) -> str | None:
        scope = _scope_of(ctx)
        value = None if scope is None else scope.get(SECRET_ID_SCOPE_KEY)
        return value if isinstance(value, str) else None

    @asynccontextmanager
    async def _client_for(self, ctx: Context[Any, Any]) -> AsyncIterator[VincentRestClient]:
        scope = _scope_of(ctx)
        assert scope is not None, "an HTTP tool call always has its request"
        forwarded = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name in (b"authorization", b"x-forwarded-for")
        }
        forwarded[INTERNAL_HEADER.decode()] = INTERNAL_TOKEN
        client_address = scope.get("client") or ("127.0.0.1", 0)
        # A crash in a route is its 500 envelope here (INTERNAL_ERROR), as over the network.
        transport = httpx.ASGITransport(
            app=self._app, client=tuple(client_address), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(
            transport=transport, base_url="http://vincent", headers=forwarded
        ) as client:
            yield VincentRestClient(client)


async def _refuse(send: Send, error: Unauthorized | RequestLimitExceeded) -> None:
    body = json.dumps(error_body(error.code, error.message, None, trace_id_var.get()))
    if isinstance(error, RequestLimitExceeded):
        # The middleware adds the RateLimit-* headers to this answer as to any other.
        status = 429
        extra = [(b"retry-after", retry_after_header(error.retry_after_s).encode())]
    else:
        status = 401
        extra = [(b"www-authenticate", b'Bearer realm="vincent"')]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
