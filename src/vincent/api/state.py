"""What the lifespan hands to requests (typed app state) and the per-request session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.config import Settings
from vincent.db.session import SessionFactory
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


@dataclass
class AppState:
    """What requests share. Sessions come from ``session_factory`` (transactional), except
    the trade-rule routes' reads: ``read_sessions`` (PostgreSQL: autocommit, so a read is
    its statements alone, without BEGIN/ROLLBACK; defaults to ``session_factory``)."""

    settings: Settings
    session_factory: SessionFactory
    read_sessions: SessionFactory | None = None
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


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Services commit their unit of work; this only closes."""
    state: AppState = request.app.state.vincent
    async with state.session_factory() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for reads (autocommit on PostgreSQL: each statement commits on its own)."""
    state: AppState = request.app.state.vincent
    async with (state.read_sessions or state.session_factory)() as session:
        yield session
