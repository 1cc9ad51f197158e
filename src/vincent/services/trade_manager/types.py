"""Shared value types and roles of the trade manager. No I/O.

These are the contracts between the API, the rule manager, the pure engine core and the
worker: the rule as the engine sees it, the worker's status snapshot, and the small
Protocols that the worker's collaborators (clock, listener) fulfil.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource


class ActionType(StrEnum):
    SELL_ALL = "SELL_ALL"
    SELL_PARTIAL = "SELL_PARTIAL"


@dataclass(frozen=True, slots=True)
class RuleAction:
    """What to do when a rule fires. ``amount`` (shares) only for SELL_PARTIAL."""

    type: ActionType
    amount: Decimal | None = None

    def to_json(self) -> dict[str, object]:
        if self.type is ActionType.SELL_PARTIAL:
            assert self.amount is not None
            return {"type": self.type.value, "amount": _json_number(self.amount)}
        return {"type": self.type.value}


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class RuleSnapshot:
    """An ACTIVE rule as the engine holds it in memory.

    Prices are ``Decimal`` so comparisons are exact; the DB keeps the seed's floats and
    the conversion goes through ``Decimal(str(x))`` (the shortest repr, never binary noise).
    """

    id: str
    secret_id: str
    rule_type: TradeRuleType
    market_id: str
    token_id: str
    trigger_price: Decimal
    trailing_percent: Decimal | None
    action: RuleAction
    status: TradeRuleStatus = TradeRuleStatus.ACTIVE
    trigger_source: TriggerSource = TriggerSource.MIDPOINT
    # Retry backoff after a transient execution error: not eligible before this instant.
    ts_next_attempt: datetime | None = None
    # Trailing stops: the trail in price units (instead of ``trailing_percent``), and the
    # price the stop waits for before it watches at all (``dormant`` until then).
    trailing_amount: Decimal | None = None
    activation_price: Decimal | None = None
    activated: bool = False
    # OCO: the group this rule belongs to, and the group rule whose execution pauses it.
    oco_group_id: str | None = None
    oco_paused_by: str | None = None

    @property
    def dormant(self) -> bool:
        """A trailing stop still waiting for its activation price: it neither fires nor
        ratchets."""
        return self.activation_price is not None and not self.activated

    def with_trigger_price(
        self, trigger_price: Decimal, *, activated: bool = False
    ) -> RuleSnapshot:
        """Return a copy with another trigger (and activated, when asked).

        The rule index makes one per trailing raise. The copy is filled through the slots'
        own setters, not the frozen ``__init__`` (sixteen ``object.__setattr__`` calls):
        0.9 against 2.7 µs. ``tests/engine_core/test_rule_snapshot_copy.py`` checks that it
        equals ``dataclasses.replace`` for every field, so a new field must be added here.
        """
        copy: RuleSnapshot = _new_object(RuleSnapshot)
        _set_id(copy, self.id)
        _set_secret_id(copy, self.secret_id)
        _set_rule_type(copy, self.rule_type)
        _set_market_id(copy, self.market_id)
        _set_token_id(copy, self.token_id)
        _set_trigger_price(copy, trigger_price)
        _set_trailing_percent(copy, self.trailing_percent)
        _set_action(copy, self.action)
        _set_status(copy, self.status)
        _set_trigger_source(copy, self.trigger_source)
        _set_ts_next_attempt(copy, self.ts_next_attempt)
        _set_trailing_amount(copy, self.trailing_amount)
        _set_activation_price(copy, self.activation_price)
        _set_activated(copy, self.activated or activated)
        _set_oco_group_id(copy, self.oco_group_id)
        _set_oco_paused_by(copy, self.oco_paused_by)
        return copy


# The slots' setters (member descriptors), which a frozen dataclass's __setattr__ does not
# guard; only ``RuleSnapshot.with_trigger_price`` uses them, on a copy nobody has seen yet.
_new_object = object.__new__
_SLOT_SETTERS: dict[str, Callable[[RuleSnapshot, Any], None]] = {
    name: getattr(RuleSnapshot, name).__set__ for name in RuleSnapshot.__slots__
}
_set_id = _SLOT_SETTERS["id"]
_set_secret_id = _SLOT_SETTERS["secret_id"]
_set_rule_type = _SLOT_SETTERS["rule_type"]
_set_market_id = _SLOT_SETTERS["market_id"]
_set_token_id = _SLOT_SETTERS["token_id"]
_set_trigger_price = _SLOT_SETTERS["trigger_price"]
_set_trailing_percent = _SLOT_SETTERS["trailing_percent"]
_set_action = _SLOT_SETTERS["action"]
_set_status = _SLOT_SETTERS["status"]
_set_trigger_source = _SLOT_SETTERS["trigger_source"]
_set_ts_next_attempt = _SLOT_SETTERS["ts_next_attempt"]
_set_trailing_amount = _SLOT_SETTERS["trailing_amount"]
_set_activation_price = _SLOT_SETTERS["activation_price"]
_set_activated = _SLOT_SETTERS["activated"]
_set_oco_group_id = _SLOT_SETTERS["oco_group_id"]
_set_oco_paused_by = _SLOT_SETTERS["oco_paused_by"]


def price_from_float(value: float) -> Decimal:
    """Convert a stored float price to the Decimal it was meant to be (``0.4`` → ``0.4``)."""
    return Decimal(repr(value))


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """An immutable snapshot of the monitoring worker, for ``GET /rules/status`` and logs."""

    state: str = "stopped"
    running: bool = False
    active_rules_count: int = 0
    last_sync_time: datetime | None = None
    web_socket_connected: bool = False
    web_socket_subscriptions: int = 0
    web_socket_connections: int = 0
    last_message_age_s: float | None = None
    consecutive_failures: int = 0
    circuit_breaker_until: datetime | None = None
    # Standby workers: whether this worker may execute (always, alone on SQLite), and its id.
    leader: bool = False
    worker_id: str | None = None


class RuleChangeListener(Protocol):
    """Told about rule changes made through the API, after they are committed.

    The worker implements it so a rule created, updated or canceled through the API is in
    (or out of) the in-memory index before the API call returns.
    """

    def rule_upserted(self, rule: RuleSnapshot) -> None: ...

    def rule_removed(self, rule_id: str, token_id: str) -> None: ...


class NullRuleChangeListener:
    """The listener used when no worker runs in this process."""

    def rule_upserted(self, rule: RuleSnapshot) -> None:
        return None

    def rule_removed(self, rule_id: str, token_id: str) -> None:
        return None


class Clock(Protocol):
    """Wall time for timestamps and monotonic time for ages and deadlines."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
