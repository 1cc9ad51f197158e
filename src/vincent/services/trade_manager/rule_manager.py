"""Trade rules: the only writer of ``TradeRule.status``. Every tenant call is scoped by secret.

API-side calls take the caller's ``secret_id`` and treat another tenant's rule as missing.
Worker-side calls (``get_rules(None, ...)``, the ``mark_*`` transitions) act by rule id and
are single conditional UPDATEs whose row count says whether this caller won. Functions add
to the caller's session; the caller commits (API: before responding; worker: per step).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from vincent.db.base import new_id, utcnow
from vincent.db.driver_statement import driver_statement, equals_any, value_at_driver
from vincent.db.models import PendingApproval, TradeRule, TradeRuleEvent
from vincent.db.secret_locks import LockScope
from vincent.db.session import SessionFactory
from vincent.db.sqlite_driver import is_one_hop, write_after_claim
from vincent.enums import (
    ApprovalStatus,
    ExecutionMode,
    TradeRuleEventType,
    TradeRuleStatus,
    TradeRuleType,
    TriggerSource,
)
from vincent.errors import RuleLimitReached, RuleNotCancelable, RuleNotEditable, RuleNotFound
from vincent.services import approvals
from vincent.services.trade_manager.event_logger import (
    event_params,
    events_after,
    events_insert,
    log_event,
)
from vincent.services.trade_manager.types import (
    ActionType,
    RuleAction,
    RuleSnapshot,
    price_from_float,
)

CANCEL_ACTOR = "rule-cancel"
CANCELABLE = (TradeRuleStatus.ACTIVE, TradeRuleStatus.FAILED, TradeRuleStatus.PENDING_APPROVAL)
FAILABLE = (TradeRuleStatus.ACTIVE, TradeRuleStatus.TRIGGERED, TradeRuleStatus.PENDING_APPROVAL)


@dataclass(frozen=True, slots=True)
class NewRule:
    """A validated create request (the API validates; this only carries)."""

    rule_type: TradeRuleType
    market_id: str
    token_id: str
    trigger_price: Decimal
    action: RuleAction
    side: str = "BUY"
    trailing_percent: Decimal | None = None
    trigger_source: TriggerSource = TriggerSource.MIDPOINT
    expires_at: datetime | None = None
    # The creating process's EXECUTION_MODE: only a worker of this mode runs the rule.
    execution_mode: ExecutionMode = ExecutionMode.LIVE
    # Issue 15: trailing in price units, activation price, OCO group.
    trailing_amount: Decimal | None = None
    activation_price: Decimal | None = None
    oco_group_id: str | None = None


def parse_action(text: str) -> RuleAction:
    """Read the stored action JSON. Raises ``ValueError`` when it is not a valid action."""
    data = json.loads(text)
    kind = ActionType(data["type"])
    if kind is ActionType.SELL_PARTIAL:
        amount = Decimal(str(data["amount"]))
        if not amount > 0:
            raise ValueError(f"SELL_PARTIAL amount must be > 0, was {amount}")
        return RuleAction(kind, amount)
    return RuleAction(kind)


class RuleFields(Protocol):
    """What ``to_snapshot`` reads: a ``TradeRule``, or a row of ``SNAPSHOT_COLUMNS``."""

    @property
    def id(self) -> str: ...
    @property
    def secret_id(self) -> str: ...
    @property
    def rule_type(self) -> TradeRuleType: ...
    @property
    def market_id(self) -> str: ...
    @property
    def token_id(self) -> str: ...
    @property
    def trigger_price(self) -> float: ...
    @property
    def trailing_percent(self) -> float | None: ...
    @property
    def action(self) -> str: ...
    @property
    def status(self) -> TradeRuleStatus: ...
    @property
    def trigger_source(self) -> TriggerSource: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    @property
    def trailing_amount(self) -> float | None: ...
    @property
    def activation_price(self) -> float | None: ...
    @property
    def activated_at(self) -> datetime | None: ...
    @property
    def oco_group_id(self) -> str | None: ...
    @property
    def oco_paused_by(self) -> str | None: ...


def to_snapshot(rule: RuleFields) -> RuleSnapshot:
    """The engine's in-memory view of a rule row."""
    return RuleSnapshot(
        id=rule.id,
        secret_id=rule.secret_id,
        rule_type=rule.rule_type,
        market_id=rule.market_id,
        token_id=rule.token_id,
        trigger_price=price_from_float(rule.trigger_price),
        trailing_percent=(
            None if rule.trailing_percent is None else price_from_float(rule.trailing_percent)
        ),
        action=parse_action(rule.action),
        status=rule.status,
        trigger_source=rule.trigger_source,
        ts_next_attempt=rule.next_attempt_at,
        trailing_amount=_optional_price(rule.trailing_amount),
        activation_price=_optional_price(rule.activation_price),
        activated=rule.activated_at is not None,
        oco_group_id=rule.oco_group_id,
        oco_paused_by=rule.oco_paused_by,
    )


def _optional_price(value: float | None) -> Decimal | None:
    return None if value is None else price_from_float(value)


def _optional_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _scoped(secret_id: str) -> sa.Select[TradeRule]:
    return sa.select(TradeRule).where(TradeRule.secret_id == secret_id)


async def count_active_rules(session: AsyncSession, secret_id: str) -> int:
    statement = (
        sa.select(sa.func.count())
        .select_from(TradeRule)
        .where(TradeRule.secret_id == secret_id, TradeRule.status == TradeRuleStatus.ACTIVE)
    )
    return int((await session.execute(statement)).scalar_one())


def _insert_rule_statement() -> sa.Insert:
    """``INSERT INTO trade_rules SELECT <every column> WHERE <tenant's ACTIVE count> < max``.

    Built once with bind parameters (one per column, plus ``limit_secret_id`` and
    ``max_active_rules``), so a create compiles nothing.
    """
    table = TradeRule.__table__
    active = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(
            table.c.secret_id == sa.bindparam("limit_secret_id"),
            table.c.status == TradeRuleStatus.ACTIVE,
        )
        .scalar_subquery()
    )
    row = sa.select(*(sa.bindparam(c.key, type_=c.type) for c in table.c)).where(
        active < sa.bindparam("max_active_rules", type_=sa.Integer)
    )
    return sa.insert(TradeRule).from_select([c.key for c in table.c], row)


def _insert_rule_and_event_statement() -> sa.Insert:
    """PostgreSQL: ``_INSERT_RULE`` and its ``RULE_CREATED`` event in one statement.

    ``WITH new_rule AS (<_INSERT_RULE> RETURNING id) INSERT INTO trade_rule_events …
    SELECT … FROM new_rule``: the event is written exactly when the rule is, and the
    statement's row count (1 or 0) says whether the cap let the rule in. One round trip
    instead of two. The event's values are the bind parameters ``event_id``,
    ``event_type``, ``event_data`` and ``event_created_at``.
    """
    rules = cast(sa.Table, TradeRule.__table__)
    events = cast(sa.Table, TradeRuleEvent.__table__)
    new_rule = _insert_rule_statement().returning(rules.c.id).cte("new_rule")
    row = sa.select(
        sa.bindparam("event_id", type_=events.c.id.type),
        new_rule.c.id,
        sa.bindparam("event_type", type_=events.c.event_type.type),
        sa.bindparam("event_data", type_=events.c.event_data.type),
        sa.bindparam("event_created_at", type_=events.c.created_at.type),
    ).select_from(new_rule)
    columns = ["id", "rule_id", "event_type", "event_data", "created_at"]
    return sa.insert(events).from_select(columns, row).add_cte(new_rule)


def _rule_cap_lock_statement(*, notify: bool) -> sa.Select[Any]:
    """PostgreSQL: the secret's rule-cap lock (``lock_secret``), with ``notify`` also
    ``pg_notify(:channel, :rule_id)`` in the same statement: the notification is queued
    in the transaction, sent at its commit and dropped by a rollback, so where in the
    transaction it is queued does not matter. Bind parameters ``secret_id`` (and
    ``channel``, ``rule_id``)."""
    lock = sa.func.pg_advisory_xact_lock(
        int(LockScope.RULE_CAP), sa.func.hashtext(sa.bindparam("secret_id", type_=sa.String))
    )
    if not notify:
        return sa.select(lock)
    announce = sa.func.pg_notify(
        sa.bindparam("channel", type_=sa.String), sa.bindparam("rule_id", type_=sa.String)
    )
    return sa.select(lock, announce)


_INSERT_RULE = _insert_rule_statement()
_INSERT_EVENT = sa.insert(TradeRuleEvent)
_INSERT_RULE_AND_EVENT = _insert_rule_and_event_statement()
_RULE_CAP_LOCK = _rule_cap_lock_statement(notify=False)
_RULE_CAP_LOCK_AND_NOTIFY = _rule_cap_lock_statement(notify=True)


async def create_rule(
    session: AsyncSession,
    secret_id: str,
    new: NewRule,
    *,
    max_active_rules: int,
    market_slug: str | None = None,
    payload: Mapping[str, Any] | None = None,
    notify_channel: str | None = None,
) -> TradeRule:
    """Create an ACTIVE rule and log ``RULE_CREATED``. Raises ``RuleLimitReached``.

    In the caller's transaction: the secret's rule-cap lock (PostgreSQL; under READ
    COMMITTED two concurrent ``INSERT … SELECT`` would both count the same rules and both
    insert), an ``INSERT … SELECT … WHERE`` that writes the rule only while the tenant
    holds fewer than ``max_active_rules`` ACTIVE rules, and the event's INSERT. The lock
    is held until the caller commits. The returned rule is built here, not read back:
    every column is set.

    On PostgreSQL the lock and the notification (``notify_channel``: ``pg_notify`` of the
    rule's id, sent at commit) are one statement, and the rule and its event another
    (``_INSERT_RULE_AND_EVENT``).
    """
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(),
        "secret_id": secret_id,
        "rule_type": new.rule_type,
        "market_id": new.market_id,
        "market_slug": market_slug,
        "token_id": new.token_id,
        "side": new.side,
        "trigger_price": float(new.trigger_price),
        "trailing_percent": None if new.trailing_percent is None else float(new.trailing_percent),
        "action": json.dumps(new.action.to_json(), separators=(",", ":")),
        "status": TradeRuleStatus.ACTIVE,
        "triggered_at": None,
        "trigger_tx_hash": None,
        "error_message": None,
        "created_at": now,
        "updated_at": now,
        "trigger_source": new.trigger_source,
        "expires_at": new.expires_at,
        "attempt_count": 0,
        "next_attempt_at": None,
        "pending_approval_id": None,
        "execution_mode": new.execution_mode,
        # Issue 15 columns.
        "trailing_amount": _optional_float(new.trailing_amount),
        "activation_price": _optional_float(new.activation_price),
        "activated_at": None,
        "oco_group_id": new.oco_group_id,
        "oco_paused_by": None,
    }
    limits = {"limit_secret_id": secret_id, "max_active_rules": max_active_rules}
    event_data = {"payload": dict(payload or {})}
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # Four round trips: BEGIN, the lock (+ notify), the rule and its event, COMMIT.
        lock = {"secret_id": secret_id}
        if notify_channel is None:
            await connection.execute(_RULE_CAP_LOCK, lock)
        else:
            lock.update(channel=notify_channel, rule_id=values["id"])
            await connection.execute(_RULE_CAP_LOCK_AND_NOTIFY, lock)
        event = {
            "event_id": new_id(),
            "event_type": TradeRuleEventType.RULE_CREATED,
            "event_data": event_data,
            "event_created_at": now,
        }
        inserted = await connection.execute(_INSERT_RULE_AND_EVENT, {**values, **limits, **event})
        if _rowcount(inserted) != 1:
            raise RuleLimitReached(max_active_rules)
        return TradeRule(**values)
    # SQLite: its write lock, taken by the INSERT before it reads, is the rule-cap lock;
    # there is no one to notify (one process runs the API and the worker).
    inserted = await connection.execute(_INSERT_RULE, {**values, **limits})
    if _rowcount(inserted) != 1:
        raise RuleLimitReached(max_active_rules)
    event = {
        "id": new_id(),
        "rule_id": values["id"],
        "event_type": TradeRuleEventType.RULE_CREATED,
        "event_data": event_data,
        "created_at": now,
    }
    await connection.execute(_INSERT_EVENT, event)
    return TradeRule(**values)


async def create_bracket(
    session: AsyncSession,
    secret_id: str,
    stop: NewRule,
    take: NewRule,
    *,
    max_active_rules: int,
    market_slug: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> tuple[str, list[TradeRule]]:
    """Create a stop and a take-profit in one new OCO group; return (group id, [stop, take]).

    Both in the caller's transaction: each counts toward ``max_active_rules`` (the second
    insert sees the first), so ``RuleLimitReached`` leaves nothing once rolled back.
    """
    group_id = new_id()
    rules = [
        await create_rule(
            session,
            secret_id,
            replace(new, oco_group_id=group_id),
            max_active_rules=max_active_rules,
            market_slug=market_slug,
            payload=payload,
        )
        for new in (stop, take)
    ]
    return group_id, rules


async def get_rules_by_ids(session: AsyncSession, rule_ids: Sequence[str]) -> list[TradeRule]:
    """Worker and API side: rules by id (any tenant: callers pass ids they already own)."""
    if not rule_ids:
        return []
    statement = sa.select(TradeRule).where(TradeRule.id.in_(rule_ids))
    return list((await session.scalars(statement)).all())


async def get_rules(
    session: AsyncSession,
    secret_id: str | None,
    status: TradeRuleStatus | None = None,
    *,
    execution_mode: ExecutionMode | None = None,
) -> list[TradeRule]:
    """A tenant's rules (or, with ``secret_id=None``, every tenant's: worker only), newest
    first; with ``execution_mode``, only the rules made in that mode."""
    statement = sa.select(TradeRule) if secret_id is None else _scoped(secret_id)
    if status is not None:
        statement = statement.where(TradeRule.status == status)
    if execution_mode is not None:
        statement = statement.where(TradeRule.execution_mode == execution_mode)
    statement = statement.order_by(TradeRule.created_at.desc(), TradeRule.id.desc())
    return list((await session.scalars(statement)).all())


# --------------------------------------------------------------------------- the index sync's reads

# The columns ``to_snapshot`` reads, selected as plain rows: the poll tick's sync builds no
# ORM objects (at 100k rules those were most of its CPU).
SNAPSHOT_COLUMNS = tuple(
    TradeRule.__table__.c[name]
    for name in (
        "id",
        "secret_id",
        "rule_type",
        "market_id",
        "token_id",
        "trigger_price",
        "trailing_percent",
        "action",
        "status",
        "trigger_source",
        "next_attempt_at",
        "trailing_amount",
        "activation_price",
        "activated_at",
        "oco_group_id",
        "oco_paused_by",
        "updated_at",  # not in the snapshot: tells the delta sync a row it already applied
    )
)


def active_rules_query(execution_mode: ExecutionMode) -> sa.Select[Any]:
    """Every ACTIVE rule of ``execution_mode`` (the full sync)."""
    return sa.select(*SNAPSHOT_COLUMNS).where(
        TradeRule.status == TradeRuleStatus.ACTIVE, TradeRule.execution_mode == execution_mode
    )


def changed_rules_query(since: datetime, execution_mode: ExecutionMode) -> sa.Select[Any]:
    """Rules of ``execution_mode``, in any status, whose ``updated_at`` is after ``since``
    (the delta sync; ``ix_trade_rules_updated_at``). Every writer of ``trade_rules`` sets
    ``updated_at`` (explicitly, or the column's ``onupdate``)."""
    return sa.select(*SNAPSHOT_COLUMNS).where(
        TradeRule.updated_at > since, TradeRule.execution_mode == execution_mode
    )


def rules_by_id_query(rule_ids: Sequence[str], execution_mode: ExecutionMode) -> sa.Select[Any]:
    """Rules of ``execution_mode`` by id, in any status."""
    return sa.select(*SNAPSHOT_COLUMNS).where(
        TradeRule.id.in_(rule_ids), TradeRule.execution_mode == execution_mode
    )


async def database_now(session: AsyncSession) -> datetime | None:
    """The database server's clock (PostgreSQL); None on SQLite, whose clock is this
    machine's (every writer of a SQLite file runs here)."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return None
    now = (await session.execute(sa.select(sa.func.now()))).scalar_one()
    assert isinstance(now, datetime)
    return now


# Statuses in which a worker still acts on a rule (watches it, sells, or settles a sale).
LIVE_STATUSES = (
    TradeRuleStatus.ACTIVE,
    TradeRuleStatus.TRIGGERED,
    TradeRuleStatus.PENDING_APPROVAL,
)


async def count_other_mode_rules(
    session: AsyncSession, secret_id: str | None, execution_mode: ExecutionMode
) -> int:
    """Rules (a tenant's, or with None everyone's) a worker of ``execution_mode`` leaves
    alone: made in the other mode and not finished."""
    statement = (
        sa.select(sa.func.count())
        .select_from(TradeRule)
        .where(
            TradeRule.execution_mode != execution_mode,
            TradeRule.status.in_(LIVE_STATUSES),
        )
    )
    if secret_id is not None:
        statement = statement.where(TradeRule.secret_id == secret_id)
    return int((await session.execute(statement)).scalar_one())


# ------------------------------------------------------------------- the API's reads, as plain rows

# Every column of ``trade_rules``, selected as plain rows: the API renders them as they come
# (``render_rule_row``), without building ORM objects. Built once with bind parameters, so
# a read compiles nothing; each starts from the tenant's ``secret_id`` (``_TENANT``).
_RULES = cast(sa.Table, TradeRule.__table__)
# The order of a read row's values: the table's columns (``render_rule_row`` unpacks it).
RULE_ROW_COLUMNS = tuple(c.key for c in _RULES.c)
_NEWEST_FIRST = (_RULES.c.created_at.desc(), _RULES.c.id.desc())
_TENANT = _RULES.c.secret_id == sa.bindparam("secret_id")
_RULE_ROW = sa.select(*_RULES.c).where(_TENANT, _RULES.c.id == sa.bindparam("rule_id"))
_RULE_ROWS = sa.select(*_RULES.c).where(_TENANT).order_by(*_NEWEST_FIRST)
_RULE_ROWS_BY_STATUS = (
    sa.select(*_RULES.c)
    .where(_TENANT, _RULES.c.status == sa.bindparam("status", type_=_RULES.c.status.type))
    .order_by(*_NEWEST_FIRST)
)


async def read_rule(session: AsyncSession, secret_id: str, rule_id: str) -> sa.Row[Any]:
    """The tenant's rule as a row. Raises ``RuleNotFound`` when missing or another
    tenant's. Reads in the session's connection (no ORM identity map)."""
    connection = await session.connection()
    result = await connection.execute(_RULE_ROW, {"secret_id": secret_id, "rule_id": rule_id})
    row = result.one_or_none()
    if row is None:
        raise RuleNotFound()
    return row


async def read_rules(
    session: AsyncSession, secret_id: str, status: TradeRuleStatus | None = None
) -> Sequence[sa.Row[Any]]:
    """``get_rules`` for one tenant, as rows: newest first, optionally of one status."""
    connection = await session.connection()
    if status is None:
        result = await connection.execute(_RULE_ROWS, {"secret_id": secret_id})
    else:
        params = {"secret_id": secret_id, "status": status}
        result = await connection.execute(_RULE_ROWS_BY_STATUS, params)
    return result.all()


async def get_rule(session: AsyncSession, secret_id: str, rule_id: str) -> TradeRule:
    """The tenant's rule. Raises ``RuleNotFound`` when missing or another tenant's."""
    rule = (await session.scalars(_scoped(secret_id).where(TradeRule.id == rule_id))).one_or_none()
    if rule is None:
        raise RuleNotFound()
    return rule


async def get_rule_by_id(session: AsyncSession, rule_id: str) -> TradeRule | None:
    """Worker side: any tenant's rule by id."""
    return await session.get(TradeRule, rule_id, populate_existing=True)


async def update_rule(
    session: AsyncSession, secret_id: str, rule_id: str, trigger_price: Decimal
) -> TradeRule:
    """Move an ACTIVE rule's trigger. Raises ``RuleNotFound``, ``RuleNotEditable``.

    One ``UPDATE … RETURNING`` scoped by tenant and status; only a refusal reads the rule
    again, to tell a missing rule (404) from one that is no longer ACTIVE (400).
    """
    rule = await _update_returning(
        session,
        secret_id,
        rule_id,
        (TradeRuleStatus.ACTIVE,),
        trigger_price=float(trigger_price),
        updated_at=utcnow(),
    )
    if rule is None:
        await get_rule(session, secret_id, rule_id)
        raise RuleNotEditable()
    return rule


async def cancel_rule(session: AsyncSession, secret_id: str, rule_id: str) -> TradeRule:
    """Cancel an ACTIVE, FAILED or PENDING_APPROVAL rule and log ``RULE_CANCELED``.

    A rule paused on PENDING_APPROVAL has its pending approval denied in the same
    transaction (first, so an approve racing with it waits and then finds it DENIED). A
    rule whose sale the owner already approved is being sold: ``RuleNotCancelable``.
    """
    now = utcnow()
    await approvals.deny_rule_approval(
        session, secret_id, rule_id, decided_by=CANCEL_ACTOR, now=now
    )
    approved = sa.exists().where(
        PendingApproval.id == TradeRule.pending_approval_id,
        PendingApproval.status == ApprovalStatus.APPROVED,
    )
    rule = await _update_returning(
        session,
        secret_id,
        rule_id,
        CANCELABLE,
        sa.or_(TradeRule.status != TradeRuleStatus.PENDING_APPROVAL, sa.not_(approved)),
        status=TradeRuleStatus.CANCELED,
        updated_at=now,
    )
    if rule is None:
        current = await get_rule(session, secret_id, rule_id)
        if current.status is TradeRuleStatus.PENDING_APPROVAL:
            raise RuleNotCancelable(
                "The rule's sale was already approved by the owner and is being executed"
            )
        raise RuleNotCancelable()
    log_event(session, rule.id, TradeRuleEventType.RULE_CANCELED, {})
    return rule


async def _update_returning(
    session: AsyncSession,
    secret_id: str,
    rule_id: str,
    from_statuses: tuple[TradeRuleStatus, ...],
    *conditions: sa.ColumnElement[bool],
    **values: Any,
) -> TradeRule | None:
    """The tenant's rule after the change, or None when no row matched."""
    statement = (
        sa.update(TradeRule)
        .where(
            TradeRule.id == rule_id,
            TradeRule.secret_id == secret_id,
            TradeRule.status.in_(from_statuses),
            *conditions,
        )
        .values(**values)
        .returning(TradeRule)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


# --------------------------------------------------------------------------- worker transitions


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


async def _transition(
    session: AsyncSession,
    rule_id: str,
    from_statuses: tuple[TradeRuleStatus, ...],
    **values: Any,
) -> bool:
    values.setdefault("updated_at", utcnow())
    result = await session.execute(
        sa.update(TradeRule)
        .where(TradeRule.id == rule_id, TradeRule.status.in_(from_statuses))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def mark_rule_triggered(
    session: AsyncSession,
    rule_id: str,
    now: datetime | None = None,
    *,
    fence: sa.ColumnElement[bool] | None = None,
    params: Mapping[str, object] | None = None,
) -> bool:
    """Claim an ACTIVE rule for execution (ACTIVE → TRIGGERED). True only for the one winner.

    ``fence``: a further condition of the same UPDATE (the leadership epoch, ``leads_under``;
    the skill's guard), with ``params`` for its bound parameters.
    """
    now = now or utcnow()
    result = await session.execute(
        sa.update(TradeRule)
        .where(
            TradeRule.id == rule_id,
            TradeRule.status == TradeRuleStatus.ACTIVE,
            sa.true() if fence is None else fence,
        )
        .values(status=TradeRuleStatus.TRIGGERED, triggered_at=now, updated_at=now)
        .execution_options(synchronize_session=False),
        params or {},
    )
    return _rowcount(result) == 1


_TRIGGERED_UPDATES: dict[tuple[sa.ColumnElement[bool], ...], sa.Update] = {}
_TRIGGERED_CTES: dict[tuple[sa.ColumnElement[bool], ...], sa.CTE] = {}


def triggered_update(*conditions: sa.ColumnElement[bool]) -> sa.Update:
    """``mark_rule_triggered`` as a statement built once: the UPDATE ACTIVE → TRIGGERED of
    one rule, which changes one row when this caller won and none otherwise (SQLite's
    claim, ``ClaimSteps``; ``triggered_cte`` is PostgreSQL's).

    Bound parameters: ``claim_rule_id``, ``claim_now`` and those of ``conditions`` (further
    conditions of the UPDATE, each built once: the leadership fence, the skill's guard).
    Built once per combination of conditions, so executing it compiles nothing.
    """
    built = _TRIGGERED_UPDATES.get(conditions)
    if built is None:
        rules = cast(sa.Table, TradeRule.__table__)
        now = sa.bindparam("claim_now", type_=rules.c.updated_at.type)
        built = (
            sa.update(rules)
            .where(
                rules.c.id == sa.bindparam("claim_rule_id"),
                rules.c.status == TradeRuleStatus.ACTIVE,
                *conditions,
            )
            .values(status=TradeRuleStatus.TRIGGERED, triggered_at=now, updated_at=now)
        )
        _TRIGGERED_UPDATES[conditions] = built
    return built


def triggered_cte(*conditions: sa.ColumnElement[bool]) -> sa.CTE:
    """``triggered_update`` as the first part of one larger statement (PostgreSQL's
    data-modifying ``WITH``): RETURNING the rule's id, one row when this caller won, none
    otherwise; whatever selects from it is written only for the winner. Bound parameters
    and building as ``triggered_update``'s.
    """
    built = _TRIGGERED_CTES.get(conditions)
    if built is None:
        rules = cast(sa.Table, TradeRule.__table__)
        built = triggered_update(*conditions).returning(rules.c.id).cte("claimed")
        _TRIGGERED_CTES[conditions] = built
    return built


class Executed(NamedTuple):
    """``mark_rule_executed`` moved the rule; ``in_oco_group``: it has siblings to cancel."""

    in_oco_group: bool


async def mark_rule_executed(
    session: AsyncSession, rule_id: str, order_id: str | None
) -> Executed | None:
    """Record the sell's order id on a TRIGGERED (or approved PENDING_APPROVAL) rule that has
    none yet (an execution is recorded once); None when it did not move."""
    result = await session.execute(
        sa.update(TradeRule)
        .where(
            TradeRule.id == rule_id,
            TradeRule.status.in_((TradeRuleStatus.TRIGGERED, TradeRuleStatus.PENDING_APPROVAL)),
            TradeRule.trigger_tx_hash.is_(None),
        )
        .values(
            status=TradeRuleStatus.TRIGGERED,
            trigger_tx_hash=order_id,
            pending_approval_id=None,
            error_message=None,
            updated_at=utcnow(),
        )
        .returning(TradeRule.oco_group_id)
        .execution_options(synchronize_session=False)
    )
    moved = result.one_or_none()
    return None if moved is None else Executed(in_oco_group=moved.oco_group_id is not None)


def _executed_alone_update() -> sa.Update:
    """``mark_rule_executed``'s UPDATE for a rule in no OCO group, with bound parameters
    (``executed_rule_id``, ``executed_order_id``, ``executed_now``). Built once."""
    rules = cast(sa.Table, TradeRule.__table__)
    return (
        sa.update(rules)
        .where(
            rules.c.id == sa.bindparam("executed_rule_id"),
            equals_any(
                rules.c.status, (TradeRuleStatus.TRIGGERED, TradeRuleStatus.PENDING_APPROVAL)
            ),
            rules.c.trigger_tx_hash.is_(None),
            rules.c.oco_group_id.is_(None),
        )
        .values(
            status=TradeRuleStatus.TRIGGERED,
            trigger_tx_hash=sa.bindparam("executed_order_id", type_=rules.c.trigger_tx_hash.type),
            pending_approval_id=None,
            error_message=None,
            updated_at=sa.bindparam("executed_now", type_=rules.c.updated_at.type),
        )
    )


_EXECUTED_ALONE_UPDATE = _executed_alone_update()
# PostgreSQL: the same UPDATE as the first part of one statement (``events_after``).
_EXECUTED_ALONE = _EXECUTED_ALONE_UPDATE.returning(TradeRule.__table__.c.id).cte("executed")
_EXECUTED_ALONE_STATEMENTS: dict[int, sa.Select[Any]] = {}


async def mark_rule_executed_alone(
    sessions: SessionFactory,
    rule_id: str,
    order_id: str | None,
    events: Sequence[tuple[TradeRuleEventType, Mapping[str, Any]]],
) -> bool:
    """``mark_rule_executed`` and the rule's ``events``, all or nothing, for a rule in no
    OCO group, with no session. On PostgreSQL one statement (a data-modifying ``WITH``:
    one round trip, atomic by itself) by itself at the driver (``value_at_driver``:
    asyncpg on a pooled connection, autocommitted). On a SQLite file the UPDATE and, only
    if it moved the rule, the events' INSERT in one transaction run as one call on
    aiosqlite's thread (``sqlite_driver.write_after_claim``). False when it did not move:
    recorded already, or in a group (whose siblings must be canceled in the same
    transaction: ``mark_rule_executed``), or on SQLite in memory (not tried)."""
    now = utcnow()
    params: dict[str, object] = {
        "executed_rule_id": rule_id,
        "executed_order_id": order_id,
        "executed_now": now,
        "event_rule_id": rule_id,
        **event_params(events, now),
    }
    engine = sessions.kw.get("bind")
    if isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql":
        statement = _EXECUTED_ALONE_STATEMENTS.get(len(events))
        if statement is None:
            built = sa.select(sa.func.count()).select_from(_EXECUTED_ALONE)
            statement = built.add_cte(events_after(_EXECUTED_ALONE, len(events)))
            _EXECUTED_ALONE_STATEMENTS[len(events)] = statement
        return bool(await value_at_driver(sessions, statement, params))
    if isinstance(engine, AsyncEngine) and is_one_hop(engine):
        # Each statement built once and kept: compiled once.
        update = driver_statement(_EXECUTED_ALONE_UPDATE, engine.dialect)
        insert = driver_statement(events_insert(len(events)), engine.dialect)
        return await write_after_claim(
            engine,
            (update.sql, update.parameters(params)),
            [(insert.sql, insert.parameters(params))],
        )
    return False


async def mark_rule_failed(
    session: AsyncSession, rule_id: str, error_message: str, now: datetime | None = None
) -> bool:
    """ACTIVE|TRIGGERED|PENDING_APPROVAL → FAILED; logs ``RULE_FAILED`` only if it moved."""
    now = now or utcnow()
    moved = await _transition(
        session,
        rule_id,
        FAILABLE,
        status=TradeRuleStatus.FAILED,
        error_message=error_message,
        triggered_at=now,
        updated_at=now,
    )
    if moved:
        log_event(session, rule_id, TradeRuleEventType.RULE_FAILED, {"errorMessage": error_message})
    return moved


async def mark_rule_pending_approval(
    session: AsyncSession, rule_id: str, pending_approval_id: str | None
) -> bool:
    """TRIGGERED → PENDING_APPROVAL: the sell waits for the owner's decision."""
    return await _transition(
        session,
        rule_id,
        (TradeRuleStatus.TRIGGERED,),
        status=TradeRuleStatus.PENDING_APPROVAL,
        pending_approval_id=pending_approval_id,
    )


async def revert_rule_to_active(
    session: AsyncSession, rule_id: str, next_attempt_at: datetime | None
) -> bool:
    """TRIGGERED → ACTIVE after a transient error; not retried before ``next_attempt_at``."""
    return await _transition(
        session,
        rule_id,
        (TradeRuleStatus.TRIGGERED,),
        status=TradeRuleStatus.ACTIVE,
        triggered_at=None,
        trigger_tx_hash=None,
        next_attempt_at=next_attempt_at,
        attempt_count=TradeRule.attempt_count + 1,
    )


async def update_trailing_trigger(
    session: AsyncSession,
    rule_id: str,
    new_trigger: Decimal,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Raise an ACTIVE trailing stop's trigger; never lowers it. Logs RULE_TRAILING_UPDATED."""
    result = await session.execute(
        sa.update(TradeRule)
        .where(
            TradeRule.id == rule_id,
            TradeRule.status == TradeRuleStatus.ACTIVE,
            TradeRule.rule_type == TradeRuleType.TRAILING_STOP,
            TradeRule.trigger_price < float(new_trigger),
        )
        .values(trigger_price=float(new_trigger), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    moved = _rowcount(result) == 1
    if moved:
        data = {"triggerPrice": float(new_trigger), **dict(context or {})}
        log_event(session, rule_id, TradeRuleEventType.RULE_TRAILING_UPDATED, data)
    return moved


async def expire_rules(session: AsyncSession, now: datetime) -> list[str]:
    """Worker side: ACTIVE rules whose ``expires_at`` has passed → EXPIRED; return their ids."""
    result = await session.execute(
        sa.update(TradeRule)
        .where(
            TradeRule.status == TradeRuleStatus.ACTIVE,
            TradeRule.expires_at.is_not(None),
            TradeRule.expires_at <= now,
        )
        .values(status=TradeRuleStatus.EXPIRED, updated_at=now)
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())
