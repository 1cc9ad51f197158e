"""Coalesce trailing-stop raises in memory and persist the latest level per rule in one write.

The hot path only records a raise (a dict assignment); ``flush`` writes every pending level in
one short transaction: one bulk UPDATE per chunk of rules, then one bulk INSERT of
``RULE_TRAILING_UPDATED`` + ``RULE_EVALUATED`` for the rules that moved. A rule is written at
most once per flush interval however fast its price climbs. A failed flush keeps its levels.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from vincent.db.base import utcnow
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType
from vincent.services.trade_manager.event_logger import EventRow, log_events
from vincent.services.trade_manager.execution_types import TrailingRaise
from vincent.services.trade_manager.trailing_store import raise_trailing_triggers

# The bound: at most one trailing write per rule per second.
FLUSH_INTERVAL_S = 1.0


def trailing_updated_payload(level: TrailingRaise) -> dict[str, Any]:
    """RULE_TRAILING_UPDATED data: the new trigger and what raised it."""
    return {
        "triggerPrice": float(level.trigger_price),
        "currentPrice": float(level.current_price),
        "trailingPercent": float(level.trailing_percent),
    }


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


def trailing_events(rule_id: str, level: TrailingRaise) -> Iterator[EventRow]:
    """The two events of one persisted raise, in the order they are written."""
    yield rule_id, TradeRuleEventType.RULE_TRAILING_UPDATED, trailing_updated_payload(level)
    yield rule_id, TradeRuleEventType.RULE_EVALUATED, trailing_evaluated_payload(level)


class TrailingLevels:
    """Pending trailing levels by rule id; the newest raise replaces an older one."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, TrailingRaise] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, rule_id: str, level: TrailingRaise) -> None:
        self._pending[rule_id] = level

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
                await log_events(
                    session,
                    (
                        event
                        for rule_id, level in batch.items()
                        if rule_id in moved
                        for event in trailing_events(rule_id, level)
                    ),
                    now,
                )
        except BaseException:
            # Keep the levels for the next flush, unless a newer raise arrived meanwhile.
            for rule_id, level in batch.items():
                self._pending.setdefault(rule_id, level)
            raise
        return {rule_id: batch[rule_id].trigger_price for rule_id in moved}
