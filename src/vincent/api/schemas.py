"""Request bodies of the trade-rule routes (Pydantic: the Zod of the seed) and wire renderers.

Field names are camelCase on the wire. Numbers must be JSON numbers (strings are refused,
as Zod refused them). Unknown top-level keys are stripped; unknown keys inside ``action``
are refused.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from vincent.api.envelope import iso
from vincent.db.models import TradeMonitoredPosition, TradeRule, TradeRuleEvent
from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_manager import parse_action
from vincent.services.trade_manager.types import ActionType, RuleAction

# A JSON number (int or float); strings and booleans are refused, as Zod refused them.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
OpenUnitPrice = Annotated[Number, Field(gt=0, lt=1)]
Percent = Annotated[Number, Field(gt=0, lt=100)]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]

RULE_TYPES = [t.value for t in TradeRuleType]
TRIGGER_SOURCES = [t.value for t in TriggerSource]

# For error rendering: the JSON type of each field, and the allowed values of enum fields.
FIELD_TYPES = {
    "ruleType": "string",
    "marketId": "string",
    "tokenId": "string",
    "side": "string",
    "triggerPrice": "number",
    "trailingPercent": "number",
    "action": "object",
    "action.type": "string",
    "action.amount": "number",
    "triggerSource": "string",
    "expiresAt": "string",
}
ENUM_VALUES = {
    "ruleType": RULE_TYPES,
    "side": ["BUY"],
    "triggerSource": TRIGGER_SOURCES,
}


class SellAll(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["SELL_ALL"]


class SellPartial(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["SELL_PARTIAL"]
    amount: Annotated[Number, Field(gt=0, description="Shares to sell")]


Action = Annotated[SellAll | SellPartial, Field(discriminator="type")]


class CreateRuleBody(BaseModel):
    """``POST /rules``. ``trailingPercent`` is required for, and only for, TRAILING_STOP."""

    model_config = ConfigDict(extra="ignore")

    ruleType: Literal["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"]
    marketId: NonEmpty = Field(description="Polymarket condition id")
    tokenId: NonEmpty = Field(description="Outcome token id held")
    side: Literal["BUY"] = "BUY"
    triggerPrice: OpenUnitPrice
    trailingPercent: Percent | None = Field(default=None, description="Trailing distance, %")
    action: Action
    triggerSource: Literal["MIDPOINT", "BEST_BID", "LAST_TRADE"] = Field(
        default="MIDPOINT", description="Which price the rule watches (default the midpoint)"
    )
    expiresAt: datetime | None = Field(default=None, description="Optional expiry (ISO-8601)")

    def trailing_issues(self, sent: set[str]) -> list[dict[str, Any]]:
        """The cross-field checks Zod's superRefine made (``sent`` = keys in the body)."""
        is_trailing = self.ruleType == "TRAILING_STOP"
        if is_trailing and "trailingPercent" not in sent:
            message = "trailingPercent is required for TRAILING_STOP rules"
        elif not is_trailing and "trailingPercent" in sent:
            message = "trailingPercent is only supported for TRAILING_STOP rules"
        else:
            return []
        return [{"code": "custom", "path": ["trailingPercent"], "message": message}]

    def rule_action(self) -> RuleAction:
        if isinstance(self.action, SellPartial):
            return RuleAction(ActionType.SELL_PARTIAL, as_decimal(self.action.amount))
        return RuleAction(ActionType.SELL_ALL)


class UpdateRuleBody(BaseModel):
    """``PATCH /rules/{id}``: only the trigger price can change."""

    model_config = ConfigDict(extra="ignore")
    triggerPrice: OpenUnitPrice


def as_decimal(value: float) -> Decimal:
    """The decimal the client wrote (``0.4`` stays ``0.4``, never binary noise)."""
    return Decimal(repr(value))


def render_rule(rule: TradeRule) -> dict[str, Any]:
    """A rule as the original serialized it (key order kept), action as an object."""
    try:
        action: Any = parse_action(rule.action).to_json()
    except (ValueError, KeyError):
        action = rule.action
    return {
        "id": rule.id,
        "secretId": rule.secret_id,
        "ruleType": rule.rule_type.value,
        "marketId": rule.market_id,
        "marketSlug": rule.market_slug,
        "tokenId": rule.token_id,
        "side": rule.side,
        "triggerPrice": rule.trigger_price,
        "trailingPercent": rule.trailing_percent,
        "action": action,
        "status": rule.status.value,
        "triggeredAt": iso(rule.triggered_at),
        "triggerTxHash": rule.trigger_tx_hash,
        "errorMessage": rule.error_message,
        "createdAt": iso(rule.created_at),
        "updatedAt": iso(rule.updated_at),
        "triggerSource": rule.trigger_source.value,
        "expiresAt": iso(rule.expires_at),
        "executionMode": rule.execution_mode.value,
    }


def render_event(event: TradeRuleEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "ruleId": event.rule_id,
        "eventType": event.event_type.value,
        "data": event.event_data,
        "createdAt": iso(event.created_at),
    }


def render_position(position: TradeMonitoredPosition) -> dict[str, Any]:
    return {
        "id": position.id,
        "secretId": position.secret_id,
        "marketId": position.market_id,
        "marketSlug": position.market_slug,
        "tokenId": position.token_id,
        "side": position.side,
        "quantity": position.quantity,
        "avgEntryPrice": position.avg_entry_price,
        "currentPrice": position.current_price,
        "marketTitle": position.market_title,
        "outcome": position.outcome,
        "endDate": position.end_date,
        "redeemable": position.redeemable,
        "lastUpdatedAt": iso(position.last_updated_at),
        "createdAt": iso(position.created_at),
        "updatedAt": iso(position.updated_at),
    }
