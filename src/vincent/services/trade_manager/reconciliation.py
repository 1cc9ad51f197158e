"""Settle rules an execution left unfinished: a crash after the claim, or an owner's decision.

Runs at every start (crash recovery and start-up are one path) and on every poll tick.
TRIGGERED rules whose last ACTION_ATTEMPT has no outcome (a lost answer, or a sale still
settling: ACTION_SETTLING) are resolved by asking the skill about the attempt's
idempotency key (never by sending a new order) and following the sale's settlement;
PENDING_APPROVAL rules are finished once the skill says their approval was decided or
expired (``resolve_approvals``); actions left UNKNOWN by an ambiguous answer to an agent's
bet are settled by the skill. Never reads the skill's audit rows: every answer is typed.
Network calls happen outside any transaction; outcomes are written through
``RuleExecutor.record_*``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from vincent.db.models import TradeRule, TradeRuleEvent
from vincent.db.session import SessionFactory
from vincent.enums import ExecutionMode, TradeRuleEventType, TradeRuleStatus
from vincent.services.trade_manager.execution_outcomes import record_failed
from vincent.services.trade_manager.rule_executor import (
    ExecutionOutcome,
    RuleExecutor,
)
from vincent.skills.polymarket.types import ApprovalResolution, ApprovalState, TradingSkill

logger = logging.getLogger(__name__)

_OUTCOME_EVENTS = frozenset(
    {
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.ACTION_FAILED,
        TradeRuleEventType.ACTION_PENDING_APPROVAL,
        TradeRuleEventType.RULE_FAILED,
    }
)
UNKEYED_ATTEMPT_MESSAGE = (
    "Execution was interrupted and its order cannot be looked up; "
    "check the position before re-creating the rule"
)


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """A claimed rule whose last attempt has no recorded outcome."""

    rule_id: str
    idempotency_key: str | None  # None: claimed but no attempt written (or an unkeyed one)
    has_attempt: bool
    ts_attempt: datetime | None


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    outcomes: tuple[tuple[str, ExecutionOutcome], ...] = ()
    unresolved: tuple[str, ...] = ()


async def find_open_attempts(
    session_factory: SessionFactory,
    *,
    exclude: Collection[str] = (),
    execution_mode: ExecutionMode | None = None,
) -> list[OpenAttempt]:
    """TRIGGERED rules (of ``execution_mode``, if given) whose last ACTION_ATTEMPT (if any)
    has no outcome after it."""
    async with session_factory() as session:
        rule_ids = [
            rule_id
            for rule_id in await session.scalars(
                sa.select(TradeRule.id).where(
                    TradeRule.status == TradeRuleStatus.TRIGGERED,
                    TradeRule.trigger_tx_hash.is_(None),
                    *_of_mode(execution_mode),
                )
            )
            if rule_id not in exclude
        ]
        if not rule_ids:
            return []
        events = await session.scalars(
            sa.select(TradeRuleEvent)
            .where(TradeRuleEvent.rule_id.in_(rule_ids))
            .order_by(TradeRuleEvent.created_at, TradeRuleEvent.id)
        )
        last_attempt: dict[str, TradeRuleEvent] = {}
        settled: set[str] = set()
        for event in events:
            if event.event_type is TradeRuleEventType.ACTION_ATTEMPT:
                last_attempt[event.rule_id] = event
                settled.discard(event.rule_id)
            elif event.event_type in _OUTCOME_EVENTS:
                settled.add(event.rule_id)
    open_attempts = []
    for rule_id in rule_ids:
        if rule_id in settled:
            continue
        attempt = last_attempt.get(rule_id)
        key = None if attempt is None else attempt.event_data.get("idempotencyKey")
        open_attempts.append(
            OpenAttempt(
                rule_id=rule_id,
                idempotency_key=key if isinstance(key, str) else None,
                has_attempt=attempt is not None,
                ts_attempt=None if attempt is None else attempt.created_at,
            )
        )
    return open_attempts


async def reconcile_rules(
    session_factory: SessionFactory,
    skill: TradingSkill,
    executor: RuleExecutor,
    *,
    now: datetime,
    min_attempt_age_s: float = 0.0,
    execution_mode: ExecutionMode | None = None,
) -> ReconciliationReport:
    """Settle open attempts and decided approvals; return what happened to each rule.

    With ``execution_mode``, only rules made in that mode: a worker never settles (nor
    retries) a rule of the other mode.
    """
    outcomes: list[tuple[str, ExecutionOutcome]] = []
    unresolved: list[str] = []
    attempts = await find_open_attempts(session_factory, execution_mode=execution_mode)
    # Read the guard after the query: a rule claimed before it is still being executed here.
    executing = executor.executing
    cutoff = now - timedelta(seconds=min_attempt_age_s)
    for attempt in attempts:
        if attempt.rule_id in executing:
            continue
        if min_attempt_age_s > 0 and attempt.ts_attempt is not None and attempt.ts_attempt > cutoff:
            continue  # may still be in flight in another process
        if not attempt.has_attempt:
            result = await executor.record_not_sent(
                attempt.rule_id, "Execution was interrupted before an order was sent; retrying"
            )
            outcomes.append((attempt.rule_id, result.outcome))
            continue
        if attempt.idempotency_key is None:
            await record_failed(session_factory, attempt.rule_id, UNKEYED_ATTEMPT_MESSAGE, now=now)
            outcomes.append((attempt.rule_id, ExecutionOutcome.FAILED))
            continue
        try:
            resolution = await skill.resolve_attempt(attempt.idempotency_key)
        except Exception as error:  # retried on the next tick
            logger.warning(
                "rule_attempt_unresolved",
                extra={"rule_id": attempt.rule_id, "error": type(error).__name__},
            )
            unresolved.append(attempt.rule_id)
            continue
        result = await executor.record_resolution(attempt.rule_id, resolution)
        logger.info(
            "rule_attempt_reconciled",
            extra={"rule_id": attempt.rule_id, "outcome": result.outcome.value},
        )
        outcomes.append((attempt.rule_id, result.outcome))
    outcomes.extend(
        await _settle_approvals(
            session_factory, skill, executor, now=now, execution_mode=execution_mode
        )
    )
    await _settle_unknown_actions(skill, now - timedelta(seconds=min_attempt_age_s))
    return ReconciliationReport(outcomes=tuple(outcomes), unresolved=tuple(unresolved))


def _of_mode(execution_mode: ExecutionMode | None) -> list[sa.ColumnElement[bool]]:
    return [] if execution_mode is None else [TradeRule.execution_mode == execution_mode]


async def _settle_unknown_actions(skill: TradingSkill, older_than: datetime) -> None:
    """Agents' bets whose answer was ambiguous: settled by order id, never sent anew."""
    try:
        settled = await skill.settle_unknown_actions(older_than=older_than)
    except Exception as error:  # tried again on the next tick
        logger.warning("unknown_actions_unsettled", extra={"error": type(error).__name__})
        return
    for log_id, status in settled:
        logger.info(
            "unknown_action_reconciled",
            extra={"transaction_log_id": log_id, "status": status.value},
        )


async def _settle_approvals(
    session_factory: SessionFactory,
    skill: TradingSkill,
    executor: RuleExecutor,
    *,
    now: datetime,
    execution_mode: ExecutionMode | None = None,
) -> list[tuple[str, ExecutionOutcome]]:
    """Finish the rules whose approval was decided or expired, from what the skill says
    became of each one."""
    async with session_factory() as session:
        rows = await session.execute(
            sa.select(TradeRule.id, TradeRule.pending_approval_id).where(
                TradeRule.status == TradeRuleStatus.PENDING_APPROVAL,
                *_of_mode(execution_mode),
            )
        )
        waiting = {rule_id: approval_id for rule_id, approval_id in rows if approval_id}
    if not waiting:
        return []
    resolutions = await skill.resolve_approvals(waiting.values(), now=now)
    outcomes: list[tuple[str, ExecutionOutcome]] = []
    for rule_id, approval_id in waiting.items():
        resolution = resolutions.get(approval_id)
        if resolution is None or resolution.state is ApprovalState.WAITING:
            continue
        if resolution.state is ApprovalState.EXECUTED and resolution.result is not None:
            result = await executor.record_bet_result(rule_id, resolution.result)
            outcomes.append((rule_id, result.outcome))
            continue
        await record_failed(session_factory, rule_id, _approval_failure(resolution), now=now)
        outcomes.append((rule_id, ExecutionOutcome.FAILED))
    return outcomes


def _approval_failure(resolution: ApprovalResolution) -> str:
    """The rule's error message for an approval that came to nothing."""
    if resolution.state is ApprovalState.DENIED:
        return "Trade approval denied by the owner"
    if resolution.state is ApprovalState.EXPIRED:
        return "Trade approval expired"
    return f"Approved trade failed: {resolution.message or resolution.state.value}"
