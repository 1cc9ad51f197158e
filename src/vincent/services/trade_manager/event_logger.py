"""The trade-rule event log: writes ``TradeRuleEvent`` rows and reads them back per tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import new_id
from vincent.db.models import TradeRule, TradeRuleEvent
from vincent.enums import TradeRuleEventType

MAX_EVENTS_LIMIT = 500
DEFAULT_EVENTS_LIMIT = 100

_EVENTS = cast(sa.Table, TradeRuleEvent.__table__)

# One event to write in bulk: rule id, type, data.
EventRow = tuple[str, TradeRuleEventType, Mapping[str, Any]]


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
    ids = sorted(new_id() for _ in given)
    rows = [
        {
            "id": event_id,
            "rule_id": rule_id,
            "event_type": event_type,
            "event_data": dict(event_data),
            "created_at": now,
        }
        for event_id, (rule_id, event_type, event_data) in zip(ids, given, strict=True)
    ]
    if rows:
        # Core, not the ORM: no identity map or unit of work for rows nobody reads back.
        await session.execute(sa.insert(_EVENTS), rows)
    return len(rows)


async def get_events(
    session: AsyncSession,
    secret_id: str,
    rule_id: str | None = None,
    limit: int = DEFAULT_EVENTS_LIMIT,
    offset: int = 0,
) -> list[TradeRuleEvent]:
    """The caller's events, newest first. ``rule_id`` must already be known to be theirs."""
    statement = (
        sa.select(TradeRuleEvent)
        .join(TradeRule, TradeRule.id == TradeRuleEvent.rule_id)
        .where(TradeRule.secret_id == secret_id)
        .order_by(TradeRuleEvent.created_at.desc(), TradeRuleEvent.id.desc())
        .limit(max(1, min(limit, MAX_EVENTS_LIMIT)))
        .offset(max(0, offset))
    )
    if rule_id is not None:
        statement = statement.where(TradeRuleEvent.rule_id == rule_id)
    return list((await session.scalars(statement)).all())


async def get_rule_events(session: AsyncSession, rule_id: str) -> list[TradeRuleEvent]:
    """Every event of one rule, oldest first (worker side: reconciliation, tests)."""
    statement = (
        sa.select(TradeRuleEvent)
        .where(TradeRuleEvent.rule_id == rule_id)
        .order_by(TradeRuleEvent.created_at, TradeRuleEvent.id)
    )
    return list((await session.scalars(statement)).all())
