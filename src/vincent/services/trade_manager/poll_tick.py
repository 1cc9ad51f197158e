"""The poll tick: reconcile, re-sync the index with the database, refresh positions, and
price stale tokens over HTTP. Failures are contained, counted and fed to the breaker.

A token the feed covers live (``LiveCoverage``) is not stale however quiet its book; it is
re-checked over HTTP only after ``TRADE_MANAGER_QUIET_BOOK_RECHECK_S``, a bounded number per
tick (``http_pricing.http_price_plan``).

A token whose HTTP price fails is that token's problem: it backs off and is counted, and
the tick still succeeds. Only when every token asked failed with a transient error (the
exchange as a whole is failing) does the pricing step fail the tick, and feed the breaker.
Each step opens its own short session; none is held across a network call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.config import Settings
from vincent.db.base import utcnow
from vincent.db.session import SessionFactory
from vincent.services.trade_manager.breaker import CircuitBreaker
from vincent.services.trade_manager.http_pricing import (
    HttpPriceReason,
    TokenBackoff,
    books_from_http,
    http_price_plan,
    quiet_rechecks_per_tick,
    quoter_for,
)
from vincent.services.trade_manager.loop_share import LoopShare
from vincent.services.trade_manager.market_expiry import EXPIRED_AT_ENDING, log_expired
from vincent.services.trade_manager.market_watch import MarketWatch
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.position_monitor import update_all_positions
from vincent.services.trade_manager.price_dispatch import POLL, PriceDispatcher
from vincent.services.trade_manager.pricing import rule_price
from vincent.services.trade_manager.reconciliation import reconcile_rules
from vincent.services.trade_manager.rule_executor import RuleExecutor
from vincent.services.trade_manager.rule_manager import (
    active_rules_query,
    changed_rules_query,
    count_other_mode_rules,
    database_now,
    expire_rules,
    rules_by_id_query,
    to_snapshot,
)
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import Clock
from vincent.skills.polymarket.errors import TransientSkillError
from vincent.skills.polymarket.http import NotFoundOnExchange
from vincent.skills.polymarket.types import TradingSkill

logger = logging.getLogger(__name__)

HTTP_PRICE_CONCURRENCY = 8
# A token whose HTTP price failed n times in a row waits min(interval / 2 * 2^(n-1), 15 min):
# the next regular tick retries it once, then it is asked less and less often.
TOKEN_BACKOFF_MAX_S = 900.0
# The index sync reads this many rule rows at a time, and applies them this many at a time,
# giving the loop back between groups once it has held it for ``SYNC_LOOP_SHARE_S`` in a
# row (and after every chunk read). A chunk of 500 applied in one go held the loop ~15 ms;
# reading 500 rows alone (SQLAlchemy's rows) takes ~2.5 ms of it, 100 ~0.5 ms.
SYNC_CHUNK_ROWS = 100
SYNC_APPLY_ROWS = 25
SYNC_LOOP_SHARE_S = 0.001


class LiveCoverage(Protocol):
    """What the poll tick asks the feed (``MarketFeed.live_tokens``): pure, no I/O."""

    def live_tokens(self, now_s: float) -> frozenset[str]: ...


class ExchangeFailing(Exception):
    """Every stale token asked on this tick failed with a transient error."""


def _failure_reason(error: Exception) -> str:
    if isinstance(error, NotFoundOnExchange):
        return "not_found"
    return "transient" if isinstance(error, TransientSkillError) else "other"


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
        feed_coverage: LiveCoverage | None = None,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._skill = skill
        self._rules = rules
        self._executor = executor
        self._dispatcher = dispatcher
        self._feed_books = feed_books
        self._tracked_since_s = tracked_since_s
        self._feed_coverage = feed_coverage
        # When each watched token was last answered over HTTP (monotonic): a covered-live
        # token is re-checked once both this and its feed book are older than the interval.
        self._last_http_s: dict[str, float] = {}
        self._breaker = breaker
        self._metrics = metrics
        self._clock = clock
        base_delay_s = min(settings.trade_manager_poll_interval_s / 2, TOKEN_BACKOFF_MAX_S)
        self._token_backoff = TokenBackoff(base_delay_s, TOKEN_BACKOFF_MAX_S)
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
        self.other_mode_rules = 0
        self._other_mode_reported = False
        # The index sync: the previous read's start (None: no read yet, the next is full),
        # when the last full sync began (monotonic), rules to read again by id.
        self._sync_lock = asyncio.Lock()
        self._watermark: datetime | None = None
        self._last_full_s: float | None = None
        self._reread: set[str] = set()
        self._reread_taken: set[str] = set()
        # Rows the delta syncs applied whose ``updated_at`` is still inside the overlap:
        # read again, an identical row is not applied again (the overlap re-reads each
        # change on every tick for TRADE_MANAGER_SYNC_OVERLAP_S).
        self._applied: dict[str, tuple[Any, ...]] = {}

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
            lambda: update_all_positions(
                self._session_factory,
                self._skill,
                now=now,
                on_read=self._executor.holdings.remember,
            ),
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
            execution_mode=self._settings.execution_mode,
        )

    async def expire(self, now: datetime) -> None:
        """Move ACTIVE rules past their ``expires_at`` to EXPIRED (the index sync drops them)."""
        async with self._session_factory() as session, session.begin():
            expired = await expire_rules(session, now)
            await log_expired(session, expired, EXPIRED_AT_ENDING, now)  # RULE_EXPIRED
        self._reread.update(expired)  # stamped with our clock, ``now``: read them by id too
        for rule_id in expired:
            logger.info("rule_expired", extra={"rule_id": rule_id})

    async def sync_index(self, *, full: bool = False) -> None:
        """Make the index agree with the database.

        A delta sync reads only the rules (any status) whose ``updated_at`` is after the
        previous read's start less ``TRADE_MANAGER_SYNC_OVERLAP_S``, and the rules the
        previous sync left alone; a full sync (``full``, the first, and every
        ``TRADE_MANAGER_FULL_SYNC_INTERVAL_S``) reads every ACTIVE rule and drops the rules
        held that it did not see. Rows are read and applied ``SYNC_CHUNK_ROWS`` at a time,
        the loop running in between. One sync at a time.
        """
        async with self._sync_lock:
            interval_s = self._settings.trade_manager_full_sync_interval_s
            due = (
                self._last_full_s is None
                or self._clock.monotonic() - self._last_full_s >= interval_s
            )
            if full or due or self._watermark is None:
                await self._full_sync()
            else:
                await self._delta_sync(self._watermark)
            now = self._clock.now()
            for rule_id, until in self._rules.due(now):
                self._dispatcher.rearm(rule_id, until)
            self._dispatcher.sync_tokens()

    async def _full_sync(self) -> None:
        seq_before = self._rules.seq
        started_s = self._clock.monotonic()
        seen: set[str] = set()
        mode = self._settings.execution_mode
        async with self._session_factory() as session:
            read_start = await self._read_start(session)
            deferred, rows = await self._apply_rows(
                session, active_rules_query(mode), seq_before, seen, None
            )
            if not self._other_mode_reported:
                await self._report_other_mode_rules(session)
        self._rules.drop_missing(seen, seq_before)
        self._rules.forget_stamps(seq_before)
        self._done(read_start, deferred)
        self._applied = {}
        self._last_full_s = started_s
        self._metrics.rule_syncs.labels("full").inc()
        self._metrics.rule_sync_rows.labels("full").inc(rows)

    async def _delta_sync(self, watermark: datetime) -> None:
        seq_before = self._rules.seq
        mode = self._settings.execution_mode
        since = watermark - timedelta(seconds=self._settings.trade_manager_sync_overlap_s)
        read: set[str] = set()
        # Rows changed before ``since`` are not read again: forget them.
        applied = {k: v for k, v in self._applied.items() if v[-1] > since}
        async with self._session_factory() as session:
            read_start = await self._read_start(session)
            deferred, rows = await self._apply_rows(
                session, changed_rules_query(since, mode), seq_before, read, applied
            )
            again = sorted(self._reread_taken - read)
            for start in range(0, len(again), SYNC_CHUNK_ROWS):
                query = rules_by_id_query(again[start : start + SYNC_CHUNK_ROWS], mode)
                more, count = await self._apply_rows(session, query, seq_before, read, applied)
                deferred.extend(more)
                rows += count
        self._applied = applied
        self._rules.forget_stamps(seq_before)
        self._done(read_start, deferred)
        self._metrics.rule_syncs.labels("delta").inc()
        self._metrics.rule_sync_rows.labels("delta").inc(rows)

    def _done(self, read_start: datetime, deferred: list[str]) -> None:
        self._watermark = read_start
        # Whatever this sync left alone, and whatever was marked since it began.
        self._reread = set(deferred) | (self._reread - self._reread_taken)
        self._reread_taken = set()

    async def _read_start(self, session: AsyncSession) -> datetime:
        """When this read starts, by the earliest clock a writer may stamp ``updated_at``
        with: ours (the worker's), this machine's, and the database server's."""
        self._reread_taken = set(self._reread)
        clocks = [self._clock.now(), utcnow()]
        server = await database_now(session)
        if server is not None:
            clocks.append(server)
        return min(clocks)

    async def _apply_rows(
        self,
        session: AsyncSession,
        query: sa.Select[Any],
        seq_before: int,
        read: set[str],
        applied: dict[str, tuple[Any, ...]] | None,
    ) -> tuple[list[str], int]:
        """Read ``query``'s rows in chunks and apply them to the index a few at a time; yield
        the loop after each chunk, and between groups once the sync has held it for its
        share. Add the ids read to ``read``; return (ids deferred, rows read).

        With ``applied`` (a delta): a row equal to the one last applied for its rule, and
        not deferred since (``_reread_taken``), is skipped; the rows applied are recorded.
        """
        deferred: list[str] = []
        rows_read = 0
        monotonic = self._clock.monotonic
        share = LoopShare(SYNC_LOOP_SHARE_S, monotonic)
        result = await session.stream(query.execution_options(yield_per=SYNC_CHUNK_ROWS))
        async for rows in result.partitions():
            rows_read += len(rows)
            for start in range(0, len(rows), SYNC_APPLY_ROWS):
                share.begin(monotonic())
                group = rows[start : start + SYNC_APPLY_ROWS]
                deferred.extend(self._apply_group(group, seq_before, read, applied))
                if share.spent():
                    await asyncio.sleep(0)
            await asyncio.sleep(0)  # a fire waiting for the loop goes first
        return deferred, rows_read

    def _apply_group(
        self,
        rows: Sequence[sa.Row[Any]],
        seq_before: int,
        read: set[str],
        applied: dict[str, tuple[Any, ...]] | None,
    ) -> list[str]:
        """Apply a few rows to the index (``_apply_rows``); return the ids it deferred."""
        retry = self._reread_taken
        snapshots = []
        fresh: dict[str, tuple[Any, ...]] = {}
        for row in rows:
            if applied is not None:
                values = tuple(row)
                if applied.get(row.id) == values and row.id not in retry:
                    read.add(row.id)
                    continue
                fresh[row.id] = values
            try:
                snapshots.append(to_snapshot(row))
            except (ValueError, KeyError, TypeError):
                logger.error("rule_unreadable", extra={"rule_id": row.id})
                continue
            read.add(row.id)
        changes = self._rules.apply_changes(snapshots, seq_before, self._clock.now())
        for rule in changes.cooled:
            assert rule.ts_next_attempt is not None
            self._dispatcher.schedule_rearm(rule.id, rule.ts_next_attempt)
        if applied is not None:
            for rule_id in changes.deferred:
                fresh.pop(rule_id, None)
                applied.pop(rule_id, None)
            applied.update(fresh)
        return list(changes.deferred)

    async def _report_other_mode_rules(self, session: AsyncSession) -> None:
        """Say once, at start, how many rules of the other mode this worker leaves alone."""
        mode = self._settings.execution_mode
        self.other_mode_rules = await count_other_mode_rules(session, None, mode)
        self._other_mode_reported = True
        log = logger.warning if self.other_mode_rules else logger.info
        log(
            "rules_of_other_mode_left_alone",
            extra={"execution_mode": mode.value, "rules": self.other_mode_rules},
        )

    async def price_stale_tokens(self) -> None:
        """Price stale tokens over HTTP; a failing token backs off alone.

        Raises ``ExchangeFailing`` only when every token asked failed transiently.
        """
        watched = self._rules.index.tokens()
        self._token_backoff.keep_only(watched)
        last_http_s = self._last_http_s
        for token_id in [t for t in last_http_s if t not in watched]:
            del last_http_s[token_id]
        now_s = self._clock.monotonic()
        settings = self._settings
        coverage = self._feed_coverage
        plan = http_price_plan(
            watched,
            self._feed_books,
            self._tracked_since_s,
            covered_live=None if coverage is None else coverage.live_tokens(now_s),
            last_http_s=last_http_s,
            now_s=now_s,
            stale_after_s=settings.trade_manager_stale_after_s,
            quiet_recheck_s=settings.trade_manager_quiet_book_recheck_s,
            max_quiet=quiet_rechecks_per_tick(
                len(watched),
                poll_interval_s=settings.trade_manager_poll_interval_s,
                quiet_recheck_s=settings.trade_manager_quiet_book_recheck_s,
            ),
        )
        backoff = self._token_backoff
        stale = backoff.due(plan.stale, now_s)
        quiet = backoff.due(plan.quiet, now_s)
        tokens = [*stale, *quiet]
        if len(tokens) < len(plan.stale) + len(plan.quiet):
            self._metrics.http_price_skipped.inc(len(plan.stale) + len(plan.quiet) - len(tokens))
        if stale:
            self._metrics.http_prices.labels(HttpPriceReason.STALE.value).inc(len(stale))
        if quiet:
            self._metrics.http_prices.labels(HttpPriceReason.QUIET_RECHECK.value).inc(len(quiet))
        failures: list[tuple[str, Exception]] = []
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
                    failures.append((token_id, book))
                    continue
                if isinstance(book, BaseException):
                    raise book
                self._token_backoff.succeeded(token_id)
                last_http_s[token_id] = now_s
                if self._feed_stamp(token_id) != stamps[token_id]:
                    # The feed moved the token while the request was out: its price is newer
                    # than this book, and an older price could cross a level raised since.
                    logger.info("http_price_superseded", extra={"token_id": token_id})
                else:
                    self._apply_http_book(token_id, books_from_http(book))
        for _token_id, error in failures:
            self._metrics.http_price_failures.labels(_failure_reason(error)).inc()
        exchange_failing = len(failures) == len(tokens) and all(
            isinstance(error, TransientSkillError) for _, error in failures
        )
        if failures and exchange_failing:
            # Nothing answered and every answer says "try later": that is the exchange, not
            # the tokens. No token is backed off; the breaker decides when to try again.
            self._metrics.tokens_backing_off.set(len(self._token_backoff))
            error = failures[0][1]
            raise ExchangeFailing(f"{len(failures)} HTTP prices failed") from error
        for token_id, error in failures:
            delay_s = self._token_backoff.failed(token_id, now_s)
            logger.warning(
                "http_price_failed",
                extra={
                    "token_id": token_id,
                    "error": type(error).__name__,
                    "retry_in_s": round(delay_s, 1),
                },
            )
        self._metrics.tokens_backing_off.set(len(self._token_backoff))

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
