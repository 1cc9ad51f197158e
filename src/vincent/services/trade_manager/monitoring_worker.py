"""The monitoring worker: feed → book → index → evaluate → execute, plus the poll tick.

Owns every task it starts (one ``TaskGroup`` inside a runner task) and the lifecycle
``created → starting → running → stopping → stopped``. The price path is synchronous and
never queries the database; executions run as tracked tasks. It never sells by itself:
``RuleExecutor`` does, through the skill.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry

from vincent.config import Settings
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleStatus, TriggerSource
from vincent.services.trade_manager.backoff import BackoffPolicy, RandomFn, full_jitter_delay_s
from vincent.services.trade_manager.breaker import CircuitBreaker
from vincent.services.trade_manager.execution_outcomes import RetryDelay
from vincent.services.trade_manager.market_messages import BookEvent, LastTradePriceEvent
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.polymarket_websocket import MarketFeed, MarketFeedConfig
from vincent.services.trade_manager.position_monitor import update_all_positions
from vincent.services.trade_manager.pricing import rule_price
from vincent.services.trade_manager.reconciliation import reconcile_rules
from vincent.services.trade_manager.rule_executor import (
    ExecutionOutcome,
    ExecutionResult,
    RuleExecutor,
    TrailingRaise,
    Trigger,
)
from vincent.services.trade_manager.rule_manager import get_rules, to_snapshot
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.sell_planning import SellQuoter
from vincent.services.trade_manager.trailing_levels import FLUSH_INTERVAL_S, TrailingLevels
from vincent.services.trade_manager.types import Clock, RuleSnapshot, SystemClock, WorkerStatus
from vincent.skills.polymarket.types import OrderBook, TradingSkill

logger = logging.getLogger(__name__)

# Per-rule retry after a transient execution error: 1 s doubling to 60 s, full jitter.
DEFAULT_RETRY_POLICY = BackoffPolicy(min_delay_s=1.0, max_delay_s=60.0)
STOP_TIMEOUT_S = 10.0


class WorkerState(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DISABLED = "disabled"  # TRADE_MANAGER_ENABLED=false: nothing runs


def retry_delay_function(policy: BackoffPolicy, random_fn: RandomFn) -> RetryDelay:
    """Delay before retry ``attempt`` (1-based) of one rule, from ``policy`` with jitter."""

    def delay_s(attempt: int) -> float:
        return full_jitter_delay_s(policy, max(attempt - 1, 0), random_fn())

    return delay_s


def feed_config_from(settings: Settings) -> MarketFeedConfig:
    """The market feed's knobs from the settings (stall = three missed heartbeats)."""
    ping_s = settings.trade_manager_ping_interval_s
    return MarketFeedConfig(
        ping_interval_s=ping_s,
        stale_after_s=3 * ping_s,
        max_assets_per_connection=settings.trade_manager_max_assets_per_connection,
    )


class TradeMonitoringWorker:
    """Watches every ACTIVE rule and executes the ones a price crosses. A RuleChangeListener."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        skill: TradingSkill,
        *,
        clock: Clock | None = None,
        retry_policy: BackoffPolicy = DEFAULT_RETRY_POLICY,
        random_fn: RandomFn = random.random,
        feed_config: MarketFeedConfig | None = None,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._skill = skill
        self._clock: Clock = clock or SystemClock()
        self.metrics = WorkerMetrics()
        self._rules = RuleRegistry()
        self._trailing = TrailingLevels()
        self._executor = RuleExecutor(
            session_factory,
            skill,
            clock=self._clock,
            retry_delay=retry_delay_function(retry_policy, random_fn),
        )
        self._breaker = CircuitBreaker(
            settings.trade_manager_breaker_failures, settings.trade_manager_breaker_cooldown_s
        )
        self._books = OrderBooks()
        self._feed: MarketFeed | None = None
        if settings.trade_manager_enabled and settings.trade_manager_ws_enabled:
            self._feed = MarketFeed(
                settings.polymarket_ws_url,
                self._books,
                self._on_prices,
                config=feed_config or feed_config_from(settings),
                clock=self._clock,
                random_fn=random_fn,
            )
            feed = self._feed
            self.metrics.watch_feed(
                lambda: (feed.status().messages_received, feed.status().malformed_messages)
            )
        self._state = WorkerState.CREATED
        self._stop = asyncio.Event()
        self._wake_tick = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._deferred: list[tuple[Coroutine[Any, Any, None], str]] = []
        self._group: asyncio.TaskGroup | None = None
        self._tokens_tracked_at: dict[str, float] = {}
        self._last_sync_time: datetime | None = None
        self._ticks_completed = 0
        self._executions_completed = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The worker's own Prometheus registry (never the global one), for ``/metrics``."""
        return self.metrics.registry

    async def start(self) -> None:
        """Reconcile, load the ACTIVE rules, connect the feed, start the loops.

        Raises ``RuntimeError`` on a second start. With TRADE_MANAGER_ENABLED=false the
        worker goes to ``disabled`` and runs nothing.
        """
        if self._state is not WorkerState.CREATED:
            raise RuntimeError(f"worker can only start once, was {self._state}")
        if not self._settings.trade_manager_enabled:
            self._state = WorkerState.DISABLED
            logger.info("trade_monitoring_worker.disabled")
            return
        self._state = WorkerState.STARTING
        # Crash recovery and start-up are one path: settle what a previous run left.
        await self._guarded(self._reconcile(min_attempt_age_s=0.0), "start_reconcile")
        await self._guarded(self._sync_index(), "start_load")
        self._sync_tokens()
        if self._feed is not None:
            self._feed.start()
        started = asyncio.Event()
        self._runner = asyncio.create_task(self._run(started), name="trade-monitoring-worker")
        await started.wait()
        self._state = WorkerState.RUNNING
        logger.info("trade_monitoring_worker.started", extra={"rules": len(self._rules.index)})
        self._notify()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the loops, let in-flight executions finish (bounded), flush trailing levels."""
        if self._state in (WorkerState.CREATED, WorkerState.DISABLED):
            self._state = WorkerState.STOPPED
            return
        if self._state is not WorkerState.RUNNING:
            return
        self._state = WorkerState.STOPPING
        self._stop.set()
        try:
            if self._feed is not None:
                await self._feed.stop()
            if self._runner is not None:
                try:
                    async with asyncio.timeout(timeout_s):
                        await asyncio.shield(self._runner)
                except TimeoutError:
                    logger.error(
                        "trade_monitoring_worker.stop_timeout",
                        extra={"in_flight": sorted(self._rules.in_flight)},
                    )
                    self._runner.cancel()
                    await asyncio.wait({self._runner})
        finally:
            # A failure above must never lose the latest trailing levels.
            await self._guarded(self._flush_trailing(), "final_flush")
            self._state = WorkerState.STOPPED
            logger.info("trade_monitoring_worker.stopped")
            self._notify()

    async def __aenter__(self) -> TradeMonitoringWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run(self, started: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._poll_loop(), name="trade-monitoring-poll")
                group.create_task(self._flush_loop(), name="trade-monitoring-trailing")
                deferred, self._deferred = self._deferred, []
                for coroutine, name in deferred:
                    group.create_task(coroutine, name=name)
                started.set()
        finally:
            self._group = None
            started.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> bool:
        """Run ``coroutine`` in the worker's group; during start-up, once the group exists."""
        if self._state is WorkerState.STARTING and self._group is None:
            self._deferred.append((coroutine, name))
            return True
        if self._group is None or self._state not in (WorkerState.STARTING, WorkerState.RUNNING):
            coroutine.close()
            return False
        self._group.create_task(coroutine, name=name)
        return True

    # ------------------------------------------------------------------ hot path

    def _on_prices(self, token_ids: frozenset[str]) -> None:
        """The feed's callback: price every changed token's watched sources, no I/O."""
        ts_event = self._clock.monotonic()
        for token_id in token_ids:
            top = self._books.top(token_id)
            if top is None:
                continue
            for source in self._rules.index.sources(token_id):
                price = rule_price(top, source)
                if price is not None:
                    self._apply_price(token_id, source, price, "websocket", ts_event, self._quoter)
        if self._waiters:
            self._notify()

    def _quoter(self, token_id: str) -> SellQuoter:
        return quoter_for(self._books)(token_id)

    def _apply_price(
        self,
        token_id: str,
        source: TriggerSource,
        price: Decimal,
        origin: str,
        ts_event: float,
        quoter: Callable[[str], SellQuoter] | None,
    ) -> None:
        self.metrics.price_updates.labels(origin).inc()
        outcome = self._rules.apply_price(token_id, source, price)
        for rule in outcome.ratcheted:
            assert rule.trailing_percent is not None
            self._trailing.record(
                rule.id, TrailingRaise(rule.trigger_price, price, rule.trailing_percent, origin)
            )
            self.metrics.evaluations.labels("trailing_raised").inc()
        for rule in outcome.fired:
            self.metrics.evaluations.labels("fired").inc()
            self.metrics.triggers.labels(origin).inc()
            trigger = Trigger(
                price, origin, ts_event, quote=None if quoter is None else quoter(token_id)
            )
            trailing = self._trailing.take(rule.id)
            if not self._spawn(self._execute(rule, trigger, trailing), f"execute-{rule.id}"):
                # Stopping: leave it ACTIVE in the database for the next start.
                self._rules.finish(rule.id)

    async def _execute(
        self, rule: RuleSnapshot, trigger: Trigger, trailing: TrailingRaise | None
    ) -> None:
        try:
            result = await self._executor.execute_rule(rule, trigger, trailing=trailing)
        except Exception:
            # Contained: the rule is ACTIVE (claim failed) or TRIGGERED with an open attempt;
            # the poll tick re-indexes or reconciles it.
            logger.exception("rule_execution_error", extra={"rule_id": rule.id})
            self.metrics.executions.labels("error").inc()
            self._rules.finish(rule.id)
        else:
            self._after_execution(rule, trigger, result)
        finally:
            self._executions_completed += 1
            self._sync_tokens()
            self._notify()

    def _after_execution(
        self, rule: RuleSnapshot, trigger: Trigger, result: ExecutionResult
    ) -> None:
        self.metrics.executions.labels(result.outcome.value).inc()
        if result.ts_order_sent is not None:
            self.metrics.order_latency.observe(max(0.0, result.ts_order_sent - trigger.ts_event))
        logger.info(
            "rule_executed",
            extra={
                "rule_id": rule.id,
                "secret_id": rule.secret_id,
                "token_id": rule.token_id,
                "outcome": result.outcome.value,
                "order_id": result.order_id,
            },
        )
        if result.outcome is ExecutionOutcome.RETRY and result.next_attempt_at is not None:
            if self._rules.cool(rule.id, result.next_attempt_at) is not None:
                self._schedule_rearm(rule.id, result.next_attempt_at)
            return
        self._rules.finish(rule.id)

    def _schedule_rearm(self, rule_id: str, until: datetime) -> None:
        self._spawn(self._rearm_later(rule_id, until), f"rearm-{rule_id}")

    async def _rearm_later(self, rule_id: str, until: datetime) -> None:
        delay_s = (until - self._clock.now()).total_seconds()
        if delay_s > 0:
            try:
                async with asyncio.timeout(delay_s):
                    await self._stop.wait()
                return  # stopping
            except TimeoutError:
                pass
        self._rearm(rule_id, until)

    def _rearm(self, rule_id: str, until: datetime) -> None:
        """Watch a cooled rule again and test it at once against the price in hand."""
        rule = self._rules.rearm(rule_id, until)
        if rule is None:
            return
        self._sync_tokens()
        top = self._books.top(rule.token_id)
        price = None if top is None else rule_price(top, rule.trigger_source)
        if price is not None:
            self._apply_price(
                rule.token_id,
                rule.trigger_source,
                price,
                "websocket",
                self._clock.monotonic(),
                self._quoter,
            )

    def _sync_tokens(self) -> None:
        tokens = self._rules.tokens()
        now_s = self._clock.monotonic()
        for token_id in tokens - self._tokens_tracked_at.keys():
            self._tokens_tracked_at[token_id] = now_s
        for token_id in self._tokens_tracked_at.keys() - tokens:
            del self._tokens_tracked_at[token_id]
        self.metrics.active_rules.set(len(self._rules.index))
        if self._feed is not None:
            self._feed.set_tokens(tokens)

    # ------------------------------------------------------------------ RuleChangeListener

    def rule_upserted(self, rule: RuleSnapshot) -> None:
        """An API change, committed: the index has it before the API call returns."""
        if self._state not in (WorkerState.STARTING, WorkerState.RUNNING):
            return
        self._trailing.discard(rule.id)
        self._rules.upsert(rule)
        self._sync_tokens()

    def rule_removed(self, rule_id: str, token_id: str) -> None:
        if self._state not in (WorkerState.STARTING, WorkerState.RUNNING):
            return
        self._trailing.discard(rule_id)
        self._rules.remove(rule_id)
        self._sync_tokens()

    # ------------------------------------------------------------------ poll tick

    async def _poll_loop(self) -> None:
        interval_s = self._settings.trade_manager_poll_interval_s
        while not self._stop.is_set():
            await self.tick()
            self._wake_tick.clear()
            try:
                async with asyncio.timeout(interval_s):
                    await _first(self._stop.wait(), self._wake_tick.wait())
            except TimeoutError:
                pass

    def request_tick(self) -> None:
        """Run the next poll tick now instead of at the end of the interval."""
        self._wake_tick.set()

    async def tick(self) -> bool:
        """One poll tick; return whether it succeeded. Failures feed the circuit breaker."""
        now = self._clock.now()
        if self._breaker.is_open(now):
            self.metrics.ticks.labels("skipped").inc()
            return False
        try:
            await self._reconcile(min_attempt_age_s=self._settings.polymarket_http_timeout_s)
            await self._sync_index()
            await update_all_positions(self._session_factory, self._skill, now=now)
            await self._price_stale_tokens()
        except Exception as error:
            status = self._breaker.record_failure(self._clock.now())
            self.metrics.ticks.labels("failed").inc()
            logger.warning(
                "trade_monitoring_tick_failed",
                extra={
                    "error": type(error).__name__,
                    "consecutive_failures": status.consecutive_failures,
                },
            )
            ok = False
        else:
            self._breaker.record_success()
            self._last_sync_time = self._clock.now()
            self.metrics.ticks.labels("ok").inc()
            ok = True
        self._ticks_completed += 1
        self._notify()
        return ok

    async def _reconcile(self, *, min_attempt_age_s: float) -> None:
        await reconcile_rules(
            self._session_factory,
            self._skill,
            self._executor,
            now=self._clock.now(),
            min_attempt_age_s=min_attempt_age_s,
        )

    async def _sync_index(self) -> None:
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
            self._schedule_rearm(rule.id, rule.ts_next_attempt)
        for rule_id, until in self._rules.due(now):
            self._rearm(rule_id, until)
        self._sync_tokens()

    def _stale_tokens(self) -> list[str]:
        if self._feed is None:
            return sorted(self._rules.index.tokens())
        stale_after_s = self._settings.trade_manager_stale_after_s
        now_s = self._clock.monotonic()
        stale = []
        for token_id in self._rules.index.tokens():
            age_s = self._books.age_s(token_id, now_s)
            if age_s is None:
                age_s = now_s - self._tokens_tracked_at.get(token_id, now_s)
            if age_s >= stale_after_s:
                stale.append(token_id)
        return stale

    async def _price_stale_tokens(self) -> None:
        """Price stale tokens over HTTP, one by one: one failing token does not stop the rest."""
        first_error: Exception | None = None
        for token_id in self._stale_tokens():
            try:
                book = await self._skill.get_order_book(token_id)
            except Exception as error:
                logger.warning(
                    "http_price_failed", extra={"token_id": token_id, "error": type(error).__name__}
                )
                first_error = first_error or error
                continue
            http_books = books_from_http(book)
            top = http_books.top(token_id)
            if top is None:
                continue
            ts_event = self._clock.monotonic()
            for source in self._rules.index.sources(token_id):
                price = rule_price(top, source)
                if price is not None:
                    self._apply_price(
                        token_id,
                        source,
                        price,
                        "poll",
                        ts_event,
                        quoter_for(http_books),
                    )
        if first_error is not None:
            raise first_error

    async def _flush_loop(self) -> None:
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(FLUSH_INTERVAL_S):
                    await self._stop.wait()
            except TimeoutError:
                pass
            await self._guarded(self._flush_trailing(), "trailing_flush")

    async def _flush_trailing(self) -> None:
        written = await self._trailing.flush(self._session_factory)
        if written:
            self._rules.mark_persisted(written)
            self.metrics.trailing_writes.inc(len(written))

    async def _guarded(self, work: Awaitable[None], what: str) -> None:
        try:
            await work
        except Exception as error:
            logger.warning(
                "trade_monitoring_step_failed", extra={"step": what, "error": type(error).__name__}
            )

    # ------------------------------------------------------------------ status and waiting

    def status(self) -> WorkerStatus:
        """An immutable snapshot for ``GET /rules/status``."""
        breaker = self._breaker.status()
        feed = None if self._feed is None else self._feed.status()
        return WorkerStatus(
            state=self._state.value,
            running=self._state is WorkerState.RUNNING,
            active_rules_count=len(self._rules.index) + self._rules.cooling_count,
            last_sync_time=self._last_sync_time,
            web_socket_connected=feed is not None and feed.connected,
            web_socket_subscriptions=0 if feed is None else feed.subscriptions,
            web_socket_connections=0 if feed is None else feed.connections,
            last_message_age_s=None if feed is None else feed.last_message_age_s,
            consecutive_failures=breaker.consecutive_failures,
            circuit_breaker_until=breaker.open_until,
        )

    @property
    def feed(self) -> MarketFeed | None:
        """The market feed, None when TRADE_MANAGER_WS_ENABLED=false."""
        return self._feed

    @property
    def ticks_completed(self) -> int:
        return self._ticks_completed

    @property
    def executions_completed(self) -> int:
        return self._executions_completed

    def watched_rule(self, rule_id: str) -> RuleSnapshot | None:
        """The rule as the index holds it (trailing level included), None when not watched."""
        return self._rules.index.get(rule_id)

    def _notify(self) -> None:
        # Synchronous, so the price path can wake waiters without awaiting.
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; bound it with ``asyncio.timeout``."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            await future
        finally:
            self._waiters.remove(waiter)

    async def wait_for_ticks(self, count: int) -> None:
        """Wait until ``count`` poll ticks have completed since start."""
        await self.wait_for(lambda: self._ticks_completed >= count)

    async def wait_for_executions(self, count: int) -> None:
        """Wait until ``count`` executions have finished since start."""
        await self.wait_for(lambda: self._executions_completed >= count)

    async def wait_for_idle(self) -> None:
        """Wait until no execution is in flight."""
        await self.wait_for(lambda: not self._rules.in_flight)


def quoter_for(books: OrderBooks) -> Callable[[str], SellQuoter]:
    """Token → a function pricing a market sell of some shares against ``books``."""

    def for_token(token_id: str) -> SellQuoter:
        return lambda shares: books.sell_quote(token_id, shares)

    return for_token


def books_from_http(book: OrderBook) -> OrderBooks:
    """An ``OrderBooks`` holding one REST book, so HTTP prices go through the same code."""
    books = OrderBooks()
    books.track([book.token_id])
    event = BookEvent(
        asset_id=book.token_id,
        market=book.market,
        bids=tuple((str(level.price), str(level.size)) for level in book.bids),
        asks=tuple((str(level.price), str(level.size)) for level in book.asks),
        timestamp_ms="0",
        hash="",
    )
    books.apply(event, 0.0)
    if book.last_trade_price is not None and book.last_trade_price > 0:
        books.apply(
            LastTradePriceEvent(
                asset_id=book.token_id,
                market=book.market,
                price=str(book.last_trade_price),
                side="BUY",
                size="0",
                timestamp_ms="0",
            ),
            0.0,
        )
    return books


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of ``waits`` completes; cancel and await the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def start_trade_monitoring_worker(
    settings: Settings,
    session_factory: SessionFactory,
    skill: TradingSkill,
    *,
    clock: Clock | None = None,
) -> TradeMonitoringWorker:
    """Build and start the worker (the FastAPI lifespan's entry point)."""
    worker = TradeMonitoringWorker(settings, session_factory, skill, clock=clock)
    await worker.start()
    return worker


async def stop_trade_monitoring_worker(worker: TradeMonitoringWorker) -> None:
    """Stop the worker: cancel its tasks, flush trailing levels, close the sockets."""
    await worker.stop()
