"""End-to-end support: the real local exchange, the real skill, a real worker, real rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tests.skill.conftest import MarketIds, new_market_ids, skill_settings
from vincent.config import Settings
from vincent.db.models import TradeRule, TradeRuleEvent, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TransactionStatus
from vincent.services.trade_manager.backoff import BackoffPolicy
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.services.trade_manager.polymarket_websocket import MarketFeedConfig
from vincent.sim import LocalExchange
from vincent.skills.polymarket.types import TradingSkill

# Fast retries and reconnects keep the fault tests short; behaviour is the same.
FAST_RETRY = BackoffPolicy(min_delay_s=0.05, max_delay_s=0.2)
FAST_FEED = MarketFeedConfig(
    ping_interval_s=0.5,
    stale_after_s=2.0,
    reconnect_backoff=BackoffPolicy(min_delay_s=0.05, max_delay_s=0.2),
)


def worker_settings(exchange: LocalExchange, database_url: str, **overrides: Any) -> Settings:
    """Settings pointing at ``exchange``; a long poll interval unless a test wants ticks."""
    base = skill_settings(exchange, database_url, timeout_s=2.0)
    values: dict[str, Any] = {"trade_manager_poll_interval_s": 60.0, **overrides}
    return base.model_copy(update=values)


@asynccontextmanager
async def running_worker(
    settings: Settings,
    session_factory: SessionFactory,
    skill: TradingSkill,
    feed_config: MarketFeedConfig = FAST_FEED,
) -> AsyncIterator[TradeMonitoringWorker]:
    worker = TradeMonitoringWorker(
        settings,
        session_factory,
        skill,
        retry_policy=FAST_RETRY,
        random_fn=lambda: 0.0,
        feed_config=feed_config,
    )
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def open_market(exchange: LocalExchange, best_bid: str = "0.50") -> MarketIds:
    ids = new_market_ids()
    exchange.create_market(ids.condition_id, [ids.yes, ids.no], title="Will it rain?")
    exchange.step_price(ids.yes, best_bid)
    exchange.step_price(ids.no, "0.40")
    return ids


def shares_of(exchange: LocalExchange, address: str, token_id: str) -> Decimal:
    return Decimal(exchange.balances(address)["shares"].get(token_id, "0"))


async def rule_row(session_factory: SessionFactory, rule_id: str) -> TradeRule:
    async with session_factory() as session:
        row = await session.get(TradeRule, rule_id)
        assert row is not None
        return row


async def events_of(session_factory: SessionFactory, rule_id: str) -> list[TradeRuleEvent]:
    async with session_factory() as session:
        statement = (
            sa.select(TradeRuleEvent)
            .where(TradeRuleEvent.rule_id == rule_id)
            .order_by(TradeRuleEvent.created_at, TradeRuleEvent.id)
        )
        return list((await session.scalars(statement)).all())


async def executed_sells(session_factory: SessionFactory, secret_id: str) -> list[Decimal]:
    """Shares of every EXECUTED audit row of a secret, oldest first."""
    async with session_factory() as session:
        rows = await session.scalars(
            sa.select(TransactionLog)
            .where(
                TransactionLog.secret_id == secret_id,
                TransactionLog.status == TransactionStatus.EXECUTED,
            )
            .order_by(TransactionLog.created_at)
        )
        return [Decimal(str(row.request_data["amount"])) for row in rows]


def is_connected(worker: TradeMonitoringWorker) -> Callable[[], bool]:
    return lambda: worker.status().web_socket_connected
