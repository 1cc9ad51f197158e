"""``POST /order``, ``GET /data/trades``, the price-step control calls and the market
WebSocket as bare ASGI, in front of the Starlette app.

The benchmarks run this exchange on the same two cores as the worker they measure, so its
CPU per order is taken from the worker's, and a fire costs one request of each. Starlette's
part of a request (a regex match per route, the middleware stack, ``Request`` and
``JSONResponse`` objects) was ~250k of the ~2M instructions of a ``POST /order`` (round
12, ``bench.sim_order_cost --http --callgrind``). Here the body is read from ``receive``,
the headers are one dict and the answer is two ``send`` calls. The checks are the routes'
own (``clob_private.accept_order`` and ``trades_of``: L2 HMAC, owner, signature, wallet,
balance, matching), with Starlette's answers: a ``SimError`` as its JSON body and status,
anything else a logged 500. Faults (``FaultMiddleware``) stay outermost, so they apply to
these routes as to any other; any other request goes on to Starlette.

The benchmarks' price feed costs the exchange a ``POST /_sim/paths/{token}`` per token (or
a ``POST /_sim/prices/{token}`` per step) and a WebSocket frame per event or backlog
(round 13): those skip Starlette too, answered as ``control_routes`` answers them; the
market WebSocket's frames go straight to uvicorn's ``send``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from vincent.sim.clob_private import accept_order, trades_of
from vincent.sim.control import SimControl
from vincent.sim.control_routes import call_operation, parse_body
from vincent.sim.errors import SimError
from vincent.sim.state import SimState

logger = logging.getLogger(__name__)
_JSON_TYPE = (b"content-type", b"application/json")


# Control calls the benchmarks make once per token or price step, by path prefix.
_CONTROL_POSTS = {"/_sim/paths/": "start_path", "/_sim/prices/": "step_price"}
_CONTROL_PREFIX = "/_sim/"
_MARKET_WS = "/ws/market"


class HotRoutes:
    """Serves ``POST /order``, ``GET /data/trades``, the price-step control calls and the
    market WebSocket itself; anything else goes to ``app``."""

    def __init__(self, app: ASGIApp, state: SimState, control: SimControl) -> None:
        self.app = app
        self.state = state
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = (scope["method"], scope["path"])
            if route == ("POST", "/order"):
                await self._post_order(scope, receive, send)
                return
            if route == ("GET", "/data/trades"):
                await self._answer(send, scope, trades_of, _query(scope))
                return
            if route[0] == "POST" and route[1].startswith(_CONTROL_PREFIX):
                operation = _control_post(route[1])
                if operation is not None:
                    await self._control_post(receive, send, *operation)
                    return
        elif scope["type"] == "websocket" and scope["path"] == _MARKET_WS:
            # Each frame straight to uvicorn's ``send``: not through Starlette's wrappers.
            await self.state.exchange.feed.serve(WebSocket(scope, receive, send), send)
            return
        await self.app(scope, receive, send)

    async def _control_post(self, receive: Receive, send: Send, name: str, token_id: str) -> None:
        """``POST /_sim/paths/{token_id}`` and ``/_sim/prices/{token_id}``, answered as
        ``control_routes`` answers them (``{"ok": true}``, or the refusal)."""
        raw = await _body(receive)
        if raw is None:
            return
        status: int = 200
        answer: Any = {"ok": True}
        try:
            body = parse_body(raw)
            call_operation(getattr(self.control, name), token_id, **body)
        except SimError as error:
            status, answer = error.status, error.body()
        except Exception:
            logger.exception("sim.unexpected_error", extra={"path": name})
            status, answer = 500, {"error": "Internal Server Error"}
        await _send_json(send, status, answer)

    async def _post_order(self, scope: Scope, receive: Receive, send: Send) -> None:
        ts_receive_ns = self.state.timing.now_ns()
        raw = await _body(receive)
        if raw is None:
            return  # the client went away: nobody to answer
        await self._answer(send, scope, accept_order, raw, ts_receive_ns)

    async def _answer(
        self, send: Send, scope: Scope, handler: Callable[..., dict[str, Any]], *args: Any
    ) -> None:
        status = 200
        try:
            answer: Any = handler(self.state, _headers(scope), *args)
        except SimError as error:
            status, answer = error.status, error.body()
        except Exception:
            logger.exception("sim.unexpected_error", extra={"path": scope["path"]})
            status, answer = 500, {"error": "Internal Server Error"}
        await _send_json(send, status, answer)


def _control_post(path: str) -> tuple[str, str] | None:
    """(control method, token id) of a hot control path; None for any other path (as
    Starlette's ``{token_id}``, the id is one non-empty path segment)."""
    for prefix, name in _CONTROL_POSTS.items():
        if path.startswith(prefix):
            token_id = path[len(prefix) :]
            if token_id and "/" not in token_id:
                return name, token_id
    return None


def _headers(scope: Scope) -> dict[str, str]:
    """Header names are lower case in ASGI; of repeated headers the first counts, as in
    Starlette's ``Headers``."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


def _query(scope: Scope) -> Mapping[str, str]:
    """The query parameters as Starlette's ``QueryParams.get`` reads them (the last of a
    repeated name, blank values kept)."""
    return dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


async def _body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, content: Any) -> None:
    """What Starlette's ``JSONResponse`` sends: the same bytes and headers."""
    body = json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()
    headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
