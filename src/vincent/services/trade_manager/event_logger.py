"""The trade-rule event log: writes ``TradeRuleEvent`` rows and reads them back per tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import new_ids
from vincent.db.driver_statement import driver_statement
from vincent.db.models import TradeRule, TradeRuleEvent
from vincent.enums import TradeRuleEventType

MAX_EVENTS_LIMIT = 500
DEFAULT_EVENTS_LIMIT = 100

_EVENTS = cast(sa.Table, TradeRuleEvent.__table__)

# One event to write in bulk: rule id, type, data.
EventRow = tuple[str, TradeRuleEventType, Mapping[str, Any]]
# The same with its data already as JSON text (``json.dumps``'s, as the column writes it).
SerialisedEvent = tuple[str, TradeRuleEventType, str]


def log_event(
    session: AsyncSession,
    rule_id: str,
    event_type: TradeRuleEventType,
    event_data: Mapping[str, Any] | None = None,
) -> TradeRuleEvent:
    """Add an event to the session; it is written with the caller's transaction."""
    event = TradeRuleEvent(
        rule_id=rule_id, event_type=event_type, event_data=dict(event_data or {})
    )
    session.add(event)
    return event


async def log_events(session: AsyncSession, events: Iterable[EventRow], now: datetime) -> int:
    """Insert many events with one executemany in the caller's transaction; return the count.

    Every row gets ``created_at = now``, so the ids alone order them: they ascend in the
    order the events were given.
    """
    given = list(events)
    # Sorted because a fresh id only mostly ascends (its counter wraps, clocks step back);
    # fresh ids are already in order but for such a step, so this is a linear pass.
    ids = sorted(new_ids(len(given)))
    rows = [
        {
            "id": event_id,
            "rule_id": rule_id,
            "event_type": event_type,
            # A dict as given is written as it is (the JSON type copies nothing either).
            "event_data": event_data if type(event_data) is dict else dict(event_data),
            "created_at": now,
        }
        for event_id, (rule_id, event_type, event_data) in zip(ids, given, strict=True)
    ]
    if rows:
        # Core, not the ORM: no identity map or unit of work for rows nobody reads back.
        await session.execute(sa.insert(_EVENTS), rows)
    return len(rows)


# The events' INSERT at the driver (``insert_serialised_events``), parameters in this order.
_SERIALISED_COLUMNS = ("id", "rule_id", "event_type", "event_data", "created_at")
_INSERT_SERIALISED = sa.insert(_EVENTS).values(
    {name: sa.bindparam(name, type_=_EVENTS.c[name].type) for name in _SERIALISED_COLUMNS}
)


def insert_serialised_events(
    connection: sa.Connection, events: Sequence[SerialisedEvent], now: datetime
) -> int:
    """``log_events`` for data already serialised: the same rows, with one executemany at
    the driver in the caller's transaction; return the count. Synchronous: for a function
    run on SQLAlchemy's greenlet (``AsyncConnection.run_sync``).

    ``now`` and each event type go through their columns' bind processing once for the
    batch, not once per row; the JSON text is written as given (on SQLite the stored text,
    on PostgreSQL the JSONB parsed from it), so it must be what ``json.dumps`` makes of the
    data: the column's own serialiser on engines built by ``create_engine``.
    """
    if not events:
        return 0
    sql, rows = serialised_event_rows(connection.dialect, events, now)
    connection.exec_driver_sql(sql, rows)
    return len(rows)


def serialised_event_rows(
    dialect: sa.Dialect, events: Sequence[SerialisedEvent], now: datetime
) -> tuple[str, list[tuple[Any, ...]]]:
    """``insert_serialised_events``' INSERT for ``dialect`` and its rows (each as the driver
    takes it: id, rule id, event type, data, created at), for a caller that runs them at the
    driver itself. The ids ascend in the order of ``events``, as ``log_events``' do."""
    statement = driver_statement(_INSERT_SERIALISED, dialect)
    if statement.names != _SERIALISED_COLUMNS or {"id", "rule_id"} & set(statement.processors):
        raise RuntimeError(f"unexpected INSERT parameters: {statement.names}")
    created_at = statement.processed("created_at", now)
    types: dict[TradeRuleEventType, Any] = {}
    for _, event_type, _ in events:
        if event_type not in types:
            types[event_type] = statement.processed("event_type", event_type)
    ids = sorted(new_ids(len(events)))  # see ``log_events``
    rows = [
        (event_id, rule_id, types[event_type], data, created_at)
        for event_id, (rule_id, event_type, data) in zip(ids, events, strict=True)
    ]
    return statement.sql, rows


_EVENTS_AFTER: dict[tuple[sa.CTE, int], sa.CTE] = {}


def events_after(moved: sa.CTE, count: int) -> sa.CTE:
    """An INSERT of ``count`` events of the rule ``moved`` returns (an UPDATE … RETURNING
    its id; none when it returns none), as a part of the same statement (PostgreSQL's
    data-modifying ``WITH``): the events are written exactly when the rule moved.

    Bound parameters: ``event_id_<i>``, ``event_type_<i>`` and ``event_data_<i>`` for
    i in 0…count-1, and ``events_now`` (every row's ``created_at``); ``event_params``
    fills them. Built once per statement and count.
    """
    built = _EVENTS_AFTER.get((moved, count))
    if built is None:
        columns = _EVENTS.c
        rows = [
            sa.select(
                sa.bindparam(f"event_id_{i}", type_=columns.id.type),
                moved.c.id,
                sa.bindparam(f"event_type_{i}", type_=columns.event_type.type),
                sa.bindparam(f"event_data_{i}", type_=columns.event_data.type),
                sa.bindparam("events_now", type_=columns.created_at.type),
            ).select_from(moved)
            for i in range(count)
        ]
        built = (
            sa.insert(_EVENTS)
            .from_select(
                ["id", "rule_id", "event_type", "event_data", "created_at"],
                sa.union_all(*rows) if count > 1 else rows[0],
            )
            .cte(f"{moved.name}_events")
        )
        _EVENTS_AFTER[(moved, count)] = built
    return built


_EVENTS_OF: dict[int, sa.Insert] = {}


def events_insert(count: int) -> sa.Insert:
    """``events_after`` as a statement of its own (SQLite's claim, ``ClaimSteps``, runs it
    only once the rule moved): one INSERT of ``count`` events of the rule
    ``event_rule_id``, with ``events_after``'s other parameters (``event_params``). Built
    once per count."""
    built = _EVENTS_OF.get(count)
    if built is None:
        columns = _EVENTS.c
        rule_id = sa.bindparam("event_rule_id", type_=columns.rule_id.type)
        now = sa.bindparam("events_now", type_=columns.created_at.type)
        rows = [
            {
                "id": sa.bindparam(f"event_id_{i}", type_=columns.id.type),
                "rule_id": rule_id,
                "event_type": sa.bindparam(f"event_type_{i}", type_=columns.event_type.type),
                "event_data": sa.bindparam(f"event_data_{i}", type_=columns.event_data.type),
                "created_at": now,
            }
            for i in range(count)
        ]
        built = sa.insert(_EVENTS).values(rows)
        _EVENTS_OF[count] = built
    return built


_UNLESS_LAST: dict[tuple[TradeRuleEventType, str], sa.Insert] = {}


def event_unless_last(event_type: TradeRuleEventType, key: str) -> sa.Insert:
    """An INSERT of one ``event_type`` event for a rule, written only if the rule exists
    and its last event (newest ``created_at``, then ``id``) is not already an
    ``event_type`` whose data holds the same ``key`` value: one statement (both
    databases), so "once per value" costs no read before the write. Its row count says
    whether it wrote. Built once per type and key.

    Bound parameters: ``event_id``, ``event_rule_id``, ``event_data``, ``event_now`` and
    ``event_key_value`` (the value of ``key`` in ``event_data``; None matches a last event
    without it, or with a JSON null, as ``dict.get`` would).
    """
    built = _UNLESS_LAST.get((event_type, key))
    if built is None:
        columns = _EVENTS.c
        rules = cast(sa.Table, TradeRule.__table__)
        rule_id = sa.bindparam("event_rule_id", type_=rules.c.id.type)
        last = (
            sa.select(columns.event_type, columns.event_data)
            .where(columns.rule_id == rule_id)
            .order_by(columns.created_at.desc(), columns.id.desc())
            .limit(1)
            .subquery("last_event")
        )
        same = sa.exists().where(
            last.c.event_type == event_type,
            last.c.event_data[key]
            .as_string()
            .is_not_distinct_from(sa.bindparam("event_key_value", type_=sa.String)),
        )
        row = sa.select(
            sa.bindparam("event_id", type_=columns.id.type),
            rules.c.id,
            sa.literal(event_type, type_=columns.event_type.type),
            sa.bindparam("event_data", type_=columns.event_data.type),
            sa.bindparam("event_now", type_=columns.created_at.type),
        ).where(rules.c.id == rule_id, ~same)
        built = sa.insert(_EVENTS).from_select(
            ["id", "rule_id", "event_type", "event_data", "created_at"], row
        )
        _UNLESS_LAST[(event_type, key)] = built
    return built


def event_params(
    events: Sequence[tuple[TradeRuleEventType, Mapping[str, Any]]], now: datetime
) -> dict[str, object]:
    """``events_after``'s parameters for ``events`` (ids ascending in their order)."""
    ids = sorted(new_ids(len(events)))  # see ``log_events``
    params: dict[str, object] = {"events_now": now}
    for i, (event_id, (event_type, data)) in enumerate(zip(ids, events, strict=True)):
        params[f"event_id_{i}"] = event_id
        params[f"event_type_{i}"] = event_type
        params[f"event_data_{i}"] = dict(data)
    return params


def _events_query(*, one_rule: bool) -> sa.Select[Any]:
    """A tenant's events (of one rule with ``one_rule``), newest first, as plain rows.

    Built once with bind parameters (``secret_id``, ``rule_id``, ``limit``, ``offset``),
    so a read compiles nothing and builds no ORM objects.
    """
    rules = cast(sa.Table, TradeRule.__table__)
    statement = (
        sa.select(*_EVENTS.c)
        .join(rules, rules.c.id == _EVENTS.c.rule_id)
        .where(rules.c.secret_id == sa.bindparam("secret_id"))
        .order_by(_EVENTS.c.created_at.desc(), _EVENTS.c.id.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .offset(sa.bindparam("offset", type_=sa.Integer))
    )
    if one_rule:
        statement = statement.where(_EVENTS.c.rule_id == sa.bindparam("rule_id"))
    return statement


_TENANT_EVENTS = _events_query(one_rule=False)
_RULE_EVENTS = _events_query(one_rule=True)


async def get_events(
    session: AsyncSession,
    secret_id: str,
    rule_id: str | None = None,
    limit: int = DEFAULT_EVENTS_LIMIT,
    offset: int = 0,
) -> Sequence[sa.Row[Any]]:
    """The caller's events, newest first, as rows with ``TradeRuleEvent``'s attribute
    names. ``rule_id`` must already be known to be theirs."""
    params: dict[str, Any] = {
        "secret_id": secret_id,
        "limit": max(1, min(limit, MAX_EVENTS_LIMIT)),
        "offset": max(0, offset),
    }
    statement = _TENANT_EVENTS
    if rule_id is not None:
        statement = _RULE_EVENTS
        params["rule_id"] = rule_id
    connection = await session.connection()
    rows: Sequence[sa.Row[Any]] = (await connection.execute(statement, params)).all()
    return rows


async def get_rule_events(session: AsyncSession, rule_id: str) -> list[TradeRuleEvent]:
    """Every event of one rule, oldest first (worker side: reconciliation, tests)."""
    statement = (
        sa.select(TradeRuleEvent)
        .where(TradeRuleEvent.rule_id == rule_id)
        .order_by(TradeRuleEvent.created_at, TradeRuleEvent.id)
    )
    return list((await session.scalars(statement)).all())
