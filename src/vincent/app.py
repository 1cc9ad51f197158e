"""The app factory and its lifespan: engine → skill → worker, closed in reverse order."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from vincent import __version__, dashboard
from vincent.api.errors import install_error_handlers
from vincent.api.middleware import BodySizeLimitMiddleware, TraceIdMiddleware
from vincent.api.rate_limit import (
    RateLimitMiddleware,
    RateLimits,
    build_rate_limits,
    parse_networks,
)
from vincent.api.routes import admin, health, polymarket, polymarket_trading
from vincent.api.routes import secrets as secrets_routes
from vincent.api.rule_changes import RuleChangeSubscriber
from vincent.api.state import AppState, api_pool_size
from vincent.api.worker_status_file import StatusReader, publish_status
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.errors import ConfigurationError
from vincent.services.api_keys import ApiKeyCache
from vincent.services.trade_manager import (
    start_trade_monitoring_worker,
    stop_trade_monitoring_worker,
)
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill

if TYPE_CHECKING:
    from vincent.mcp.http_endpoint import McpEndpoint

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Automated exit rules (stop-loss, take-profit, trailing stop) on Polymarket positions.
Authenticate with `Authorization: Bearer <Vincent Polymarket API key>`.
Every response is `{"success": true, "data": ...}` or
`{"success": false, "error": {"code", "message", "details"}}`.
Agents without a key create one with `POST /api/secrets` (no auth). The same tools are
served over MCP (streamable HTTP) at `/mcp` with the same Bearer key; see SKILL.md.
"""

SkillFactory = Callable[[Settings, SessionFactory, KeyBox], PolymarketSkill]


def create_app(
    settings: Settings,
    *,
    skill_factory: SkillFactory | None = create_polymarket_skill,
    gc_freeze: bool = False,
) -> FastAPI:
    """Build the ASGI app. Resources open in the lifespan, never at import or build time.

    ``gc_freeze`` (the process's owner, ``vincent serve``, passes True): once the lifespan
    has opened everything, ``gc.freeze()`` what the process holds, so full collections no
    longer walk the ~260k objects of the imported libraries and the app.
    """
    if settings.vincent_encryption_key is None:
        raise ConfigurationError("VINCENT_ENCRYPTION_KEY is required (serve generates one)")
    keybox = KeyBox(settings.vincent_encryption_key.get_secret_value())
    mcp_endpoint: McpEndpoint | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if mcp_endpoint is not None:
                await stack.enter_async_context(mcp_endpoint.running())
            engine = create_engine(settings.database_url, pool_size=api_pool_size(settings))
            stack.push_async_callback(engine.dispose)
            state = AppState(
                settings=settings,
                session_factory=create_session_factory(engine),
                api_key_cache=ApiKeyCache(settings.api_key_cache_ttl_s),
                db_turns=asyncio.Semaphore(settings.api_db_concurrency),
            )
            if not settings.is_sqlite:
                # Reads without BEGIN/ROLLBACK: the level is set on the pooled connection
                # locally at checkout and reset on return (no round trip with asyncpg).
                state.read_sessions = create_session_factory(
                    engine.execution_options(isolation_level="AUTOCOMMIT")
                )
            app.state.vincent = state
            if skill_factory is not None:
                skill = skill_factory(settings, state.session_factory, keybox)
                stack.push_async_callback(skill.aclose)
                state.skill = skill
                if settings.trade_manager_enabled:
                    await _start_worker(stack, state, skill)
            app.state.dashboard_hub = await stack.enter_async_context(dashboard.running_hub(state))
            # PostgreSQL: announce every rule change, since the leading worker (standby
            # workers: any of them) may run in another process.
            state.notify_rule_changes = not settings.is_sqlite
            if state.worker is None:
                state.status_reader = StatusReader(settings.worker_status_file)
            if gc_freeze:
                # The garbage first; then what is alive now stays out of every collection.
                gc.collect()
                gc.freeze()
            logger.info(
                "vincent started",
                extra={"worker": state.worker is not None, "mode": settings.execution_mode.value},
            )
            yield
            logger.info("vincent stopping")

    app = FastAPI(
        title="Vincent Trade Manager",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(polymarket.router)
    app.include_router(secrets_routes.create_router(settings, keybox))
    _include_skill_routers(app)
    catch_all = APIRouter(prefix="/api/skills/polymarket")
    polymarket.include_catch_all(catch_all)
    app.include_router(catch_all)
    dashboard.mount(app)
    if settings.mcp_enabled:
        mcp_endpoint = _mount_mcp(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(TraceIdMiddleware)
    if settings.rate_limits_enabled:
        # Outermost: a refused request costs no trace id, body read or route lookup.
        app.add_middleware(RateLimitMiddleware, limits=rate_limits_for(settings))
    return app


def rate_limits_for(settings: Settings) -> RateLimits:
    """This process's request limits: its share of the service's (``api_workers``)."""
    return build_rate_limits(
        per_key=settings.rate_limit_per_key,
        per_address=settings.effective_rate_limit_per_address,
        window_s=settings.rate_limit_window_ms / 1000,
        burst_s=settings.rate_limit_burst_s,
        processes=settings.api_workers,
        clock=time.monotonic,
        trusted_proxies=parse_networks(settings.trusted_proxies) if settings.trust_proxy else None,
    )


async def run_monitoring_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    skill_factory: SkillFactory = create_polymarket_skill,
    metrics_port: int | None = None,
) -> None:
    """The trade manager alone, no API (``vincent worker``), until ``stop`` is set.

    With ``metrics_port``, its Prometheus metrics are served on ``settings.host`` there.
    """
    if settings.vincent_encryption_key is None:
        raise ConfigurationError("VINCENT_ENCRYPTION_KEY is required")
    keybox = KeyBox(settings.vincent_encryption_key.get_secret_value())
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        state = AppState(settings=settings, session_factory=create_session_factory(engine))
        skill = skill_factory(settings, state.session_factory, keybox)
        stack.push_async_callback(skill.aclose)
        await _start_worker(stack, state, skill)
        if metrics_port is not None:
            from prometheus_client import start_http_server

            assert state.worker is not None
            server, _thread = start_http_server(
                metrics_port, settings.host, registry=state.worker.metrics_registry
            )
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
        assert state.worker is not None
        publisher = asyncio.create_task(
            publish_status(settings.worker_status_file, state.worker.status, stop)
        )
        logger.info("vincent worker started", extra={"mode": settings.execution_mode.value})
        await stop.wait()
        logger.info("vincent worker stopping")
        await publisher


def _mount_mcp(app: FastAPI) -> McpEndpoint:
    """The MCP server (streamable HTTP) at ``/mcp``, behind the same middleware as REST."""
    from starlette.routing import Route

    from vincent.mcp.http_endpoint import MCP_PATH, McpEndpoint

    endpoint = McpEndpoint(app)
    app.router.routes.append(Route(MCP_PATH, endpoint, include_in_schema=False))
    return endpoint


def _include_skill_routers(app: FastAPI) -> None:
    """The skill's trading routes and the owner's admin API."""
    app.include_router(polymarket_trading.router, prefix="/api/skills/polymarket")
    app.include_router(admin.router)


async def _start_worker(stack: AsyncExitStack, state: AppState, skill: PolymarketSkill) -> None:
    """Start the monitoring worker; it becomes the API's rule listener and metrics source."""
    worker = await start_trade_monitoring_worker(state.settings, state.session_factory, skill)
    stack.push_async_callback(stop_trade_monitoring_worker, worker)
    state.worker = worker
    state.rule_listener = worker
    state.metrics_registries.append(worker.metrics_registry)
    if not state.settings.is_sqlite:  # rule changes made by API-only processes
        subscriber = RuleChangeSubscriber(
            state.settings.database_url,
            state.session_factory,
            worker,
            execution_mode=state.settings.execution_mode,
        )
        await subscriber.start()
        stack.push_async_callback(subscriber.stop)
        state.rule_changes = subscriber
