"""Execute a fired rule exactly once: claim, write the attempt, sell through the skill, record.

Transactions never span a network call: (1) the skill writes, in one transaction, the
claim ACTIVE→TRIGGERED + RULE_EVALUATED + ACTION_ATTEMPT (with its idempotency key) and
the signed order's audit row, and commits; (2) it posts the order; (3) the outcome is
recorded in a new transaction. A crash between (1) and (3) is resolved by
``reconciliation``. An action refused before its row is written (no position, closed
market) is claimed on its own and recorded the same way.
Only a settled sale is an execution: a fill is followed to its trades' CONFIRMED
(ACTION_SETTLING meanwhile); a settlement that FAILED puts the rule back to ACTIVE to fire
again at the current price. ``evaluate_rule`` (pure) is re-exported here under the
seed's name.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import utcnow
from vincent.db.leader_epoch import leads_under
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleType
from vincent.services.trade_manager import oco
from vincent.services.trade_manager.evaluation import evaluate_rule
from vincent.services.trade_manager.event_logger import (
    event_params,
    events_after,
    events_insert,
    log_events,
)
from vincent.services.trade_manager.execution_outcomes import (
    ExecutionOutcome,
    ExecutionResult,
    RetryDelay,
    Trigger,
    evaluated_payload,
    record_executed,
    record_failed,
    record_pending_approval,
    record_retry,
    record_settling,
    warm_record_executed,
)
from vincent.services.trade_manager.fire_lanes import FireLanes
from vincent.services.trade_manager.holdings_cache import HoldingsCache
from vincent.services.trade_manager.oco import claim_rule
from vincent.services.trade_manager.rule_manager import triggered_cte, triggered_update
from vincent.services.trade_manager.sell_planning import SellPlan, plan_sell
from vincent.services.trade_manager.trailing_levels import TrailingRaise, store_level_at_claim
from vincent.services.trade_manager.types import (
    ActionType,
    Clock,
    RuleAction,
    RuleSnapshot,
)
from vincent.skills.polymarket.errors import (
    ClaimLost,
    LeaderDeposed,
    NoLiquidity,
    PermanentSkillError,
    SkillError,
    StaleHoldings,
    TransientSkillError,
    UnknownOutcome,
    is_retryable,
)
from vincent.skills.polymarket.types import (
    AttemptOutcome,
    AttemptResolution,
    BetRequest,
    BetResult,
    BetStatus,
    Claimed,
    ClaimGuard,
    ClaimStatement,
    ClaimSteps,
    SettlementState,
    TradingSkill,
)

# The leadership epoch this worker leads under (in memory), or None (it no longer leads,
# which refuses the claim). The claim's UPDATE requires it to be the current one, reading
# it FOR SHARE in the same statement, so a takeover waits for the claim's transaction (and
# the signed order stored with it) or the claim matches nothing.
ClaimFence = Callable[[], int | None]


__all__ = [
    "ExecutionOutcome",
    "ExecutionResult",
    "RuleExecutor",
    "TrailingRaise",
    "Trigger",
    "evaluate_rule",
]

logger = logging.getLogger(__name__)

# A FOK killed for lack of liquidity is retried this many times before the rule fails.
MAX_NO_LIQUIDITY_RETRIES = 5


def _set(event: asyncio.Event | None) -> None:
    if event is not None:
        event.set()


def _claim_events(
    rule: RuleSnapshot, trigger: Trigger, key: str
) -> list[tuple[TradeRuleEventType, dict[str, Any]]]:
    """A claim's events, in their order: RULE_EVALUATED, then ACTION_ATTEMPT with the key."""
    return [
        (TradeRuleEventType.RULE_EVALUATED, evaluated_payload(rule, trigger)),
        (TradeRuleEventType.ACTION_ATTEMPT, {"type": "market_order", "idempotencyKey": key}),
    ]


class _RuleClaim:
    """The rule's claim as the skill runs it: in the transaction that writes the signed
    order's audit row (``BetRequest.claim``), so claim, order and row commit together."""

    def __init__(
        self,
        executor: RuleExecutor,
        rule: RuleSnapshot,
        trigger: Trigger,
        trailing: TrailingRaise | None,
        key: str,
    ) -> None:
        self._executor = executor
        self._args = (rule, trigger, trailing, key)
        self.won = False  # set once the claim ran and won (its transaction may still fail)

    async def __call__(
        self, session: AsyncSession, guard: ClaimGuard | None = None
    ) -> Claimed | None:
        claimed = await self._executor.claim_in(session, *self._args, guard=guard)
        if claimed is None:
            return None
        self.won = True
        return claimed

    def statement(self, guard: ClaimGuard | None = None) -> ClaimStatement | None:
        return self._executor.claim_statement(*self._args, guard=guard, won=self._won)

    def steps(self, guard: ClaimGuard | None = None) -> ClaimSteps | None:
        return self._executor.claim_steps(*self._args, guard=guard, won=self._won)

    def _won(self) -> None:
        self.won = True

    async def ensure(self) -> bool:
        """Claim in a transaction of its own unless the skill's already did; whether won.
        (An action refused before its row was written still ends the rule's attempt.)"""
        if not self.won:
            self.won = await self._executor.claim_alone(*self._args) is not None
        return self.won


# An epoch no leader ever has (epochs count up from 1): the warm-up's fence.
_NO_EPOCH = 0
_WARM_UP_RULE = RuleSnapshot(
    id="",
    secret_id="",
    rule_type=TradeRuleType.STOP_LOSS,
    market_id="",
    token_id="",
    trigger_price=Decimal("0.5"),
    trailing_percent=None,
    action=RuleAction(ActionType.SELL_ALL),
)


class _WarmUpClaim:
    """A claim of no rule, shaped as a fire's (``RuleExecutor.warm``): it never wins."""

    def __init__(self, executor: RuleExecutor, epoch: int | None) -> None:
        self._executor = executor
        self._epoch = epoch

    async def __call__(
        self, session: AsyncSession, guard: ClaimGuard | None = None
    ) -> Claimed | None:
        return None

    def statement(self, guard: ClaimGuard | None = None) -> ClaimStatement | None:
        trigger = Trigger(price=Decimal("0.5"), source="websocket", ts_event=0.0)
        return self._executor._statement(
            _WARM_UP_RULE, trigger, "warm-up", guard, self._epoch, lambda: None
        )

    def steps(self, guard: ClaimGuard | None = None) -> ClaimSteps | None:
        trigger = Trigger(price=Decimal("0.5"), source="websocket", ts_event=0.0)
        return self._executor._steps(
            _WARM_UP_RULE, trigger, "warm-up", guard, self._epoch, lambda: None
        )


class RuleExecutor:
    """Runs executions; its in-process guard keeps one execution per rule at a time.

    The path to the POST (issue 14): the position comes from ``HoldingsCache`` (read over
    the network only when it holds none, or the skill says it is stale), and the claim is
    written by the skill in the same transaction as the signed order's audit row: one
    commit, then the POST. ``answered`` is set when the exchange answered; recording what
    the order came to then goes through ``FireLanes.recording`` (fires first), so a burst
    of fires does not queue behind its own bookkeeping.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        skill: TradingSkill,
        *,
        clock: Clock,
        retry_delay: RetryDelay,
        fence: ClaimFence | None = None,
        holdings: HoldingsCache | None = None,
        lanes: FireLanes | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._fence = fence
        self._skill = skill
        self._clock = clock
        self._retry_delay = retry_delay
        self._executing: set[str] = set()
        self.holdings = holdings if holdings is not None else HoldingsCache()
        self.lanes = lanes if lanes is not None else FireLanes()

    @property
    def executing(self) -> frozenset[str]:
        """Ids of the rules being executed in this process right now."""
        return frozenset(self._executing)

    async def execute_rule(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        *,
        trailing: TrailingRaise | None = None,
        answered: asyncio.Event | None = None,
    ) -> ExecutionResult:
        """Claim and execute ``rule``; the returned outcome is already committed.

        ``answered`` is set once the order's POST was answered (or none will be sent).
        """
        if rule.id in self._executing:
            return ExecutionResult(ExecutionOutcome.SKIPPED, rule.id)
        self._executing.add(rule.id)
        try:
            return await self._execute(rule, trigger, trailing, answered)
        finally:
            self._executing.discard(rule.id)
            _set(answered)

    async def _execute(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        trailing: TrailingRaise | None,
        answered: asyncio.Event | None,
    ) -> ExecutionResult:
        key = f"rule-{rule.id}-{uuid.uuid4().hex}"
        claim = _RuleClaim(self, rule, trigger, trailing, key)
        result: ExecutionResult | None = None
        try:
            result = await self._plan_and_sell(rule, trigger, key, claim, answered)
            return result
        finally:
            if result is not None and result.filled_shares is not None:
                self.holdings.sold(rule.secret_id, rule.token_id, result.filled_shares)
            elif claim.won:
                # An order may have reached the exchange: the position read before is old.
                self.holdings.forget(rule.secret_id, self._clock.now())

    async def _plan_and_sell(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        key: str,
        claim: _RuleClaim,
        answered: asyncio.Event | None,
    ) -> ExecutionResult:
        cached = self.holdings.get(rule.secret_id, self._clock.now())
        if cached is not None:
            plan = plan_sell(rule, cached.holdings, now=self._clock.now(), quote=trigger.quote)
            # A position the cache lacks may be newer than the read: read before failing.
            if not isinstance(plan, str):
                try:
                    return await self._sell(rule, plan, key, claim, answered, cached.read_at)
                except StaleHoldings:
                    pass  # the secret acted since the read: read it now
        read_at = self._clock.now()
        try:
            holdings = await self._skill.get_holdings(rule.secret_id)
        except PermanentSkillError as error:
            return await self._claimed_fail(rule, claim, error.message)
        except Exception as error:
            # Nothing was sent, so any other failure is safe to retry.
            retry_after_s = getattr(error, "retry_after_s", None)
            if not await claim.ensure():
                return ExecutionResult(ExecutionOutcome.SKIPPED, rule.id)
            return await self._retry(rule, f"Cannot read holdings: {error}", retry_after_s)
        self.holdings.remember(rule.secret_id, holdings, read_at)
        plan = plan_sell(rule, holdings, now=self._clock.now(), quote=trigger.quote)
        if isinstance(plan, str):
            return await self._claimed_fail(rule, claim, plan)
        return await self._sell(rule, plan, key, claim, answered, None)

    async def _claimed_fail(
        self, rule: RuleSnapshot, claim: _RuleClaim, message: str
    ) -> ExecutionResult:
        if not await claim.ensure():
            return ExecutionResult(ExecutionOutcome.SKIPPED, rule.id)
        return await self._fail(rule, message)

    async def claim_in(
        self,
        session: AsyncSession,
        rule: RuleSnapshot,
        trigger: Trigger,
        trailing: TrailingRaise | None,
        key: str,
        *,
        guard: ClaimGuard | None = None,
    ) -> Claimed | None:
        """Claim ``rule`` in ``session``'s transaction (the caller commits): fence, latest
        trailing raise, ACTIVE → TRIGGERED (pausing its OCO group), RULE_EVALUATED and
        ACTION_ATTEMPT. None when it was no longer ACTIVE (or ``guard``, the skill's
        condition, does not hold); ``LeaderDeposed`` when this worker no longer leads."""
        now = self._clock.now()
        epoch = self._lead_epoch()
        if trailing is not None:
            # The latest raise must land before the claim (it needs status ACTIVE).
            await store_level_at_claim(session, rule.id, trailing, now)
            await session.flush()  # its RULE_TRAILING_UPDATED goes before the claim's events
        # OCO: the claim also pauses the rule's group (``oco.claim_rule``).
        if not await claim_rule(session, rule, now, leader_epoch=epoch, guard=guard):
            # Not ACTIVE (the trailing update above matched nothing either), or deposed
            # since: either way nothing of this transaction may commit.
            return None
        events = [(rule.id, kind, data) for kind, data in _claim_events(rule, trigger, key)]
        await log_events(session, events, utcnow())  # one statement, in this order
        return Claimed(epoch)

    def _lead_epoch(self) -> int | None:
        """The epoch this worker leads under (None: no fence); ``LeaderDeposed`` if none."""
        if self._fence is None:
            return None
        epoch = self._fence()
        if epoch is None:
            raise LeaderDeposed("this worker no longer leads: the new leader owns the rule")
        return epoch

    def claim_statement(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        trailing: TrailingRaise | None,
        key: str,
        *,
        guard: ClaimGuard | None,
        won: Callable[[], None],
    ) -> ClaimStatement | None:
        """``claim_in`` as parts of the skill's one statement (PostgreSQL): the guarded,
        fenced UPDATE ACTIVE → TRIGGERED returning the rule, and its RULE_EVALUATED and
        ACTION_ATTEMPT written from it. None for what needs more than that (a trailing raise
        to store first, an OCO group to pause): those claim in a transaction (``claim_in``).
        ``LeaderDeposed`` when this worker no longer leads."""
        if trailing is not None or rule.oco_group_id is not None:
            return None
        return self._statement(rule, trigger, key, guard, self._lead_epoch(), won)

    def claim_steps(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        trailing: TrailingRaise | None,
        key: str,
        *,
        guard: ClaimGuard | None,
        won: Callable[[], None],
    ) -> ClaimSteps | None:
        """``claim_in`` as statements of the skill's one transaction (SQLite): the guarded
        UPDATE ACTIVE → TRIGGERED (in an OCO group: of a rule no sibling paused, then the
        pause of its siblings, as ``oco.claim_rule``), then its RULE_EVALUATED and
        ACTION_ATTEMPT. None for a trailing raise to store first (``claim_in``).
        ``LeaderDeposed`` when this worker no longer leads."""
        if trailing is not None:
            return None
        return self._steps(rule, trigger, key, guard, self._lead_epoch(), won)

    def _steps(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        key: str,
        guard: ClaimGuard | None,
        epoch: int | None,
        won: Callable[[], None],
    ) -> ClaimSteps:
        # The same conditions and parameters as ``_statement``'s, as separate statements.
        now = self._clock.now()
        conditions, params = self._claim_conditions(rule, guard, epoch, now)
        writes: list[sa.Insert | sa.Update] = []
        if rule.oco_group_id is not None:
            conditions.insert(0, oco.NOT_PAUSED)
            writes.append(oco.PAUSE_SIBLINGS)
            params.update(oco.pause_params(rule, now))
        events = _claim_events(rule, trigger, key)
        writes.append(events_insert(len(events)))
        params.update(event_params(events, utcnow()), event_rule_id=rule.id)
        return ClaimSteps(triggered_update(*conditions), tuple(writes), params, epoch, won)

    @staticmethod
    def _claim_conditions(
        rule: RuleSnapshot, guard: ClaimGuard | None, epoch: int | None, now: datetime
    ) -> tuple[list[sa.ColumnElement[bool]], dict[str, object]]:
        """The claim's UPDATE's further conditions (the skill's guard, the leadership
        fence) and the parameters of it all."""
        conditions: list[sa.ColumnElement[bool]] = []
        params: dict[str, object] = {"claim_rule_id": rule.id, "claim_now": now}
        if guard is not None:
            conditions.append(guard.condition)
            params.update(guard.params)
        if epoch is not None:
            fence_condition, fence_params = leads_under(epoch)
            conditions.append(fence_condition)
            params.update(fence_params)
        return conditions, params

    def _statement(
        self,
        rule: RuleSnapshot,
        trigger: Trigger,
        key: str,
        guard: ClaimGuard | None,
        epoch: int | None,
        won: Callable[[], None],
    ) -> ClaimStatement:
        conditions, params = self._claim_conditions(rule, guard, epoch, self._clock.now())
        claimed = triggered_cte(*conditions)
        events = _claim_events(rule, trigger, key)
        params.update(event_params(events, utcnow()))
        return ClaimStatement(claimed, (events_after(claimed, len(events)),), params, epoch, won)

    async def warm(self) -> None:
        """Before the first fire: have the skill run a rule sell's statement once, claiming
        nothing (``TradingSkill.warm_claim``), so its first compile and prepare (~10 ms of
        CPU, and a connection's first use) is not paid by a fire; the same for the
        statement recording an execution (``warm_record_executed``). Any role: neither
        names a rule, and the claim, fenced, names an epoch that never leads."""
        epoch = None if self._fence is None else _NO_EPOCH
        await self._skill.warm_claim(_WarmUpClaim(self, epoch))
        await warm_record_executed(self._session_factory)

    async def claim_alone(
        self, rule: RuleSnapshot, trigger: Trigger, trailing: TrailingRaise | None, key: str
    ) -> Claimed | None:
        """``claim_in`` in a transaction of its own; None also when deposed."""
        try:
            async with self._session_factory() as session, session.begin():
                return await self.claim_in(session, rule, trigger, trailing, key)
        except LeaderDeposed:
            return None

    async def _sell(
        self,
        rule: RuleSnapshot,
        plan: SellPlan,
        key: str,
        claim: _RuleClaim,
        answered: asyncio.Event | None,
        held_as_of: datetime | None,
    ) -> ExecutionResult:
        """Place the sell in a slot of the pre-POST lane, given back once the order is
        stored (``BetRequest.stored``) and, at the latest, before anything is recorded."""
        release = await self.lanes.before_post()
        try:
            return await self._sell_in_lane(rule, plan, key, claim, answered, held_as_of, release)
        finally:
            release()

    async def _sell_in_lane(
        self,
        rule: RuleSnapshot,
        plan: SellPlan,
        key: str,
        claim: _RuleClaim,
        answered: asyncio.Event | None,
        held_as_of: datetime | None,
        release: Callable[[], None],
    ) -> ExecutionResult:
        request = BetRequest(
            secret_id=rule.secret_id,
            token_id=rule.token_id,
            side="SELL",
            amount=plan.shares,
            order_type="FOK",
            worst_price=plan.worst_price,
            idempotency_key=key,
            rule_id=rule.id,
            shares_held=plan.held,
            claim=claim,
            answered=answered,
            shares_held_as_of=held_as_of,
            stored=release,
            record_gate=self.lanes.recording,
        )
        ts_sent = self._clock.monotonic()
        try:
            result = await self._skill.place_bet(request)
        except (LeaderDeposed, ClaimLost):
            # Deposed, or the rule moved on: nothing was stored or sent (a deposed leader's
            # claim is settled by the new leader's reconciliation). Record nothing.
            logger.info("rule_sell_not_claimed", extra={"rule_id": rule.id})
            return ExecutionResult(ExecutionOutcome.SKIPPED, rule.id)
        except StaleHoldings:
            raise
        except SkillError as error:
            release()
            _set(answered)  # the fire lane is done with it before it waits to be recorded
            if not await claim.ensure():
                return ExecutionResult(ExecutionOutcome.SKIPPED, rule.id)
            async with self.lanes.recording():
                return await self._record_error(rule, key, error, ts_sent)
        # Answered, or nothing was posted (pending approval, denied): the fire lane is done
        # with it before its outcome waits for the record lane (which waits for fires).
        release()
        _set(answered)
        async with self.lanes.recording():
            return await self.record_bet_result(rule.id, result, ts_sent)

    async def _record_error(
        self, rule: RuleSnapshot, key: str, error: SkillError, ts_sent: float
    ) -> ExecutionResult:
        if isinstance(error, UnknownOutcome):
            return await self._resolve_unknown(rule, key, error.message, ts_sent)
        if isinstance(error, NoLiquidity):
            # The book moved between the trigger and the order: try again at the new price,
            # a bounded number of times (the seed retried these too).
            return await self.record_no_liquidity(rule.id, error.message, ts_sent)
        if isinstance(error, PermanentSkillError):
            return await self._fail(rule, error.message, ts_sent)
        if isinstance(error, TransientSkillError):
            return await self._retry(rule, error.message, error.retry_after_s, ts_sent)
        return await self._fail(rule, error.message, ts_sent)

    async def record_bet_result(
        self, rule_id: str, result: BetResult, ts_sent: float | None = None
    ) -> ExecutionResult:
        """Record a ``place_bet`` answer for a claimed rule."""
        if result.status is BetStatus.EXECUTED:
            return await self._record_fill(rule_id, result, ts_sent)
        if result.status is BetStatus.PENDING_APPROVAL:
            await record_pending_approval(
                self._session_factory, rule_id, result.pending_approval_id
            )
            return ExecutionResult(
                ExecutionOutcome.PENDING_APPROVAL, rule_id, ts_order_sent=ts_sent
            )
        message = f"Trade denied by policy: {result.reason or 'denied'}"
        await record_failed(self._session_factory, rule_id, message, now=self._clock.now())
        return ExecutionResult(
            ExecutionOutcome.FAILED, rule_id, message=message, ts_order_sent=ts_sent
        )

    async def _record_fill(
        self, rule_id: str, result: BetResult, ts_sent: float | None
    ) -> ExecutionResult:
        """A filled sell counts once its trades settled; until then the rule says so."""
        try:
            settlement = await self._skill.follow_settlement(
                result.transaction_log_id, result.recorded
            )
        except Exception as error:  # the exchange cannot say now: reconciliation asks again
            logger.warning(
                "rule_settlement_unknown",
                extra={"rule_id": rule_id, "error": type(error).__name__},
            )
            state = SettlementState.SETTLING
        else:
            state = settlement.state
        if state is SettlementState.SETTLING:
            await record_settling(self._session_factory, rule_id, result)
            return ExecutionResult(
                ExecutionOutcome.SETTLING,
                rule_id,
                order_id=result.order_id,
                ts_order_sent=ts_sent,
                filled_shares=result.filled_shares,
            )
        if state is SettlementState.FAILED:
            return await self.record_settlement_failed(rule_id, result.order_id, ts_sent)
        await record_executed(self._session_factory, rule_id, result)
        return ExecutionResult(
            ExecutionOutcome.EXECUTED,
            rule_id,
            order_id=result.order_id,
            ts_order_sent=ts_sent,
            filled_shares=result.filled_shares,
        )

    async def record_settlement_failed(
        self, rule_id: str, order_id: str | None, ts_sent: float | None = None
    ) -> ExecutionResult:
        """The sale matched but its settlement reverted: the shares are still held, so the
        rule is not done. Back to ACTIVE (ACTION_FAILED says why) to fire again at the
        current price with a new attempt; the failed order's audit row says FAILED."""
        message = (
            f"Sale of order {order_id} failed to settle on chain; the shares are still "
            "held, selling again"
        )
        logger.warning("rule_settlement_failed", extra={"rule_id": rule_id, "order_id": order_id})
        next_attempt_at = await record_retry(
            self._session_factory,
            rule_id,
            message,
            now=self._clock.now(),
            retry_delay=self._retry_delay,
            details={"orderId": order_id, "settlement": SettlementState.FAILED.value},
        )
        return ExecutionResult(
            ExecutionOutcome.RETRY,
            rule_id,
            order_id=order_id,
            message=message,
            next_attempt_at=next_attempt_at,
            ts_order_sent=ts_sent,
        )

    async def record_resolution(
        self,
        rule_id: str,
        resolution: AttemptResolution,
        ts_sent: float | None = None,
    ) -> ExecutionResult:
        """Record what ``resolve_attempt`` found for a claimed rule's attempt."""
        outcome = resolution.outcome
        if outcome is AttemptOutcome.SETTLEMENT_FAILED:
            return await self.record_settlement_failed(rule_id, resolution.order_id, ts_sent)
        if outcome is AttemptOutcome.NOT_SENT:
            message = resolution.message or "Order was not sent; retrying"
            return await self.record_not_sent(rule_id, message, ts_sent)
        if resolution.result is not None and outcome in (
            AttemptOutcome.EXECUTED,
            AttemptOutcome.PENDING_APPROVAL,
            AttemptOutcome.DENIED,
        ):
            return await self.record_bet_result(rule_id, resolution.result, ts_sent)
        if outcome is AttemptOutcome.DENIED:
            message = f"Trade denied by policy: {resolution.message or 'denied'}"
        else:
            message = resolution.message or f"Order attempt ended as {outcome.value}"
        if outcome is AttemptOutcome.FAILED and resolution.failure is not None:
            # A transiently refused order (definitely refused, retryable) means "not sent"
            # for a rule, never a dead stop; a FOK killed empty is retried as NoLiquidity.
            if isinstance(resolution.failure, NoLiquidity):
                return await self.record_no_liquidity(rule_id, message, ts_sent)
            if is_retryable(resolution.failure):
                return await self.record_not_sent(rule_id, message, ts_sent)
        await record_failed(self._session_factory, rule_id, message, now=self._clock.now())
        return ExecutionResult(ExecutionOutcome.FAILED, rule_id, message=message)

    async def _resolve_unknown(
        self, rule: RuleSnapshot, key: str, message: str, ts_sent: float
    ) -> ExecutionResult:
        # The order may be on the exchange: ask, never re-sign. If asking fails too, the rule
        # stays TRIGGERED with its open attempt and reconciliation settles it later.
        try:
            resolution = await self._skill.resolve_attempt(key)
        except Exception as error:
            logger.warning(
                "rule_attempt_unresolved",
                extra={"rule_id": rule.id, "error": type(error).__name__},
            )
            return ExecutionResult(
                ExecutionOutcome.UNRESOLVED, rule.id, message=message, ts_order_sent=ts_sent
            )
        return await self.record_resolution(rule.id, resolution, ts_sent)

    async def _fail(
        self, rule: RuleSnapshot, message: str, ts_sent: float | None = None
    ) -> ExecutionResult:
        await record_failed(self._session_factory, rule.id, message, now=self._clock.now())
        return ExecutionResult(
            ExecutionOutcome.FAILED, rule.id, message=message, ts_order_sent=ts_sent
        )

    async def record_no_liquidity(
        self, rule_id: str, message: str, ts_sent: float | None = None
    ) -> ExecutionResult:
        """A FOK found too little to fill: retry a bounded number of times, then FAILED."""
        next_attempt_at = await record_retry(
            self._session_factory,
            rule_id,
            message,
            now=self._clock.now(),
            retry_delay=self._retry_delay,
            max_attempts=MAX_NO_LIQUIDITY_RETRIES,
        )
        if next_attempt_at is None:
            await record_failed(self._session_factory, rule_id, message, now=self._clock.now())
            return ExecutionResult(
                ExecutionOutcome.FAILED, rule_id, message=message, ts_order_sent=ts_sent
            )
        return ExecutionResult(
            ExecutionOutcome.RETRY,
            rule_id,
            message=message,
            next_attempt_at=next_attempt_at,
            ts_order_sent=ts_sent,
        )

    async def _retry(
        self,
        rule: RuleSnapshot,
        message: str,
        retry_after_s: float | None,
        ts_sent: float | None = None,
    ) -> ExecutionResult:
        return await self._retry_by_id(rule.id, message, retry_after_s, ts_sent)

    async def record_not_sent(
        self, rule_id: str, message: str, ts_sent: float | None = None
    ) -> ExecutionResult:
        """Put a claimed rule whose order never reached the exchange back to ACTIVE."""
        return await self._retry_by_id(rule_id, message, None, ts_sent)

    async def _retry_by_id(
        self, rule_id: str, message: str, retry_after_s: float | None, ts_sent: float | None
    ) -> ExecutionResult:
        next_attempt_at = await record_retry(
            self._session_factory,
            rule_id,
            message,
            now=self._clock.now(),
            retry_delay=self._retry_delay,
            retry_after_s=retry_after_s,
        )
        return ExecutionResult(
            ExecutionOutcome.RETRY,
            rule_id,
            message=message,
            next_attempt_at=next_attempt_at,
            ts_order_sent=ts_sent,
        )
