"""The ASGI app on one port, the in-process ``LocalExchange`` handle and the blocking ``run``.

Layout: CLOB at the root, /data-api, /gamma, /relayer, /ws/market, control under /_sim.
Owns the uvicorn server's lifecycle (start on a bound socket, stop with a timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from vincent.sim import clob_private, clob_public, control_routes, data_routes
from vincent.sim.auth import DEFAULT_MAX_SKEW_S, ApiKeyStore
from vincent.sim.control import SimControl
from vincent.sim.errors import SimError
from vincent.sim.exchange import Exchange
from vincent.sim.faults import FaultMiddleware, FaultPlan
from vincent.sim.hot_routes import HotRoutes
from vincent.sim.state import SimState
from vincent.sim.timing import TimingRecorder

logger = logging.getLogger(__name__)
_STOP_TIMEOUT_S = 5.0
DEFAULT_WS_BATCH_MAX = 100
"""Most events per WebSocket frame when a subscriber falls behind (1: one event per frame).

A subscriber that keeps up gets one event per frame; a backlog goes out as JSON arrays,
which Polymarket's feed also sends and clients must accept."""


async def _sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("sim.unexpected_error", extra={"path": request.url.path})
    return JSONResponse({"error": "Internal Server Error"}, status_code=500)


async def _market_ws(websocket: WebSocket) -> None:
    state: SimState = websocket.app.state.sim
    await state.exchange.feed.serve(websocket)


def build_state(
    max_skew_s: int = DEFAULT_MAX_SKEW_S, ws_batch_max: int = DEFAULT_WS_BATCH_MAX
) -> SimState:
    timing = TimingRecorder()
    return SimState(Exchange(timing, ws_batch_max), ApiKeyStore(max_skew_s), timing, FaultPlan())


def create_app(state: SimState, control: SimControl) -> ASGIApp:
    """The whole exchange as one ASGI app (faults outermost, then ``hot_routes``)."""
    app = Starlette(
        routes=[
            *clob_public.ROUTES,
            *clob_private.ROUTES,
            Mount("/data-api", routes=data_routes.DATA_ROUTES),
            Mount("/gamma", routes=data_routes.GAMMA_ROUTES),
            Mount("/relayer", routes=data_routes.RELAYER_ROUTES),
            Mount("/_sim", routes=control_routes.ROUTES),
            WebSocketRoute("/ws/market", _market_ws),
        ],
        exception_handlers={SimError: _sim_error, Exception: _unexpected},
    )
    app.state.sim = state
    app.state.control = control
    return FaultMiddleware(HotRoutes(app, state, control), state.faults)


class _Server(uvicorn.Server):
    """uvicorn's server, stopped as soon as ``LocalExchange.close`` asks.

    uvicorn notices ``should_exit`` on its next 0.1 s tick and then waits a fixed 0.1 s
    before looking at the connections: ~0.17 s per stop, and the test suite starts and
    stops an exchange hundreds of times. Here ``exit_now`` wakes the main loop at once and
    the shutdown waits only while connections or requests are still open (bounded by
    ``timeout_graceful_shutdown``, as uvicorn's own). Signals (``vincent sim``) still stop
    it on the next tick.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_now = asyncio.Event()

    def exit_now(self) -> None:
        self.should_exit = True
        self._exit_now.set()

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):  # uvicorn's tick: the Date header, signals
                    await self._exit_now.wait()
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn signals neither: poll, as its own shutdown does (every 0.1 s).
                while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
        except TimeoutError:
            logger.warning("sim.stop_cancels_tasks", extra={"tasks": len(self.server_state.tasks)})
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


class LocalExchange(SimControl):
    """A running exchange on loopback: its URLs plus every control method (``SimControl``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        max_skew_s: int = DEFAULT_MAX_SKEW_S,
        ws_batch_max: int = DEFAULT_WS_BATCH_MAX,
        ws_compression: bool = False,
    ) -> None:
        """``max_skew_s``: L2 timestamp tolerance. ``ws_compression``: permessage-deflate."""
        super().__init__(build_state(max_skew_s, ws_batch_max))
        self._ws_compression = ws_compression
        self.host = host
        self._requested_port = port
        self.port = 0
        self.app = create_app(self.state, self)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> AsyncIterator[LocalExchange]:
        """Serve until the block exits: ``async with LocalExchange.start() as ex: ...``."""
        exchange = cls(host, port, **options)
        await exchange.open()
        try:
            yield exchange
        finally:
            await exchange.close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def clob_url(self) -> str:
        return self.base_url

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/market"

    @property
    def data_api_url(self) -> str:
        return f"{self.base_url}/data-api"

    @property
    def gamma_url(self) -> str:
        return f"{self.base_url}/gamma"

    @property
    def relayer_url(self) -> str:
        return f"{self.base_url}/relayer"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_sim"

    async def open(self) -> None:
        if self._server is not None:
            raise RuntimeError("LocalExchange already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this; without it small replies can wait ~40 ms for a
        # delayed ACK (measured here: 44 ms per request instead of 1 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
            # uvicorn closes an idle connection after 5 s, exactly when httpx's pool would
            # still reuse it: a request can meet the close ("Server disconnected without
            # sending a response"). Polymarket's edge keeps idle connections far longer.
            timeout_keep_alive=75,
            ws_per_message_deflate=self._ws_compression,
            # Not uvicorn's "auto" choice, so a missing httptools fails at start. Requests are
            # not logged (the access log costs a call per request even when filtered out).
            http="httptools",
            access_log=False,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(_STOP_TIMEOUT_S):
            while not self._server.started:
                if self._task.done():
                    await self._task
                await asyncio.sleep(0.001)

    async def wait_closed(self) -> None:
        """Wait until the server stops (on SIGINT/SIGTERM, which uvicorn handles)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop price paths, release hung requests, drop sockets, stop the server."""
        if self._server is None or self._task is None or self._closed:
            return
        self._closed = True
        await self.prices.stop()
        self.state.faults.clear()
        self.state.exchange.feed.drop_all()
        self._server.exit_now()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await self._task
        except TimeoutError:
            self._server.force_exit = True
            logger.warning("sim.stop_timeout")
            await self._task


Loop = Literal["uvloop", "asyncio"]


def run(
    host: str = "127.0.0.1",
    port: int = 8765,
    ws_batch_max: int = DEFAULT_WS_BATCH_MAX,
    ws_compression: bool = False,
    loop: Loop = "uvloop",
) -> None:
    """Serve the exchange until interrupted (the ``vincent sim`` command); port 0 is allowed.

    Prints one line with the URLs once the server accepts connections. ``loop``: uvloop
    (default: less CPU per request, which the benchmarks share with the worker) or asyncio's.
    """
    factory = None
    if loop == "uvloop":
        import uvloop  # only this command needs it (uvicorn[standard] installs it)

        factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        # Ctrl-C is the normal way to stop.
        runner.run(_serve(host, port, ws_batch_max, ws_compression))


async def _serve(host: str, port: int, ws_batch_max: int, ws_compression: bool) -> None:
    exchange = LocalExchange(host, port, ws_batch_max=ws_batch_max, ws_compression=ws_compression)
    await exchange.open()
    print(
        f"local exchange ready: CLOB {exchange.clob_url}  WS {exchange.ws_url}  "
        f"control {exchange.control_url}",
        flush=True,
    )
    try:
        await exchange.wait_closed()
    finally:
        await exchange.close()
