"""The monitoring worker: lifecycle, wiring and status of the trade manager's engine.

Wires feed → book → index → execute (``PriceDispatcher``) and the poll tick (``PollTick``),
owns every task through one ``TaskOwner``, and moves through
``created → starting → running → stopping → stopped`` (or ``disabled``). It is the API's
``RuleChangeListener``. It never sells by itself: ``RuleExecutor`` does, through the skill.
On PostgreSQL it runs as leader or hot standby (``leader_role``): only the leader fires,
claims, flushes trailing levels and runs the poll tick's writes. On SQLite it runs alone.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from enum import StrEnum

from prometheus_client import CollectorRegistry

from vincent.config import Settings
from vincent.db.session import SessionFactory
from vincent.enums import TriggerSource
from vincent.services.trade_manager.backoff import BackoffPolicy, RandomFn
from vincent.services.trade_manager.breaker import CircuitBreaker
from vincent.services.trade_manager.execution_outcomes import retry_delay_from
from vincent.services.trade_manager.leader_role import LeaderRole
from vincent.services.trade_manager.leadership import Leadership, LeadershipConfig, new_worker_id
from vincent.services.trade_manager.loop_lag import LoopLagMonitor
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.poll_tick import PollTick
from vincent.services.trade_manager.polymarket_websocket import MarketFeed, MarketFeedConfig
from vincent.services.trade_manager.price_dispatch import PriceDispatcher
from vincent.services.trade_manager.pricing import rule_price
from vincent.services.trade_manager.rule_executor import RuleExecutor
from vincent.services.trade_manager.rule_registry import RuleRegistry, TokenChanges
from vincent.services.trade_manager.single_worker_lock import SingleWorkerLock
from vincent.services.trade_manager.skill_warmup import SkillWarmup
from vincent.services.trade_manager.task_owner import TaskOwner
from vincent.services.trade_manager.trailing_levels import FLUSH_INTERVAL_S, TrailingLevels
from vincent.services.trade_manager.types import Clock, RuleSnapshot, SystemClock, WorkerStatus
from vincent.services.trade_manager.waiters import Waiters
from vincent.skills.polymarket.types import TradingSkill

logger = logging.getLogger(__name__)

# Per-rule retry after a transient execution error: 1 s doubling to 60 s, full jitter.
DEFAULT_RETRY_POLICY = BackoffPolicy(min_delay_s=1.0, max_delay_s=60.0)
STOP_TIMEOUT_S = 10.0
# The collector's thresholds once the rules are frozen (with TRADE_MANAGER_GC_FREEZE; the
# interpreter's are (2000, 10, 10)). A young collection's pause grows with the objects it
# finds alive, and at 100k rules the hot path keeps many (ratcheted snapshots): 2,000 held
# the loop ~4 ms and the middle generation, every 10th, ~20 ms; 700 about 0.9 and 4 ms of
# CPU, 350 about 0.4 and 1.3 ms (bench.engine --slow-callbacks, the GC's CPU per pause).
# Smaller, more frequent pauses for about the same CPU; full collections stay as rare as
# before (350 x 6 x 121 ~ 700 x 6 x 61 ~ 2,000 x 11 x 11 allocations).
GC_THRESHOLDS_AFTER_FREEZE = (350, 5, 120)


class WorkerState(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DISABLED = "disabled"  # TRADE_MANAGER_ENABLED=false: nothing runs


_LIVE = (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.STOPPING)


def feed_config_from(settings: Settings) -> MarketFeedConfig:
    """The market feed's knobs from the settings (stall = three missed heartbeats)."""
    ping_s = settings.trade_manager_ping_interval_s
    return MarketFeedConfig(
        ping_interval_s=ping_s,
        stale_after_s=3 * ping_s,
        max_assets_per_connection=settings.trade_manager_max_assets_per_connection,
    )


class TradeMonitoringWorker:
    """Watches every ACTIVE rule and executes the ones a price crosses."""

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
        leadership_config: LeadershipConfig | None = None,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._clock: Clock = clock or SystemClock()
        self._warmup = SkillWarmup(skill, self._notify)
        self.metrics = WorkerMetrics()
        self.loop_lag = LoopLagMonitor(self.metrics.loop_lag)
        self._state = WorkerState.CREATED
        self._stopping = asyncio.Event()
        self._wake_tick = asyncio.Event()
        self._waiters = Waiters()
        self._tasks = TaskOwner("trade-monitoring-worker")
        self._rules = RuleRegistry()
        self._trailing = TrailingLevels()
        self._books = OrderBooks()
        self._tracked_since_s: dict[str, float] = {}
        self._breaker = CircuitBreaker(
            settings.trade_manager_breaker_failures, settings.trade_manager_breaker_cooldown_s
        )
        self.worker_id = new_worker_id()
        leadership = (
            None
            if settings.is_sqlite
            else Leadership(
                settings.database_url,
                self.worker_id,
                self._clock,
                leadership_config
                or LeadershipConfig(max_stall_s=settings.trade_manager_leader_max_stall_s),
            )
        )
        executor = RuleExecutor(
            session_factory,
            skill,
            clock=self._clock,
            retry_delay=retry_delay_from(retry_policy, random_fn),
            fence=None if leadership is None else leadership.lead_epoch,
        )
        self._executor = executor
        self._lanes = executor.lanes
        self._dispatch = PriceDispatcher(
            rules=self._rules,
            books=self._books,
            trailing=self._trailing,
            executor=executor,
            tasks=self._tasks,
            metrics=self.metrics,
            clock=self._clock,
            stopping=self._stopping,
            on_tokens=self._watch_tokens,
            on_change=self._notify,
            may_fire=self._may_fire,  # reads ``self._role``, set below
            session_factory=session_factory,  # expires the rules of a resolved market
        )
        # Told which tokens' books changed, after the rules saw the prices (the dashboard's
        # price history). Called on the feed's hot path: must be quick and never raise.
        self.price_listeners: list[Callable[[tuple[str, ...]], None]] = []
        self._feed: MarketFeed | None = None
        if settings.trade_manager_enabled and settings.trade_manager_ws_enabled:
            self._feed = MarketFeed(
                settings.polymarket_ws_url,
                self._books,
                self._on_prices,
                config=feed_config or feed_config_from(settings),
                clock=self._clock,
                random_fn=random_fn,
                # Fires first: frames waiting behind a fire's next step wait their turn.
                yield_while=lambda: self._lanes.fires > 0,
            )
            feed = self._feed
            self.metrics.watch_feed(
                lambda: (feed.status().messages_received, feed.status().malformed_messages)
            )
        self._tick = PollTick(
            settings=settings,
            session_factory=session_factory,
            skill=skill,
            rules=self._rules,
            executor=executor,
            dispatcher=self._dispatch,
            feed_books=None if self._feed is None else self._books,
            tracked_since_s=self._tracked_since_s,
            feed_coverage=self._feed,
            breaker=self._breaker,
            metrics=self.metrics,
            clock=self._clock,
        )
        self._role = LeaderRole(
            worker_id=self.worker_id,
            leadership=leadership,
            single_lock=SingleWorkerLock(settings.database_url) if settings.is_sqlite else None,
            tasks=self._tasks,
            tick=self._tick,
            rules=self._rules,
            trailing=self._trailing,
            metrics=self.metrics,
            clock=self._clock,
            stopping=self._stopping,
            fire=self._dispatch.on_prices,
            request_tick=self.request_tick,
            notify=self._notify,
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The worker's own Prometheus registry (never the global one), for ``/metrics``."""
        return self.metrics.registry

    @property
    def feed(self) -> MarketFeed | None:
        """The market feed; None when TRADE_MANAGER_WS_ENABLED=false."""
        return self._feed

    async def start(self) -> None:
        """Reconcile (as leader), load the ACTIVE rules, connect the feed, start the loops.

        Raises ``RuntimeError`` on a second start, ``WorkerAlreadyRunning`` when another
        worker holds this SQLite database. With TRADE_MANAGER_ENABLED=false the worker goes
        to ``disabled`` and runs nothing. On PostgreSQL a worker that does not win the
        leadership at once starts as a hot standby.
        """
        if self._state is not WorkerState.CREATED:
            raise RuntimeError(f"worker can only start once, was {self._state}")
        if not self._settings.trade_manager_enabled:
            self._state = WorkerState.DISABLED
            logger.info("trade_monitoring_worker.disabled")
            return
        leading = await self._role.open()
        try:
            await self._prepare(leading)
        except BaseException:
            # The lock thread guards on its own: a worker that never ran must not
            # keep the leadership (or campaign for it).
            await self._role.close()
            raise
        self._state = WorkerState.RUNNING
        self._role.begin()
        logger.info(
            "trade_monitoring_worker.started",
            extra={
                "rules": len(self._rules.index),
                "worker_id": self.worker_id,
                "role": "leader" if leading else "standby",
            },
        )
        self._notify()

    async def _prepare(self, leading: bool) -> None:
        """Reconcile (as leader), load the rules, warm up, start the feed and the loops."""
        self._state = WorkerState.STARTING
        if leading:
            # Crash recovery and start-up are one path: settle what a previous run left.
            await self._guarded(self._tick.reconcile(min_attempt_age_s=0.0), "start_reconcile")
        await self._guarded(self._tick.sync_index(), "start_load")
        if self._settings.trade_manager_gc_freeze:
            # The rules just loaded live as long as the worker: keep them (and whatever
            # else is alive now) out of every later collection. Garbage goes first.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS_AFTER_FREEZE)
        self._warmup.want(self._rules.watched())
        # The statement a fire writes with, compiled and prepared now rather than by the
        # first fire (any role: it claims nothing).
        await self._guarded(self._executor.warm(), "warm_claim")
        if self._feed is not None:
            self._feed.start()
        await self._tasks.open(
            [
                (self._poll_loop(), "trade-monitoring-poll"),
                (self._flush_loop(), "trade-monitoring-trailing"),
                (self._warmup.run(), "trade-monitoring-warmup"),
                (
                    self._warmup.keep_warm(self._rules.tokens, self._stopping),
                    "trade-monitoring-keep-warm",
                ),
                (self.loop_lag.run(self._stopping), "trade-monitoring-loop-lag"),
            ]
        )

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the loops, let in-flight executions finish (bounded), flush trailing levels."""
        if self._state in (WorkerState.CREATED, WorkerState.DISABLED):
            self._state = WorkerState.STOPPED
            return
        if self._state is not WorkerState.RUNNING:
            return
        self._state = WorkerState.STOPPING
        self._stopping.set()
        self._warmup.close()
        try:
            if self._feed is not None:
                await self._feed.stop()
            await self._tasks.close(timeout_s)
        finally:
            # A failure above must never lose the latest trailing levels (the leader's: a
            # standby or deposed leader holds none it may write). Then hand over.
            if self._may_fire():
                await self._guarded(self._flush_trailing(), "final_flush")
            await self._role.close()
            self._state = WorkerState.STOPPED
            logger.info("trade_monitoring_worker.stopped")
            self._notify()

    async def __aenter__(self) -> TradeMonitoringWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _poll_loop(self) -> None:
        interval_s = self._settings.trade_manager_poll_interval_s
        while not self._stopping.is_set():
            # Cleared before the tick starts (no await in between): a request made from here
            # on leaves the event set, so a later tick serves it and no wake-up is lost.
            self._wake_tick.clear()
            await self._role.run_tick()  # a standby only syncs its index
            self._warmup.want(self._rules.watched())
            self._notify()
            await _wait_any((self._stopping, self._wake_tick), interval_s)

    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            await _wait_any((self._stopping,), FLUSH_INTERVAL_S)
            if self._may_fire():
                await self._guarded(self._flush_trailing(), "trailing_flush")

    async def _flush_trailing(self) -> None:
        await self._trailing.flush(
            self._session_factory, before_chunk=self._flush_turn, on_written=self._persisted
        )

    async def _flush_turn(self) -> None:
        """Before each chunk of a trailing flush: fires first (for at most a flush interval
        per chunk; not once stopping, when the final flush must end), then one pass of the
        loop for whatever else is ready."""
        if not self._stopping.is_set():
            await self._lanes.wait_for_no_fires(FLUSH_INTERVAL_S)
        await asyncio.sleep(0)

    def _persisted(self, written: dict[str, Decimal]) -> None:
        """A chunk of the trailing flush committed these levels."""
        self._rules.mark_persisted(written)
        self.metrics.trailing_writes.inc(len(written))

    async def _guarded(self, work: Awaitable[None], step: str) -> None:
        try:
            await work
        except Exception as error:
            logger.warning(
                "trade_monitoring_step_failed", extra={"step": step, "error": type(error).__name__}
            )

    # ------------------------------------------------------------------ role

    def _may_fire(self) -> bool:
        """Whether this worker may fire, claim and write now (checked before every batch)."""
        return self._role.may_fire()

    @property
    def is_leader(self) -> bool:
        return self._role.may_fire()

    def request_tick(self) -> int:
        """Run the next poll tick now instead of at the end of the interval.

        Returns the number of the first tick that starts after this request (pass it to
        ``wait_for_ticks``): a tick already running may have read the database too early.
        """
        self._wake_tick.set()
        return self.next_tick

    # ------------------------------------------------------------------ RuleChangeListener

    def rule_upserted(self, rule: RuleSnapshot) -> None:
        """An API change, committed: the index has it before the API call returns."""
        if self._state not in (WorkerState.STARTING, WorkerState.RUNNING):
            return
        self._trailing.discard(rule.id)
        self._rules.upsert(rule)
        self._dispatch.sync_tokens()
        self._warmup.want([rule])

    def rule_removed(self, rule_id: str, token_id: str) -> None:
        if self._state not in (WorkerState.STARTING, WorkerState.RUNNING):
            return
        self._trailing.discard(rule_id)
        self._rules.remove(rule_id)
        self._dispatch.sync_tokens()

    def _watch_tokens(self, changes: TokenChanges) -> None:
        now_s = self._clock.monotonic()
        for token_id in changes.removed:
            self._tracked_since_s.pop(token_id, None)
        for token_id in changes.added:
            self._tracked_since_s.setdefault(token_id, now_s)
        if self._feed is not None:
            self._feed.update_tokens(added=changes.added, removed=changes.removed)

    # ------------------------------------------------------------------ status and waiting

    def status(self) -> WorkerStatus:
        """An immutable snapshot for ``GET /rules/status``."""
        breaker = self._breaker.status()
        feed = None if self._feed is None else self._feed.status()
        return WorkerStatus(
            state=self._state.value,
            running=self._state is WorkerState.RUNNING,
            active_rules_count=len(self._rules.index) + self._rules.cooling_count,
            last_sync_time=self._tick.last_sync_time,
            web_socket_connected=feed is not None and feed.connected,
            web_socket_subscriptions=0 if feed is None else feed.subscriptions,
            web_socket_connections=0 if feed is None else feed.connections,
            last_message_age_s=None if feed is None else feed.last_message_age_s,
            consecutive_failures=breaker.consecutive_failures,
            circuit_breaker_until=breaker.open_until,
            leader=self._may_fire(),
            worker_id=self.worker_id if self._state in _LIVE else None,
        )

    @property
    def ticks_completed(self) -> int:
        return self._tick.completed

    @property
    def next_tick(self) -> int:
        """The number of the next tick to start (ticks are numbered from 1, one at a time)."""
        return self._tick.started + 1

    @property
    def warmups_pending(self) -> int:
        """Skill warm-ups (SDK client, market info) queued or running."""
        return self._warmup.pending

    @property
    def executions_completed(self) -> int:
        return self._dispatch.executions_completed

    @property
    def markets_ended(self) -> int:
        """Resolved markets (from the feed) whose rules were expired in the database."""
        return self._dispatch.markets_ended

    def feed_price(
        self, token_id: str, source: TriggerSource = TriggerSource.MIDPOINT
    ) -> Decimal | None:
        """The token's price from the feed's book in hand; None without one."""
        top = self._books.top(token_id)
        return None if top is None else rule_price(top, source)

    def book_prices(
        self, token_id: str
    ) -> tuple[Decimal | None, Decimal | None, Decimal | None] | None:
        """The feed's (best bid, best ask, last trade) for the token; None when not tracked."""
        return self._books.prices(token_id)

    def _on_prices(self, token_ids: tuple[str, ...]) -> None:
        self._dispatch.on_prices(token_ids)
        for listener in self.price_listeners:
            listener(token_ids)

    def watched_rule(self, rule_id: str) -> RuleSnapshot | None:
        """The rule as the index holds it (trailing level included); None when not watched."""
        return self._rules.index.get(rule_id)

    def _notify(self) -> None:
        self._waiters.notify()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; bound it with ``asyncio.timeout``."""
        await self._waiters.wait_for(predicate)

    async def wait_for_ticks(self, count: int) -> None:
        """Wait until ``count`` poll ticks have completed since start."""
        await self.wait_for(lambda: self._tick.completed >= count)

    async def wait_for_executions(self, count: int) -> None:
        """Wait until ``count`` executions have finished since start."""
        await self.wait_for(lambda: self._dispatch.executions_completed >= count)

    async def wait_for_idle(self) -> None:
        """Wait until no execution is in flight."""
        await self.wait_for(lambda: not self._rules.in_flight)


async def _wait_any(events: tuple[asyncio.Event, ...], timeout_s: float) -> None:
    """Return when any event is set or after ``timeout_s``."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


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
    """Stop the worker: end its tasks, flush trailing levels, close the sockets."""
    await worker.stop()
