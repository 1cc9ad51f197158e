"""The hot path: changed tokens → prices → rule index → executions, plus retry re-arms.

Synchronous from the feed's callback to the spawn of an execution: no database, no await.
Executions and re-arms run as jobs of the worker's ``TaskOwner``; their outcomes move rules
between the index, in-flight and cooling (``RuleRegistry``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from vincent.db.session import SessionFactory
from vincent.enums import TriggerSource
from vincent.services.trade_manager.http_pricing import quoter_for
from vincent.services.trade_manager.market_endings import MarketEnding, resolved
from vincent.services.trade_manager.market_expiry import expire_market_rules
from vincent.services.trade_manager.market_messages import MarketResolvedEvent
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.pricing import rule_price, source_price
from vincent.services.trade_manager.rule_executor import (
    ExecutionOutcome,
    ExecutionResult,
    RuleExecutor,
    TrailingRaise,
    Trigger,
)
from vincent.services.trade_manager.rule_index import NO_OUTCOME, PriceOutcome
from vincent.services.trade_manager.rule_registry import RuleRegistry, TokenChanges
from vincent.services.trade_manager.sell_planning import SellQuoter
from vincent.services.trade_manager.task_owner import TaskOwner
from vincent.services.trade_manager.trailing_levels import TrailingLevels
from vincent.services.trade_manager.types import Clock, RuleSnapshot

logger = logging.getLogger(__name__)

WEBSOCKET = "websocket"
POLL = "poll"
# Fires between their start and their order's answer at once. Each holds a database session
# for its one write; the engine's pool is 10 (+10 overflow) and the API shares it. A burst
# of fires beyond this waits its turn here instead of timing out on a pool checkout (which
# lost rules at 100k rules in bench.engine). A fire gives its slot back as soon as the
# exchange answered its POST: recording the outcome has its own lane, which waits while
# fires are on their way (``fire_lanes.FireLanes``), so the next sell never waits behind it.
MAX_CONCURRENT_EXECUTIONS = 8
BEST_BID = TriggerSource.BEST_BID
MIDPOINT = TriggerSource.MIDPOINT
# Midpoints remembered (a market's bests take a few hundred values); past this the memo
# starts again, which only costs time.
_MAX_MIDPOINTS = 4096


class PriceDispatcher:
    """Applies prices to the rules and runs the executions they fire."""

    def __init__(
        self,
        *,
        rules: RuleRegistry,
        books: OrderBooks,
        trailing: TrailingLevels,
        executor: RuleExecutor,
        tasks: TaskOwner,
        metrics: WorkerMetrics,
        clock: Clock,
        stopping: asyncio.Event,
        on_tokens: Callable[[TokenChanges], None],
        on_change: Callable[[], None],
        may_fire: Callable[[], bool] = lambda: True,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self._rules = rules
        self._books = books
        self._trailing = trailing
        self._executor = executor
        self._tasks = tasks
        self._metrics = metrics
        self._clock = clock
        self._stopping = stopping
        self._on_tokens = on_tokens
        self._on_change = on_change
        # False on a standby: prices then touch only the books, never the index.
        self._may_fire = may_fire
        # Where a market the feed reports resolved expires its rules (None: the poll tick's
        # market check does it instead).
        self._session_factory = session_factory
        self._live_quoter = quoter_for(books)
        # Label children bound once: a ``labels()`` lookup takes a lock and hashes the labels.
        self._ws_updates = metrics.price_updates.labels(WEBSOCKET)
        self._raised = metrics.evaluations.labels("trailing_raised")
        self._fired = metrics.evaluations.labels("fired")
        self._ws_triggers = metrics.triggers.labels(WEBSOCKET)
        # Fires crossed and not started yet, oldest first, and how many are running.
        self._waiting: deque[tuple[RuleSnapshot, Trigger, TrailingRaise | None]] = deque()
        # MIDPOINT prices by (best bid, best ask): see ``_midpoint``.
        self._midpoints: dict[tuple[Decimal, Decimal], tuple[Decimal, Decimal, Decimal]] = {}
        self._running = 0
        self.executions_completed = 0
        self.markets_ended = 0  # expiries of resolved markets written (feed path)

    def on_prices(self, token_ids: Iterable[str]) -> None:
        """The feed's callback: price every changed token for the sources its rules watch."""
        if not self._may_fire():
            return
        ts_event = self._clock.monotonic()
        sources_of = self._rules.index.sources
        prices_of = self._books.prices
        resolutions = self._books.resolutions()
        apply = self._rules.apply_price
        applied = 0
        raised = 0
        for token_id in token_ids:
            resolution = resolutions.get(token_id) if resolutions else None
            if resolution is not None:
                # Never a sell into a resolved market: its rules end instead.
                self.end_market(resolution.assets_ids, resolved(*_winner(resolution)))
                continue
            sources = sources_of(token_id)
            if not sources:
                continue
            prices = prices_of(token_id)
            if prices is None:
                continue
            best_bid, best_ask, last_trade = prices
            for source in sources:
                if source is BEST_BID:
                    price = best_bid
                elif source is MIDPOINT and best_bid is not None and best_ask is not None:
                    price = self._midpoint(best_bid, best_ask)
                else:
                    price = source_price(source, best_bid, best_ask, last_trade)
                if price is not None:
                    # ``_act`` inline: a price that raises and fires nothing (woken stops are
                    # among the raised) costs no further call than the raises' record.
                    outcome = apply(token_id, source, price)
                    if outcome is NO_OUTCOME:  # most prices: nothing raised, woken or fired
                        applied += 1
                        continue
                    if outcome.ratcheted:
                        self._record_raises(outcome, price, WEBSOCKET)
                        raised += len(outcome.ratcheted)
                    if outcome.fired:
                        self._queue_fires(outcome.fired, token_id, price, WEBSOCKET, ts_event, None)
                    applied += 1
        # One update per counter per event, not per price: each takes the metric's lock.
        if applied:
            self._ws_updates.inc(applied)
        if raised:
            self._raised.inc(raised)
        self._on_change()

    def _midpoint(self, best_bid: Decimal, best_ask: Decimal) -> Decimal:
        """``source_price``'s MIDPOINT of two prices, remembered by the two objects.

        The books' bests are the objects ``book_levels.read_best`` remembers per text, so a
        pair seen before is found again (the same objects, not merely equal values: "0.5"
        and "0.50" stay apart and each keeps its own exact result), and the price handed on
        is one object per pair, whose hash the trailing memos' keys then reuse.
        """
        key = (best_bid, best_ask)
        known = self._midpoints.get(key)
        if known is not None and known[0] is best_bid and known[1] is best_ask:
            return known[2]
        midpoint = source_price(MIDPOINT, best_bid, best_ask, None)
        assert midpoint is not None
        if len(self._midpoints) >= _MAX_MIDPOINTS:
            self._midpoints.clear()
        self._midpoints[key] = (best_bid, best_ask, midpoint)
        return midpoint

    def apply_price(
        self,
        token_id: str,
        source: TriggerSource,
        price: Decimal,
        origin: str,
        ts_event: float,
        quoter: Callable[[str], SellQuoter] | None = None,
    ) -> None:
        """Apply one price: record trailing raises, spawn an execution per fired rule."""
        if not self._may_fire():
            return
        if origin == WEBSOCKET:
            self._ws_updates.inc()
        else:
            self._metrics.price_updates.labels(origin).inc()
        self._apply(token_id, source, price, origin, ts_event, quoter)

    def _apply(
        self,
        token_id: str,
        source: TriggerSource,
        price: Decimal,
        origin: str,
        ts_event: float,
        quoter: Callable[[str], SellQuoter] | None,
    ) -> None:
        self._act(
            self._rules.apply_price(token_id, source, price),
            token_id,
            price,
            origin,
            ts_event,
            quoter,
        )

    def _act(
        self,
        outcome: PriceOutcome,
        token_id: str,
        price: Decimal,
        origin: str,
        ts_event: float,
        quoter: Callable[[str], SellQuoter] | None,
    ) -> None:
        """Record the trailing raises of one price and queue the fires it crossed."""
        if outcome.ratcheted:
            self._record_raises(outcome, price, origin)
            self._raised.inc(len(outcome.ratcheted))
        if outcome.fired:
            self._queue_fires(outcome.fired, token_id, price, origin, ts_event, quoter)

    def _record_raises(self, outcome: PriceOutcome, price: Decimal, origin: str) -> None:
        """Keep the new trigger of each stop ``price`` raised, for the next flush (not
        counted here: the caller counts them)."""
        activated = outcome.activated
        record = self._trailing.record
        for rule in outcome.ratcheted:
            record(
                rule.id,
                TrailingRaise(
                    rule.trigger_price,
                    price,
                    rule.trailing_percent,
                    origin,
                    # By name: the same type as ``trailing_percent``, a swap would type-check.
                    trailing_amount=rule.trailing_amount,
                    activated=rule.id in activated,
                ),
            )

    def _queue_fires(
        self,
        fired: tuple[RuleSnapshot, ...],
        token_id: str,
        price: Decimal,
        origin: str,
        ts_event: float,
        quoter: Callable[[str], SellQuoter] | None,
    ) -> None:
        """Queue the fires one price crossed, and start as many as the limit allows."""
        # One trigger for all (same price, same book) and one update per counter: a
        # burst's first order waits for this loop.
        trigger = Trigger(price, origin, ts_event, quote=(quoter or self._live_quoter)(token_id))
        take = self._trailing.take
        for rule in fired:
            self._waiting.append((rule, trigger, take(rule.id)))
        self._executor.lanes.fire_queued(len(fired))
        self._fired.inc(len(fired))
        if origin == WEBSOCKET:
            self._ws_triggers.inc(len(fired))
        else:
            self._metrics.triggers.labels(origin).inc(len(fired))
        self._start_fires()

    def _start_fires(self) -> None:
        """Start waiting fires, oldest first, while fewer than the limit are running.

        Only running fires are tasks: a burst of 1,000 is 8 tasks and a queue, so the
        first order does not wait for 1,000 tasks to be created and scheduled."""
        while self._waiting and self._running < MAX_CONCURRENT_EXECUTIONS:
            rule, trigger, trailing = self._waiting.popleft()
            if self._tasks.spawn(self._execute(rule, trigger, trailing), f"execute-{rule.id}"):
                self._running += 1
                continue
            # Stopping: it stays ACTIVE in the database for the next start.
            self._executor.lanes.fire_answered()
            self._rules.finish(rule.id)
            self._rules.release_group(rule.id)

    def end_market(
        self, token_ids: Iterable[str], ending: MarketEnding, *, write: bool = True
    ) -> list[RuleSnapshot]:
        """Stop watching the rules of an ended market now; expire them in the database next
        (unless ``write`` is False: the caller writes).

        Returns the rules dropped from memory. A failed write is retried by the poll tick's
        market check (the database still holds them ACTIVE, so its sync watches them again).
        """
        tokens = tuple(token_ids)
        ended = [rule for token_id in tokens for rule in self._rules.retire_token(token_id)]
        if not ended:
            return ended
        for rule in ended:
            self._trailing.discard(rule.id)
        self.sync_tokens()
        if write and self._session_factory is not None:
            self._tasks.spawn(self._expire_market(tokens, ending), f"expire-{tokens[0]}")
        return ended

    async def _expire_market(self, token_ids: tuple[str, ...], ending: MarketEnding) -> None:
        assert self._session_factory is not None
        try:
            async with self._session_factory() as session, session.begin():
                expired = await expire_market_rules(session, token_ids, ending, self._clock.now())
        except Exception as error:
            logger.warning(
                "market_expiry_failed",
                extra={"token_id": token_ids[0], "error": type(error).__name__},
            )
            return
        logger.info(
            "market_ended",
            extra={"token_id": token_ids[0], "reason": ending.reason, "rules": len(expired)},
        )
        self.markets_ended += 1
        self._on_change()

    def sync_tokens(self) -> None:
        """Tell the feed about tokens that gained their first rule or lost their last."""
        self._metrics.active_rules.set(len(self._rules.index))
        changes = self._rules.take_token_changes()
        if changes:
            self._on_tokens(changes)

    def schedule_rearm(self, rule_id: str, until: datetime) -> None:
        self._tasks.spawn(self._rearm_later(rule_id, until), f"rearm-{rule_id}")

    def rearm(self, rule_id: str, until: datetime) -> None:
        """Watch a cooled rule again and test it at once against the price in hand."""
        rule = self._rules.rearm(rule_id, until)
        if rule is None:
            return
        self.sync_tokens()
        top = self._books.top(rule.token_id)
        price = None if top is None else rule_price(top, rule.trigger_source)
        if price is not None:
            self.apply_price(
                rule.token_id, rule.trigger_source, price, WEBSOCKET, self._clock.monotonic()
            )

    async def _execute(
        self, rule: RuleSnapshot, trigger: Trigger, trailing: TrailingRaise | None
    ) -> None:
        try:
            result = await self._execute_in_slot(rule, trigger, trailing)
        except Exception:
            # Contained: the rule is still ACTIVE (the claim failed) or TRIGGERED with an
            # open attempt; the poll tick re-indexes or reconciles it.
            logger.exception("rule_execution_error", extra={"rule_id": rule.id})
            self._metrics.executions.labels("error").inc()
            self._rules.finish(rule.id)
        else:
            self._after(rule, trigger, result)
        finally:
            self.executions_completed += 1
            self.sync_tokens()
            self._on_change()

    async def _execute_in_slot(
        self, rule: RuleSnapshot, trigger: Trigger, trailing: TrailingRaise | None
    ) -> ExecutionResult:
        """Run the execution; it holds its fire slot until its order was answered."""
        answered = asyncio.Event()
        try:
            execution = asyncio.ensure_future(
                self._executor.execute_rule(rule, trigger, trailing=trailing, answered=answered)
            )
            waiter = asyncio.ensure_future(answered.wait())
            try:
                await asyncio.wait((execution, waiter), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                execution.cancel()
                raise
            finally:
                waiter.cancel()
        finally:
            # The fire's slot is free once its order was answered: the next fire starts now,
            # and recording (``FireLanes.recording``) may go once no fire is waiting.
            self._running -= 1
            self._executor.lanes.fire_answered()
            self._start_fires()
        try:
            return await execution
        except asyncio.CancelledError:
            execution.cancel()
            raise

    def _after(self, rule: RuleSnapshot, trigger: Trigger, result: ExecutionResult) -> None:
        self._metrics.executions.labels(result.outcome.value).inc()
        if result.ts_order_sent is not None:
            latency_s = max(0.0, result.ts_order_sent - trigger.ts_event)
            self._metrics.order_latency.observe(latency_s)
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
        self._settle_group(rule, result.outcome)
        if result.outcome is ExecutionOutcome.RETRY and result.next_attempt_at is not None:
            if self._rules.cool(rule.id, result.next_attempt_at) is not None:
                self.schedule_rearm(rule.id, result.next_attempt_at)
            return
        self._rules.finish(rule.id)

    def _settle_group(self, rule: RuleSnapshot, outcome: ExecutionOutcome) -> None:
        """OCO in memory, after the database: siblings go when the sell filled, and watch
        again (tested at once against the price in hand) when nothing was sold. Pending
        approval or an unknown answer keeps them paused until the poll tick's sync."""
        if rule.oco_group_id is None:
            return
        if outcome is ExecutionOutcome.EXECUTED:
            self._rules.settle_group(rule.id)
        elif outcome in (ExecutionOutcome.FAILED, ExecutionOutcome.RETRY, ExecutionOutcome.SKIPPED):
            released = self._rules.release_group(rule.id)
            if released:
                self.on_prices({r.token_id for r in released})

    async def _rearm_later(self, rule_id: str, until: datetime) -> None:
        delay_s = (until - self._clock.now()).total_seconds()
        if delay_s > 0:
            try:
                async with asyncio.timeout(delay_s):
                    await self._stopping.wait()
                return  # stopping: the database keeps the rule for the next start
            except TimeoutError:
                pass
        self.rearm(rule_id, until)


def _winner(event: MarketResolvedEvent) -> tuple[str | None, str | None]:
    return event.winning_asset_id, event.winning_outcome
