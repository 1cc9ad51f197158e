"""The seed's design, for comparison: one database query per WebSocket price message.

The same feed (``MarketFeed`` → ``OrderBooks``), the same pure evaluation
(``evaluate_rule``) and the same ``RuleExecutor`` as the engine, but no rule index: each
price event is queued, and a consumer reads the token's ACTIVE rules from the database,
evaluates each, writes every trailing raise at once (as the seed did) and spawns an
execution per fired rule. Events are handled in arrival order, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleStatus, TriggerSource
from vincent.services.trade_manager.evaluation import evaluate_rule
from vincent.services.trade_manager.http_pricing import quoter_for
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeed
from vincent.services.trade_manager.pricing import rule_price
from vincent.services.trade_manager.rule_executor import RuleExecutor, TrailingRaise, Trigger
from vincent.services.trade_manager.rule_manager import to_snapshot, update_trailing_trigger
from vincent.services.trade_manager.types import SystemClock
from vincent.skills.polymarket.types import TradingSkill

logger = logging.getLogger(__name__)

_SOURCES = tuple(TriggerSource)


@dataclass(frozen=True, slots=True)
class _PriceEvent:
    token_id: str
    prices: dict[TriggerSource, Decimal]
    ts_event: float


class NaiveConsumer:
    """Feed → queue → (query, evaluate, execute) per event."""

    def __init__(self, ws_url: str, session_factory: SessionFactory, skill: TradingSkill) -> None:
        self._sessions = session_factory
        self._clock = SystemClock()
        self._books = OrderBooks()
        self._quoter = quoter_for(self._books)
        self._executor = RuleExecutor(
            session_factory, skill, clock=self._clock, retry_delay=lambda attempt: 1.0
        )
        self._queue: asyncio.Queue[_PriceEvent] = asyncio.Queue()
        self._executions: set[asyncio.Task[None]] = set()
        self._consumer: asyncio.Task[None] | None = None
        self.feed = MarketFeed(ws_url, self._books, self._on_prices, clock=self._clock)
        self.events_handled = 0
        self.executions_completed = 0
        self.backlog_max = 0

    async def start(self) -> None:
        async with self._sessions() as session:
            tokens = await session.scalars(
                sa.select(TradeRule.token_id)
                .where(TradeRule.status == TradeRuleStatus.ACTIVE)
                .distinct()
            )
            self.feed.set_tokens(set(tokens))
        self.feed.start()
        self._consumer = asyncio.create_task(self._consume(), name="naive-consumer")

    async def stop(self) -> None:
        await self.feed.stop()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        if self._executions:
            await asyncio.wait(self._executions, timeout=10)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._executions

    def _on_prices(self, token_ids: frozenset[str]) -> None:
        # The feed's synchronous callback: capture this event's prices, handle them later.
        ts_event = self._clock.monotonic()
        for token_id in token_ids:
            top = self._books.top(token_id)
            if top is None:
                continue
            prices = {}
            for source in _SOURCES:
                price = rule_price(top, source)
                if price is not None:
                    prices[source] = price
            self._queue.put_nowait(_PriceEvent(token_id, prices, ts_event))
        self.backlog_max = max(self.backlog_max, self._queue.qsize())

    async def _consume(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._handle(event)
            except Exception:
                logger.exception("naive_event_failed", extra={"token_id": event.token_id})
            self.events_handled += 1

    async def _handle(self, event: _PriceEvent) -> None:
        async with self._sessions() as session:
            rows = await session.scalars(
                sa.select(TradeRule).where(
                    TradeRule.token_id == event.token_id,
                    TradeRule.status == TradeRuleStatus.ACTIVE,
                )
            )
            rules = [to_snapshot(row) for row in rows]
        for rule in rules:
            price = event.prices.get(rule.trigger_source)
            if price is None:
                continue
            evaluation = evaluate_rule(rule, price)
            raise_ = None
            if evaluation.new_trigger_price is not None:
                assert rule.trailing_percent is not None
                raise_ = TrailingRaise(evaluation.new_trigger_price, price, rule.trailing_percent)
            if evaluation.should_trigger:
                trigger = Trigger(price, "websocket", event.ts_event, self._quoter(rule.token_id))
                self._spawn(self._executor.execute_rule(rule, trigger, trailing=raise_))
            elif raise_ is not None:
                async with self._sessions() as session, session.begin():
                    await update_trailing_trigger(
                        session,
                        rule.id,
                        raise_.trigger_price,
                        {
                            "currentPrice": float(price),
                            "trailingPercent": float(raise_.trailing_percent),
                        },
                    )

    def _spawn(self, coroutine: object) -> None:
        async def run() -> None:
            try:
                await coroutine  # type: ignore[misc]
            except Exception:
                logger.exception("naive_execution_failed")
            finally:
                self.executions_completed += 1

        task = asyncio.create_task(run())
        self._executions.add(task)
        task.add_done_callback(self._executions.discard)
