"""What the dashboard's pages read, always scoped to the viewer's secrets. Reads only.

Every function takes ``scope``: the secret ids the viewer may see, or ``None`` for the owner
(every secret). Another tenant's row is "not found", as in the API. Writes go through the
same services as the API (``rule_manager``, ``approvals``), never through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import (
    PendingApproval,
    Policy,
    Secret,
    TradeMonitoredPosition,
    TradeRule,
    TradeRuleEvent,
    TransactionLog,
)
from vincent.enums import ApprovalStatus, TradeRuleEventType, TradeRuleStatus
from vincent.errors import NotFound

Scope = Sequence[str] | None
# Rules shown per page, newest first.
MAX_RULES = 200
# Charts per page: tokens of live rules first, then of rules changed recently.
MAX_CHARTS = 12
LIVE_STATUSES = (TradeRuleStatus.ACTIVE, TradeRuleStatus.PENDING_APPROVAL)
CHART_EVENTS = (
    TradeRuleEventType.RULE_CREATED,
    TradeRuleEventType.RULE_TRAILING_UPDATED,
    TradeRuleEventType.RULE_EVALUATED,
    TradeRuleEventType.ACTION_EXECUTED,
)


class AuditRowNotFound(NotFound):
    default_message = "Audit log row not found"


@dataclass(frozen=True, slots=True)
class LastEvent:
    event_type: TradeRuleEventType
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One line of the rules table."""

    rule: TradeRule
    outcome: str | None
    last_event: LastEvent | None


@dataclass(frozen=True, slots=True)
class SecretRules:
    secret_id: str
    secret_name: str
    rows: list[RuleRow]


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """A pending approval. ``usd_value`` is the audit row's; without one (a market sell
    valued only once it executes) ``estimate_usd`` prices it at the last best bid seen."""

    approval: PendingApproval
    secret_name: str
    usd_value: float | None
    estimated: bool = False

    def with_estimate(self, best_bid: Decimal | None) -> ApprovalRow:
        """This row, valued at ``best_bid`` when the audit row has no value."""
        data = self.approval.request_data or {}
        if self.usd_value is not None or best_bid is None or data.get("side") != "SELL":
            return self
        try:
            shares = Decimal(str(data["amount"]))
        except (KeyError, ArithmeticError):
            return self
        return ApprovalRow(self.approval, self.secret_name, float(shares * best_bid), True)


def _scoped(statement: Any, column: Any, scope: Scope) -> Any:
    return statement if scope is None else statement.where(column.in_(list(scope)))


async def secret_names(session: AsyncSession, scope: Scope) -> dict[str, str]:
    """Live secrets the viewer may see: id → name, by name."""
    statement = _scoped(
        sa.select(Secret.id, Secret.name).where(Secret.deleted_at.is_(None)), Secret.id, scope
    ).order_by(Secret.name, Secret.id)
    return {row.id: row.name for row in await session.execute(statement)}


async def rule_rows(
    session: AsyncSession, scope: Scope, status: TradeRuleStatus | None = None
) -> list[SecretRules]:
    """The viewer's rules grouped per secret, newest first within each."""
    names = await secret_names(session, scope)
    statement = _scoped(sa.select(TradeRule), TradeRule.secret_id, scope)
    if status is not None:
        statement = statement.where(TradeRule.status == status)
    statement = statement.order_by(TradeRule.created_at.desc(), TradeRule.id.desc()).limit(
        MAX_RULES
    )
    rules = list((await session.scalars(statement)).all())
    rows = await describe_rules(session, rules)
    grouped: dict[str, list[RuleRow]] = {secret_id: [] for secret_id in names}
    for row in rows:
        grouped.setdefault(row.rule.secret_id, []).append(row)
    return [
        SecretRules(secret_id, names.get(secret_id, secret_id), found)
        for secret_id, found in grouped.items()
    ]


async def describe_rules(session: AsyncSession, rules: Sequence[TradeRule]) -> list[RuleRow]:
    """Add each rule's outcome (from its monitored position) and its latest event."""
    if not rules:
        return []
    ids = [rule.id for rule in rules]
    latest = (
        sa.select(
            TradeRuleEvent.rule_id,
            TradeRuleEvent.event_type,
            TradeRuleEvent.created_at,
            sa.func.row_number()
            .over(
                partition_by=TradeRuleEvent.rule_id,
                order_by=(TradeRuleEvent.created_at.desc(), TradeRuleEvent.id.desc()),
            )
            .label("position"),
        )
        .where(TradeRuleEvent.rule_id.in_(ids))
        .subquery()
    )
    last: dict[str, LastEvent] = {
        row.rule_id: LastEvent(row.event_type, row.created_at)
        for row in await session.execute(sa.select(latest).where(latest.c.position == 1))
    }
    outcomes = await _outcomes(session, {(r.secret_id, r.token_id) for r in rules})
    return [
        RuleRow(rule, outcomes.get((rule.secret_id, rule.token_id)), last.get(rule.id))
        for rule in rules
    ]


async def _outcomes(
    session: AsyncSession, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    if not pairs:
        return {}
    statement = sa.select(
        TradeMonitoredPosition.secret_id,
        TradeMonitoredPosition.token_id,
        TradeMonitoredPosition.outcome,
    ).where(
        TradeMonitoredPosition.secret_id.in_({s for s, _ in pairs}),
        TradeMonitoredPosition.token_id.in_({t for _, t in pairs}),
        TradeMonitoredPosition.outcome.is_not(None),
    )
    return {
        (row.secret_id, row.token_id): row.outcome
        for row in await session.execute(statement)
        if (row.secret_id, row.token_id) in pairs
    }


async def rules_by_id(
    session: AsyncSession, scope: Scope, rule_ids: Iterable[str]
) -> list[RuleRow]:
    ids = list(rule_ids)
    if not ids:
        return []
    statement = _scoped(sa.select(TradeRule), TradeRule.secret_id, scope).where(
        TradeRule.id.in_(ids)
    )
    return await describe_rules(session, list((await session.scalars(statement)).all()))


async def rule(session: AsyncSession, scope: Scope, rule_id: str) -> RuleRow:
    """One rule the viewer may see. Raises ``NotFound`` otherwise."""
    found = await rules_by_id(session, scope, [rule_id])
    if not found:
        raise NotFound("Rule not found")
    return found[0]


async def rule_events(session: AsyncSession, rule_id: str) -> list[TradeRuleEvent]:
    """Every event of a rule (already checked to be the viewer's), newest first."""
    statement = (
        sa.select(TradeRuleEvent)
        .where(TradeRuleEvent.rule_id == rule_id)
        .order_by(TradeRuleEvent.created_at.desc(), TradeRuleEvent.id.desc())
        .limit(500)
    )
    return list((await session.scalars(statement)).all())


async def token_ids_of(session: AsyncSession, secret_id: str) -> set[str]:
    """Every token the secret has (or had) a rule on: the prices its pages may receive."""
    statement = sa.select(TradeRule.token_id).where(TradeRule.secret_id == secret_id).distinct()
    return set(await session.scalars(statement))


def chart_tokens(groups: Sequence[SecretRules], since: datetime) -> list[str]:
    """Tokens worth a chart: those of live rules, then of rules changed since ``since``."""
    live: list[str] = []
    recent: list[str] = []
    for group in groups:
        for row in group.rows:
            rule = row.rule
            if rule.status in LIVE_STATUSES:
                live.append(rule.token_id)
            elif rule.updated_at >= since:
                recent.append(rule.token_id)
    return list(dict.fromkeys(live + recent))[:MAX_CHARTS]


async def token_rules(session: AsyncSession, scope: Scope, token_id: str) -> list[TradeRule]:
    """The viewer's rules on one token, newest first (at most ``MAX_RULES``)."""
    statement = (
        _scoped(sa.select(TradeRule), TradeRule.secret_id, scope)
        .where(TradeRule.token_id == token_id)
        .order_by(TradeRule.created_at.desc(), TradeRule.id.desc())
        .limit(MAX_RULES)
    )
    return list((await session.scalars(statement)).all())


async def chart_events(
    session: AsyncSession, rule_ids: Sequence[str]
) -> dict[str, list[TradeRuleEvent]]:
    """The events a chart draws from, per rule, oldest first."""
    if not rule_ids:
        return {}
    statement = (
        sa.select(TradeRuleEvent)
        .where(
            TradeRuleEvent.rule_id.in_(list(rule_ids)),
            TradeRuleEvent.event_type.in_(CHART_EVENTS),
        )
        .order_by(TradeRuleEvent.created_at, TradeRuleEvent.id)
    )
    found: dict[str, list[TradeRuleEvent]] = {rule_id: [] for rule_id in rule_ids}
    for event in await session.scalars(statement):
        found[event.rule_id].append(event)
    return found


async def audit_row_by_order(session: AsyncSession, scope: Scope, order_id: str) -> TransactionLog:
    """The audit log row of an order the viewer may see. Raises ``AuditRowNotFound``."""
    statement = _scoped(
        sa.select(TransactionLog).where(TransactionLog.order_id == order_id),
        TransactionLog.secret_id,
        scope,
    ).order_by(TransactionLog.created_at.desc())
    row: TransactionLog | None = (await session.scalars(statement)).first()
    if row is None:
        raise AuditRowNotFound()
    return row


async def audit_row(session: AsyncSession, scope: Scope, row_id: str) -> TransactionLog:
    statement = _scoped(
        sa.select(TransactionLog).where(TransactionLog.id == row_id),
        TransactionLog.secret_id,
        scope,
    )
    row: TransactionLog | None = (await session.scalars(statement)).one_or_none()
    if row is None:
        raise AuditRowNotFound()
    return row


async def pending_approvals(session: AsyncSession, now: datetime) -> list[ApprovalRow]:
    """PENDING approvals not yet expired, newest first, with the audit row's USD value."""
    statement = (
        sa.select(PendingApproval, Secret.name, TransactionLog.usd_value)
        .join(Secret, Secret.id == PendingApproval.secret_id)
        .join(TransactionLog, TransactionLog.id == PendingApproval.transaction_log_id)
        .where(
            PendingApproval.status == ApprovalStatus.PENDING,
            PendingApproval.expires_at > now,
        )
        .order_by(PendingApproval.created_at.desc(), PendingApproval.id.desc())
    )
    return [
        ApprovalRow(approval, name, None if usd is None else float(usd))
        for approval, name, usd in (await session.execute(statement)).all()
    ]


async def pending_approval_ids(session: AsyncSession, now: datetime) -> frozenset[str]:
    statement = sa.select(PendingApproval.id).where(
        PendingApproval.status == ApprovalStatus.PENDING, PendingApproval.expires_at > now
    )
    return frozenset(await session.scalars(statement))


async def policies_by_secret(session: AsyncSession) -> dict[str, list[Policy]]:
    """Every secret's policies (owner only), secrets by name."""
    names = await secret_names(session, None)
    found: dict[str, list[Policy]] = {secret_id: [] for secret_id in names}
    statement = sa.select(Policy).order_by(Policy.secret_id, Policy.policy_type)
    for policy in await session.scalars(statement):
        found.setdefault(policy.secret_id, []).append(policy)
    return found


@dataclass(frozen=True, slots=True)
class ChangedRule:
    event_id: str
    rule_id: str
    secret_id: str
    token_id: str


async def changed_rules_since(session: AsyncSession, id_floor: str) -> list[ChangedRule]:
    """Rule events whose id is at or above ``id_floor`` (ids start with their creation
    time, so this is a primary-key range scan), with their rule's secret and token."""
    statement = (
        sa.select(
            TradeRuleEvent.id, TradeRuleEvent.rule_id, TradeRule.secret_id, TradeRule.token_id
        )
        .join(TradeRule, TradeRule.id == TradeRuleEvent.rule_id)
        .where(TradeRuleEvent.id >= id_floor)
    )
    return [ChangedRule(*row) for row in (await session.execute(statement)).all()]
