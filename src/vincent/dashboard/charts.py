"""The chart of one token as JSON for the page's SVG: prices, trigger lines, fires. No I/O.

Times are milliseconds since the epoch, prices floats (display only: nothing compares them).
A stop-loss or take-profit is a flat line at its trigger; a trailing stop is the stepped line
it followed, one step per ``RULE_TRAILING_UPDATED``; a fire is the ``RULE_EVALUATED`` that
said ``shouldTrigger``, at the price that crossed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from vincent.dashboard.price_history import PricePoint
from vincent.db.models import TradeRule, TradeRuleEvent
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType

ENDED = (TradeRuleStatus.CANCELED, TradeRuleStatus.EXPIRED, TradeRuleStatus.FAILED)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def point_json(point: PricePoint) -> list[Any]:
    """``[ms, best bid, best ask, last trade]`` (null where the book has none)."""
    return [
        int(point.ts_s * 1000),
        _number(point.best_bid),
        _number(point.best_ask),
        _number(point.last_trade),
    ]


def rule_line(rule: TradeRule, events: Sequence[TradeRuleEvent]) -> dict[str, Any]:
    """One rule on the chart: its trigger steps, where it ended, where it fired."""
    steps: list[list[Any]] = []
    fires: list[list[Any]] = []
    initial = rule.trigger_price
    for event in events:
        data = event.event_data or {}
        if event.event_type is TradeRuleEventType.RULE_CREATED:
            sent = (data.get("payload") or {}).get("triggerPrice")
            if isinstance(sent, int | float):
                initial = float(sent)
        elif event.event_type is TradeRuleEventType.RULE_TRAILING_UPDATED:
            level = data.get("triggerPrice")
            if isinstance(level, int | float):
                steps.append([ms(event.created_at), float(level)])
        elif event.event_type is TradeRuleEventType.RULE_EVALUATED and data.get("shouldTrigger"):
            price = data.get("currentPrice")
            if isinstance(price, int | float):
                fires.append([ms(event.created_at), float(price)])
    if rule.rule_type is not TradeRuleType.TRAILING_STOP:
        # A flat line at the current trigger (a PATCH moves it without an event).
        initial, steps = rule.trigger_price, []
    ended_at: int | None = None
    if rule.status is TradeRuleStatus.TRIGGERED and rule.triggered_at is not None:
        ended_at = ms(rule.triggered_at)
    elif rule.status in ENDED:
        ended_at = ms(rule.updated_at)
    return {
        "id": rule.id,
        "type": rule.rule_type.value,
        "status": rule.status.value,
        "source": rule.trigger_source.value,
        "steps": [[ms(rule.created_at), float(initial)], *steps],
        "endedAt": ended_at,
        "fires": fires,
    }


def token_chart(
    token_id: str,
    label: str,
    rules: Sequence[TradeRule],
    events: Mapping[str, Sequence[TradeRuleEvent]],
    points: Sequence[PricePoint],
) -> dict[str, Any]:
    """The chart of ``token_id``: its price points and the given rules' lines."""
    return {
        "tokenId": token_id,
        "label": label,
        "points": [point_json(p) for p in points],
        "rules": [rule_line(rule, events.get(rule.id, ())) for rule in rules],
    }
