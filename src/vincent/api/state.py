"""What the lifespan hands to requests (typed app state) and the per-request session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.config import Settings
from vincent.db.session import SessionFactory
from vincent.services.trade_manager.types import (
    NullRuleChangeListener,
    RuleChangeListener,
    WorkerStatus,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from vincent.services.trade_manager import TradeMonitoringWorker
    from vincent.skills.polymarket.types import TradingSkill


@dataclass
class AppState:
    settings: Settings
    session_factory: SessionFactory
    skill: TradingSkill | None = None
    rule_listener: RuleChangeListener = field(default_factory=NullRuleChangeListener)
    worker: TradeMonitoringWorker | None = None
    metrics_registries: list[CollectorRegistry] = field(default_factory=list)

    def worker_status(self) -> WorkerStatus:
        return WorkerStatus() if self.worker is None else self.worker.status()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.vincent
    return state


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Services commit their unit of work; this only closes."""
    async with app_state(request).session_factory() as session:
        yield session
