"""The poll tick: reconcile, re-sync the index with the database, refresh positions, and
price stale tokens over HTTP. Failures are contained, counted and fed to the breaker.

Each step opens its own short session; none is held across a network call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime

from vincent.config import Settings
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleStatus
from vincent.services.trade_manager.breaker import CircuitBreaker
from vincent.services.trade_manager.http_pricing import books_from_http, quoter_for, stale_tokens
from vincent.services.trade_manager.market_expiry import EXPIRED_AT_ENDING, log_expired
from vincent.services.trade_manager.market_watch import MarketWatch
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.position_monitor import update_all_positions
from vincent.services.trade_manager.price_dispatch import POLL, PriceDispatcher
from vincent.services.trade_manager.pricing import rule_price
from vincent.services.trade_manager.reconciliation import reconcile_rules
from vincent.services.trade_manager.rule_executor import RuleExecutor
from vincent.services.trade_manager.rule_manager import expire_rules, get_rules, to_snapshot
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import Clock
from vincent.skills.polymarket.types import TradingSkill

logger = logging.getLogger(__name__)

HTTP_PRICE_CONCURRENCY = 8


class PollTick:
    """One poll tick's work; ``run`` is called every TRADE_MANAGER_POLL_INTERVAL_S."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: SessionFactory,
        skill: TradingSkill,
        rules: RuleRegistry,
        executor: RuleExecutor,
        dispatcher: PriceDispatcher,
        feed_books: OrderBooks | None,
        tracked_since_s: Mapping[str, float],
        breaker: CircuitBreaker,
        metrics: WorkerMetrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._skill = skill
        self._rules = rules
        self._executor = executor
        self._dispatcher = dispatcher
        self._feed_books = feed_books
        self._tracked_since_s = tracked_since_s
        self._breaker = breaker
        self._metrics = metrics
        self._clock = clock
        self._markets = MarketWatch(
            skill=skill,
            rules=rules,
            dispatcher=dispatcher,
            session_factory=session_factory,
            clock=clock,
        )
        self.last_sync_time: datetime | None = None
        self.started = 0
        self.completed = 0

    async def run(self) -> bool:
        """Run one tick unless the breaker is open; return whether it succeeded."""
        now = self._clock.now()
        if self._breaker.is_open(now):
            self._metrics.ticks.labels("skipped").inc()
            return False
        self.started += 1
        # Every step runs even when an earlier one failed (prices matter most), and any
        # failure counts the tick as failed.
        first_error: Exception | None = None
        for step in (
            # An attempt younger than one HTTP timeout may still be in flight elsewhere.
            lambda: self.reconcile(min_attempt_age_s=self._settings.polymarket_http_timeout_s),
            lambda: self.expire(now),
            self.sync_index,
            self._markets.run,  # issue 15: markets that ended end their rules
            self.price_stale_tokens,
            lambda: update_all_positions(self._session_factory, self._skill, now=now),
        ):
            try:
                await step()
            except Exception as error:
                first_error = first_error or error
        self.completed += 1
        if first_error is not None:
            status = self._breaker.record_failure(self._clock.now())
            self._metrics.ticks.labels("failed").inc()
            logger.warning(
                "trade_monitoring_tick_failed",
                extra={
                    "error": type(first_error).__name__,
                    "consecutive_failures": status.consecutive_failures,
                },
            )
            return False
        self._breaker.record_success()
        self.last_sync_time = self._clock.now()
        self._metrics.ticks.labels("ok").inc()
        return True

    async def reconcile(self, *, min_attempt_age_s: float) -> None:
        """Settle open attempts and decided approvals (crash recovery is the same call)."""
        await reconcile_rules(
            self._session_factory,
            self._skill,
            self._executor,
            now=self._clock.now(),
            min_attempt_age_s=min_attempt_age_s,
        )

    async def expire(self, now: datetime) -> None:
        """Move ACTIVE rules past their ``expires_at`` to EXPIRED (the index sync drops them)."""
        async with self._session_factory() as session, session.begin():
            expired = await expire_rules(session, now)
            await log_expired(session, expired, EXPIRED_AT_ENDING, now)  # RULE_EXPIRED
        for rule_id in expired:
            logger.info("rule_expired", extra={"rule_id": rule_id})

    async def sync_index(self) -> None:
        """Make the index agree with the ACTIVE rules in the database."""
        seq_before = self._rules.seq
        async with self._session_factory() as session:
            rows = await get_rules(session, None, TradeRuleStatus.ACTIVE)
        snapshots = []
        for row in rows:
            try:
                snapshots.append(to_snapshot(row))
            except (ValueError, KeyError, TypeError):
                logger.error("rule_unreadable", extra={"rule_id": row.id})
        now = self._clock.now()
        result = self._rules.sync(snapshots, seq_before, now)
        for rule in result.cooled:
            assert rule.ts_next_attempt is not None
            self._dispatcher.schedule_rearm(rule.id, rule.ts_next_attempt)
        for rule_id, until in self._rules.due(now):
            self._dispatcher.rearm(rule_id, until)
        self._dispatcher.sync_tokens()

    async def price_stale_tokens(self) -> None:
        """Price stale tokens over HTTP one by one; one failing token does not stop the rest."""
        tokens = stale_tokens(
            self._rules.index.tokens(),
            self._feed_books,
            self._tracked_since_s,
            now_s=self._clock.monotonic(),
            stale_after_s=self._settings.trade_manager_stale_after_s,
        )
        first_error: BaseException | None = None
        # A few requests at a time: quiet markets can make many tokens stale at once.
        for start in range(0, len(tokens), HTTP_PRICE_CONCURRENCY):
            batch = tokens[start : start + HTTP_PRICE_CONCURRENCY]
            stamps = {token_id: self._feed_stamp(token_id) for token_id in batch}
            books = await asyncio.gather(
                *(self._skill.get_order_book(token_id) for token_id in batch),
                return_exceptions=True,
            )
            for token_id, book in zip(batch, books, strict=True):
                if isinstance(book, Exception):
                    logger.warning(
                        "http_price_failed",
                        extra={"token_id": token_id, "error": type(book).__name__},
                    )
                    first_error = first_error or book
                elif isinstance(book, BaseException):
                    raise book
                elif self._feed_stamp(token_id) != stamps[token_id]:
                    # The feed moved the token while the request was out: its price is newer
                    # than this book, and an older price could cross a level raised since.
                    logger.info("http_price_superseded", extra={"token_id": token_id})
                else:
                    self._apply_http_book(token_id, books_from_http(book))
        if first_error is not None:
            raise first_error

    def _feed_stamp(self, token_id: str) -> float | None:
        """When the feed last updated ``token_id`` (None: never, or no feed)."""
        if self._feed_books is None:
            return None
        top = self._feed_books.top(token_id)
        return None if top is None else top.ts_updated_s

    def _apply_http_book(self, token_id: str, books: OrderBooks) -> None:
        top = books.top(token_id)
        if top is None:
            return
        ts_event = self._clock.monotonic()
        for source in self._rules.index.sources(token_id):
            price = rule_price(top, source)
            if price is not None:
                self._dispatcher.apply_price(
                    token_id, source, price, POLL, ts_event, quoter_for(books)
                )
