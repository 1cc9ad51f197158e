"""What the lifespan hands to requests (typed app state) and the per-request session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.config import Settings
from vincent.db.session import DEFAULT_POOL_SIZE, SessionFactory
from vincent.services.api_keys import ApiKeyCache
from vincent.services.trade_manager.types import (
    NullRuleChangeListener,
    RuleChangeListener,
    WorkerStatus,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from vincent.api.rule_changes import RuleChangeSubscriber
    from vincent.api.worker_status_file import StatusReader
    from vincent.services.trade_manager import TradeMonitoringWorker
    from vincent.skills.polymarket.types import TradingSkill

# How long a request waits for a database turn before it fails (as long as SQLAlchemy's
# pool waits for a connection).
DB_TURN_TIMEOUT_S = 30.0


def api_pool_size(settings: Settings) -> int:
    """Connections the API process's engine keeps: one per database turn of its requests
    (``API_DB_CONCURRENCY``) and two more for what takes no turn (the in-process worker,
    the skill, the dashboard), never fewer than an engine's default."""
    return max(DEFAULT_POOL_SIZE, settings.api_db_concurrency + 2)


@dataclass
class AppState:
    """What requests share. Sessions come from ``session_factory`` (transactional), except
    the trade-rule routes' reads: ``read_sessions`` (PostgreSQL: autocommit, so a read is
    its statements alone, without BEGIN/ROLLBACK; defaults to ``session_factory``)."""

    settings: Settings
    session_factory: SessionFactory
    read_sessions: SessionFactory | None = None
    # The turns of ``API_DB_CONCURRENCY``: requests hold one while they hold a session
    # (``gated_session``). None: no limit.
    db_turns: asyncio.Semaphore | None = None
    api_key_cache: ApiKeyCache = field(default_factory=ApiKeyCache)
    # Gamma slugs by condition id: (monotonic expiry, slug or None); see trade_rules.
    market_slugs: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    skill: TradingSkill | None = None
    rule_listener: RuleChangeListener = field(default_factory=NullRuleChangeListener)
    # PostgreSQL without a worker in this process: announce rule changes with pg_notify.
    notify_rule_changes: bool = False
    # Where a worker runs on PostgreSQL: the LISTEN side of those notifications.
    rule_changes: RuleChangeSubscriber | None = None
    worker: TradeMonitoringWorker | None = None
    metrics_registries: list[CollectorRegistry] = field(default_factory=list)

    # No worker here: the status ``vincent worker`` publishes on this host, if any.
    status_reader: StatusReader | None = None

    def worker_status(self) -> WorkerStatus:
        if self.worker is not None:
            return self.worker.status()
        return WorkerStatus() if self.status_reader is None else self.status_reader.status()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.vincent
    return state


async def current_state(request: Request) -> AppState:
    """``app_state`` as a dependency (async: a sync dependency would run in a thread)."""
    state: AppState = request.app.state.vincent
    return state


@asynccontextmanager
async def gated_session(state: AppState, sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session of ``sessions``, opened once one of the process's database turns is free
    (``state.db_turns``), the turn given back when it closes.

    Requests past ``API_DB_CONCURRENCY`` wait here, in order, on an asyncio semaphore.
    Without it, 32 concurrent clients put ~20 requests into SQLAlchemy and PostgreSQL at
    once (the pool's 10 + 10), the rest waited inside the pool, and every connection
    returned past the 10 kept ones was closed and another opened (TLS attempt, type
    introspection, statements prepared again): a read cost ~1.5 ms of server CPU, against
    ~1.0 ms with 8 turns (issue 14 round 13). A request never holds two turns: the API-key
    lookup's session is closed before the route's is opened. Waiting longer than
    ``DB_TURN_TIMEOUT_S`` raises SQLAlchemy's pool ``TimeoutError``, as a pool wait did.
    """
    turns = state.db_turns
    if turns is None:
        async with sessions() as session:
            yield session
        return
    if turns.locked():
        try:
            async with asyncio.timeout(DB_TURN_TIMEOUT_S):
                await turns.acquire()
        except TimeoutError:
            raise PoolTimeout(
                f"no database turn free in {DB_TURN_TIMEOUT_S:.0f} s "
                f"(API_DB_CONCURRENCY={state.settings.api_db_concurrency})"
            ) from None
    else:
        await turns.acquire()
    try:
        async with sessions() as session:
            yield session
    finally:
        turns.release()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Services commit their unit of work; this only closes."""
    state: AppState = request.app.state.vincent
    async with gated_session(state, state.session_factory) as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for reads (autocommit on PostgreSQL: each statement commits on its own)."""
    state: AppState = request.app.state.vincent
    async with gated_session(state, state.read_sessions or state.session_factory) as session:
        yield session


def key_lookup_sessions(state: AppState) -> Callable[[], AbstractAsyncContextManager[AsyncSession]]:
    """Sessions for the API-key lookup of a request (REST or MCP), each taking a turn."""
    sessions = state.read_sessions or state.session_factory
    return lambda: gated_session(state, sessions)
