"""Coalesce trailing-stop raises in memory and persist the latest level per rule in one write.

The hot path only records a raise (a dict assignment); ``flush`` writes every pending level in
one transaction (``RULE_TRAILING_UPDATED`` + ``RULE_EVALUATED``), so a rule is written at most
once per flush interval however fast its price climbs. A failed flush keeps its levels.
"""

from __future__ import annotations

from decimal import Decimal

from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType
from vincent.services.trade_manager.event_logger import log_event
from vincent.services.trade_manager.rule_executor import TrailingRaise
from vincent.services.trade_manager.rule_manager import update_trailing_trigger

# The bound: at most one trailing write per rule per second.
FLUSH_INTERVAL_S = 1.0


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

    async def flush(self, session_factory: SessionFactory) -> dict[str, Decimal]:
        """Persist every pending level; return the levels the database accepted, by rule."""
        if not self._pending:
            return {}
        batch, self._pending = self._pending, {}
        written: dict[str, Decimal] = {}
        try:
            async with session_factory() as session, session.begin():
                for rule_id, level in batch.items():
                    moved = await update_trailing_trigger(
                        session,
                        rule_id,
                        level.trigger_price,
                        {
                            "currentPrice": float(level.current_price),
                            "trailingPercent": float(level.trailing_percent),
                        },
                    )
                    if not moved:
                        continue  # no longer ACTIVE, or the stored level is already higher
                    evaluated: dict[str, object] = {
                        "currentPrice": float(level.current_price),
                        "triggerPrice": float(level.trigger_price),
                        "shouldTrigger": False,
                    }
                    if level.source == "websocket":
                        evaluated["source"] = "websocket"
                    log_event(session, rule_id, TradeRuleEventType.RULE_EVALUATED, evaluated)
                    written[rule_id] = level.trigger_price
        except BaseException:
            # Keep the levels for the next flush, unless a newer raise arrived meanwhile.
            for rule_id, level in batch.items():
                self._pending.setdefault(rule_id, level)
            raise
        return written
