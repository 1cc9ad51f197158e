"""Coalesce trailing-stop raises in memory and persist the latest level per rule in one write.

The hot path only records a raise (a dict assignment); ``flush`` writes every pending level in
one short transaction: one bulk UPDATE per chunk of rules, then one bulk INSERT of
``RULE_TRAILING_UPDATED`` + ``RULE_EVALUATED`` for the rules that moved. A rule is written at
most once per flush interval however fast its price climbs. A failed flush keeps its levels.
An activation (a dormant stop woken) is kept through later raises of the same flush and
stored once: ``activated_at`` is set only where it is still NULL, and only the statement that
set it logs ``"activated": true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import utcnow
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType
from vincent.services.trade_manager.event_logger import EventRow, log_event, log_events
from vincent.services.trade_manager.execution_types import TrailingRaise
from vincent.services.trade_manager.trailing_store import (
    activate_trailing_stops,
    raise_trailing_triggers,
)

# The bound: at most one trailing write per rule per second.
FLUSH_INTERVAL_S = 1.0


def trailing_updated_payload(level: TrailingRaise, *, activated: bool = False) -> dict[str, Any]:
    """RULE_TRAILING_UPDATED data: the new trigger and what raised it (and woke it)."""
    data: dict[str, Any] = {
        "triggerPrice": float(level.trigger_price),
        "currentPrice": float(level.current_price),
    }
    if level.trailing_percent is not None:
        data["trailingPercent"] = float(level.trailing_percent)
    if level.trailing_amount is not None:
        data["trailingAmount"] = float(level.trailing_amount)
    if activated:
        data["activated"] = True
    return data


def trailing_evaluated_payload(level: TrailingRaise) -> dict[str, Any]:
    """RULE_EVALUATED data for a trailing stop that moved (the websocket path adds ``source``)."""
    data: dict[str, Any] = {
        "currentPrice": float(level.current_price),
        "triggerPrice": float(level.trigger_price),
        "shouldTrigger": False,
    }
    if level.source == "websocket":
        data["source"] = "websocket"
    return data


def trailing_events(
    rule_id: str, level: TrailingRaise, *, activated: bool = False
) -> Iterator[EventRow]:
    """The two events of one persisted raise, in the order they are written."""
    yield (
        rule_id,
        TradeRuleEventType.RULE_TRAILING_UPDATED,
        trailing_updated_payload(level, activated=activated),
    )
    yield rule_id, TradeRuleEventType.RULE_EVALUATED, trailing_evaluated_payload(level)


def _merge(older: TrailingRaise | None, newer: TrailingRaise) -> TrailingRaise:
    """The newer level, still carrying an activation the older one recorded."""
    if older is None or not older.activated or newer.activated:
        return newer
    return replace(newer, activated=True)


class TrailingLevels:
    """Pending trailing levels by rule id; the newest raise replaces an older one."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, TrailingRaise] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, rule_id: str, level: TrailingRaise) -> None:
        self._pending[rule_id] = _merge(self._pending.get(rule_id), level)

    def take(self, rule_id: str) -> TrailingRaise | None:
        """Remove and return a rule's pending level (its claim persists it instead)."""
        return self._pending.pop(rule_id, None)

    def discard(self, rule_id: str) -> None:
        self._pending.pop(rule_id, None)

    def clear(self) -> None:
        """Drop every pending level (a deposed leader may not write them)."""
        self._pending.clear()

    async def flush(self, session_factory: SessionFactory) -> dict[str, Decimal]:
        """Persist every pending level; return the levels the database accepted, by rule.

        Only rules whose stored level moved get events. Raises what the database raised,
        after putting the batch back (a newer raise recorded meanwhile wins).
        """
        if not self._pending:
            return {}
        batch, self._pending = self._pending, {}
        try:
            now = utcnow()
            # The first statement is the UPDATE, so on SQLite the write lock is taken at the
            # start and held for a handful of statements, never behind an earlier read.
            async with session_factory() as session, session.begin():
                moved = await raise_trailing_triggers(
                    session,
                    {rule_id: level.trigger_price for rule_id, level in batch.items()},
                    now,
                )
                waking = [rule_id for rule_id, level in batch.items() if level.activated]
                woken = await activate_trailing_stops(session, waking, now) if waking else set()
                await log_events(
                    session,
                    (
                        event
                        for rule_id, level in batch.items()
                        if rule_id in moved or rule_id in woken
                        for event in trailing_events(rule_id, level, activated=rule_id in woken)
                    ),
                    now,
                )
        except BaseException:
            # Keep the levels for the next flush, unless a newer raise arrived meanwhile.
            for rule_id, level in batch.items():
                self._pending[rule_id] = _merge(level, self._pending.get(rule_id, level))
            raise
        return {rule_id: batch[rule_id].trigger_price for rule_id in moved | woken}


async def store_level_at_claim(
    session: AsyncSession, rule_id: str, level: TrailingRaise, now: datetime
) -> None:
    """Store a fired stop's pending level in its claim's transaction (before the claim: it
    needs the rule ACTIVE), with one RULE_TRAILING_UPDATED when it moved or woke."""
    moved = await raise_trailing_triggers(session, {rule_id: level.trigger_price}, now)
    woken = await activate_trailing_stops(session, [rule_id], now) if level.activated else set()
    if moved or woken:
        log_event(
            session,
            rule_id,
            TradeRuleEventType.RULE_TRAILING_UPDATED,
            trailing_updated_payload(level, activated=bool(woken)),
        )
