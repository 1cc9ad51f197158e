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
# Issue 15: a trail in price units, and a client-chosen OCO group id.
UnitAmount = Annotated[Number, Field(gt=0, lt=1)]
OcoGroupId = Annotated[StrictStr, Field(min_length=1, max_length=64)]

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
    # Issue 15 fields.
    "trailingAmount": "number",
    "activationPrice": "number",
    "ocoGroupId": "string",
    "stopLoss": "object",
    "takeProfit": "object",
    "stopLoss.triggerPrice": "number",
    "stopLoss.trailingPercent": "number",
    "stopLoss.trailingAmount": "number",
    "stopLoss.activationPrice": "number",
    "takeProfit.triggerPrice": "number",
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
    # Issue 15 fields (kept together: other branches add validators above).
    trailingAmount: UnitAmount | None = Field(
        default=None,
        description="TRAILING_STOP only: trailing distance in price units (instead of %)",
    )
    activationPrice: OpenUnitPrice | None = Field(
        default=None,
        description="TRAILING_STOP only: the stop is dormant until the price first reaches this",
    )
    ocoGroupId: OcoGroupId | None = Field(
        default=None,
        description="One-cancels-the-other group: rules of the same key and token",
    )

    def trailing_issues(self, sent: set[str]) -> list[dict[str, Any]]:
        """The cross-field checks Zod's superRefine made (``sent`` = keys in the body)."""
        return trail_issues(self.ruleType == "TRAILING_STOP", sent, [])

    def rule_action(self) -> RuleAction:
        if isinstance(self.action, SellPartial):
            return RuleAction(ActionType.SELL_PARTIAL, as_decimal(self.action.amount))
        return RuleAction(ActionType.SELL_ALL)


class UpdateRuleBody(BaseModel):
    """``PATCH /rules/{id}``: only the trigger price can change."""

    model_config = ConfigDict(extra="ignore")
    triggerPrice: OpenUnitPrice


def trail_issues(is_trailing: bool, sent: set[str], path: list[str]) -> list[dict[str, Any]]:
    """Exactly one of trailingPercent / trailingAmount for a TRAILING_STOP, and no trail or
    activation price for the other types (``path``: where the fields sit in the body)."""

    def issue(field: str, message: str) -> dict[str, Any]:
        return {"code": "custom", "path": [*path, field], "message": message}

    if is_trailing:
        if "trailingPercent" in sent and "trailingAmount" in sent:
            return [
                issue(
                    "trailingAmount",
                    "Send either trailingPercent or trailingAmount for TRAILING_STOP rules, "
                    "not both",
                )
            ]
        if "trailingPercent" not in sent and "trailingAmount" not in sent:
            return [issue("trailingPercent", "trailingPercent is required for TRAILING_STOP rules")]
        return []
    return [
        issue(field, f"{field} is only supported for TRAILING_STOP rules")
        for field in ("trailingPercent", "trailingAmount", "activationPrice")
        if field in sent
    ]


class BracketStopLoss(BaseModel):
    """The bracket's protective leg: a fixed stop (``triggerPrice``) or a trailing stop."""

    model_config = ConfigDict(extra="forbid")
    triggerPrice: OpenUnitPrice | None = Field(
        default=None, description="Stop price; for a trailing stop the floor (optional)"
    )
    trailingPercent: Percent | None = Field(default=None, description="Trailing distance, %")
    trailingAmount: UnitAmount | None = Field(
        default=None, description="Trailing distance in price units"
    )
    activationPrice: OpenUnitPrice | None = Field(
        default=None, description="Trailing only: dormant until the price reaches this"
    )

    @property
    def is_trailing(self) -> bool:
        return self.trailingPercent is not None or self.trailingAmount is not None


class BracketTakeProfit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    triggerPrice: OpenUnitPrice


class CreateBracketBody(BaseModel):
    """``POST /rules/bracket``: a stop-loss and a take-profit that cancel each other."""

    model_config = ConfigDict(extra="ignore")

    marketId: NonEmpty = Field(description="Polymarket condition id")
    tokenId: NonEmpty = Field(description="Outcome token id held")
    stopLoss: BracketStopLoss
    takeProfit: BracketTakeProfit
    action: Action
    triggerSource: Literal["MIDPOINT", "BEST_BID", "LAST_TRADE"] = Field(
        default="MIDPOINT", description="Which price both rules watch (default the midpoint)"
    )
    expiresAt: datetime | None = Field(default=None, description="Optional expiry (ISO-8601)")

    def issues(self) -> list[dict[str, Any]]:
        """Cross-field checks of the two legs."""
        stop = self.stopLoss
        sent = set(stop.model_fields_set)
        issues: list[dict[str, Any]] = []
        if stop.is_trailing or "activationPrice" in sent:
            issues = trail_issues(True, sent, ["stopLoss"])
        elif stop.triggerPrice is None:
            issues = [
                {
                    "code": "custom",
                    "path": ["stopLoss", "triggerPrice"],
                    "message": "stopLoss needs triggerPrice, trailingPercent or trailingAmount",
                }
            ]
        take = self.takeProfit.triggerPrice
        if not issues and stop.triggerPrice is not None and take <= stop.triggerPrice:
            issues = [
                {
                    "code": "custom",
                    "path": ["takeProfit", "triggerPrice"],
                    "message": (
                        "takeProfit.triggerPrice must be above stopLoss.triggerPrice "
                        f"({stop.triggerPrice}), was {take}"
                    ),
                }
            ]
        return issues

    def rule_action(self) -> RuleAction:
        if isinstance(self.action, SellPartial):
            return RuleAction(ActionType.SELL_PARTIAL, as_decimal(self.action.amount))
        return RuleAction(ActionType.SELL_ALL)


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
        # Issue 15 fields (after the original's, so its key order is kept).
        "trailingAmount": rule.trailing_amount,
        "activationPrice": rule.activation_price,
        "activatedAt": iso(rule.activated_at),
        "ocoGroupId": rule.oco_group_id,
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


# --------------------------------------------------------------------------- OpenAPI documentation
# Response shapes for the OpenAPI document only (routes render with ``render_rule``).


class RuleOut(BaseModel):
    """A rule as every rule route answers it."""

    id: str
    secretId: str
    ruleType: Literal["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"]
    marketId: str
    marketSlug: str | None
    tokenId: str
    side: Literal["BUY"]
    triggerPrice: float = Field(description="Current trigger (a trailing stop's moves up)")
    trailingPercent: float | None
    action: dict[str, Any] = Field(description='{"type":"SELL_ALL"} or SELL_PARTIAL with amount')
    status: Literal["ACTIVE", "TRIGGERED", "PENDING_APPROVAL", "CANCELED", "EXPIRED", "FAILED"]
    triggeredAt: str | None
    triggerTxHash: str | None = Field(description="The sell's order id once executed")
    errorMessage: str | None = Field(
        description='Why it FAILED or EXPIRED (e.g. "market resolved: Yes won", "market closed")'
    )
    createdAt: str
    updatedAt: str
    triggerSource: Literal["MIDPOINT", "BEST_BID", "LAST_TRADE"]
    expiresAt: str | None
    trailingAmount: float | None = Field(description="Trailing distance in price units")
    activationPrice: float | None = Field(
        description="Trailing stop dormant (neither fires nor trails) until this price"
    )
    activatedAt: str | None = Field(description="When the activation price was reached")
    ocoGroupId: str | None = Field(
        description="OCO group: when one rule's sell fills, the others become CANCELED"
    )


class RuleEnvelope(BaseModel):
    success: Literal[True]
    data: RuleOut


class BracketOut(BaseModel):
    ocoGroupId: str
    rules: list[RuleOut] = Field(description="[stopLoss, takeProfit]")


class BracketEnvelope(BaseModel):
    success: Literal[True]
    data: BracketOut
