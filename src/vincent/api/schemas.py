"""Request bodies of the trade-rule routes (Pydantic: the Zod of the seed) and wire renderers.

Field names are camelCase on the wire. Numbers must be JSON numbers (strings are refused,
as Zod refused them). Unknown top-level keys are stripped; unknown keys inside ``action``
are refused.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from pydantic_core import PydanticCustomError
from sqlalchemy import Row

from vincent.api.envelope import iso
from vincent.db.models import TradeMonitoredPosition, TradeRule, TradeRuleEvent
from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_manager import RULE_ROW_COLUMNS, parse_action
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.wire_time import iso_millis

# A JSON number (int or float); strings and booleans are refused, as Zod refused them.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
OpenUnitPrice = Annotated[Number, Field(gt=0, lt=1)]
Percent = Annotated[Number, Field(gt=0, lt=100)]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]
# Shares or USD in one order or rule: far above any real position, far below where Decimal
# arithmetic, policies or the exchange would misbehave.
MAX_AMOUNT = 1_000_000_000
Amount = Annotated[Number, Field(gt=0, le=MAX_AMOUNT)]

# Identifiers end up in the shared WebSocket subscription and in upstream URLs: their
# format is checked here, at the edge, before anything stores or sends them.
TOKEN_ID_MAX_DIGITS = 100
MARKET_ID_MAX_LENGTH = 100
ID_MAX_LENGTH = 100
_TOKEN_ID = re.compile(rf"[0-9]{{1,{TOKEN_ID_MAX_DIGITS}}}")
_CONDITION_ID = re.compile(r"0[xX][0-9a-fA-F]{64}")
# Anything printable except what would change a URL's meaning (/ ? # %) or split a word.
_SHORT_ID = re.compile(rf"[^/?#%\s\x00-\x1f\x7f]{{1,{MARKET_ID_MAX_LENGTH}}}")


def _format_check(pattern: re.Pattern[str], expected: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if pattern.fullmatch(value) is None:
            # Rendered by api.errors as a Zod ``invalid_format`` issue that names the field.
            raise PydanticCustomError(
                "invalid_format", "must be {expected}", {"expected": expected}
            )
        return value

    return check


def check_market_id(value: str) -> str:
    """A condition id (``0x`` + 64 hex) or another short market id."""
    if value[:2].lower() == "0x":
        return _format_check(_CONDITION_ID, CONDITION_ID_FORMAT)(value)
    return _format_check(_SHORT_ID, MARKET_ID_FORMAT)(value)


TOKEN_ID_FORMAT = f"decimal digits (at most {TOKEN_ID_MAX_DIGITS})"
CONDITION_ID_FORMAT = "0x followed by 64 hex digits"
MARKET_ID_FORMAT = (
    f"a condition id (0x + 64 hex digits) or an id of at most {MARKET_ID_MAX_LENGTH} "
    "characters without / ? # % or spaces"
)
ID_FORMAT = f"at most {ID_MAX_LENGTH} characters without / ? # % or spaces"
_ID = re.compile(rf"[^/?#%\s\x00-\x1f\x7f]{{1,{ID_MAX_LENGTH}}}")

_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]*")
PrintableFormat = AfterValidator(_format_check(_PRINTABLE, "printable characters"))


def id_issues(field: str, value: str) -> list[dict[str, Any]]:
    """The Zod-style issue for an id read by hand (a query parameter), if it is malformed."""
    if _ID.fullmatch(value) is not None:
        return []
    shown = value if len(value) <= 40 else value[:40] + "..."
    return [
        {
            "origin": "string",
            "code": "invalid_format",
            "format": ID_FORMAT,
            "path": [field],
            "message": f"{field} must be {ID_FORMAT}, was {shown!r}",
        }
    ]


# Reusable identifier types (bodies use the strict ones, query and path params the lax).
TokenIdFormat = AfterValidator(_format_check(_TOKEN_ID, TOKEN_ID_FORMAT))
ConditionIdFormat = AfterValidator(_format_check(_CONDITION_ID, CONDITION_ID_FORMAT))
MarketIdFormat = AfterValidator(check_market_id)
IdFormat = AfterValidator(_format_check(_ID, ID_FORMAT))
TokenId = Annotated[StrictStr, Field(min_length=1), TokenIdFormat]
ConditionId = Annotated[StrictStr, Field(min_length=1), ConditionIdFormat]
MarketId = Annotated[StrictStr, Field(min_length=1), MarketIdFormat]
# A rule, approval, secret or order id in a path or query: never sent to the database (or
# upstream) unless it could be one.
IdParam = Annotated[str, IdFormat]
# Issue 15: a trail in price units, and a client-chosen OCO group id.
UnitAmount = Annotated[Number, Field(gt=0, lt=1)]
OcoGroupId = Annotated[StrictStr, Field(min_length=1, max_length=64)]

RULE_TYPES = [t.value for t in TradeRuleType]
TRIGGER_SOURCES = [t.value for t in TriggerSource]


def as_utc(value: datetime) -> datetime:
    """A datetime without a time zone is taken as UTC; any other is converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 has no UTC datetime
        raise PydanticCustomError("datetime_range", "must be a date before 9999") from None


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
    amount: Annotated[Amount, Field(description="Shares to sell")]


Action = Annotated[SellAll | SellPartial, Field(discriminator="type")]


def expiry_issues(expires_at: datetime | None, now: datetime) -> list[dict[str, Any]]:
    """An expiry at or before ``now`` would store a rule that is already expired."""
    if expires_at is None or expires_at > now:
        return []
    message = f"expiresAt must be in the future, was {expires_at.isoformat()}"
    return [{"code": "custom", "path": ["expiresAt"], "message": message}]


class CreateRuleBody(BaseModel):
    """``POST /rules``. ``trailingPercent`` is required for, and only for, TRAILING_STOP."""

    model_config = ConfigDict(extra="ignore")

    ruleType: Literal["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"]
    marketId: MarketId = Field(description="Polymarket condition id")
    tokenId: TokenId = Field(description="Outcome token id held (decimal digits)")
    side: Literal["BUY"] = "BUY"
    triggerPrice: OpenUnitPrice
    trailingPercent: Percent | None = Field(default=None, description="Trailing distance, %")
    action: Action
    triggerSource: Literal["MIDPOINT", "BEST_BID", "LAST_TRADE"] = Field(
        default="MIDPOINT", description="Which price the rule watches (default the midpoint)"
    )
    expiresAt: Annotated[datetime, AfterValidator(as_utc)] | None = Field(
        default=None, description="Optional expiry (ISO-8601; without a time zone: UTC)"
    )

    def expiry_issues(self, now: datetime) -> list[dict[str, Any]]:
        return expiry_issues(self.expiresAt, now)

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

    marketId: MarketId = Field(description="Polymarket condition id")
    tokenId: TokenId = Field(description="Outcome token id held (decimal digits)")
    stopLoss: BracketStopLoss
    takeProfit: BracketTakeProfit
    action: Action
    triggerSource: Literal["MIDPOINT", "BEST_BID", "LAST_TRADE"] = Field(
        default="MIDPOINT", description="Which price both rules watch (default the midpoint)"
    )
    expiresAt: Annotated[datetime, AfterValidator(as_utc)] | None = Field(
        default=None, description="Optional expiry (ISO-8601; without a time zone: UTC)"
    )

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


# Rendered actions by their stored text: a few distinct texts ({"type":"SELL_ALL"}, a
# handful of partial amounts) repeat across every rule, so a list parses each once. The
# dicts are shared between responses and never mutated. Cleared when full.
_ACTIONS: dict[str, Any] = {}
_ACTIONS_MAX = 1024


def render_action(text: str) -> Any:
    """The stored action as its JSON object; the text itself when it is not a valid action."""
    rendered = _ACTIONS.get(text)
    if rendered is None:
        try:
            rendered = parse_action(text).to_json()
        except (ValueError, KeyError):
            rendered = text
        if len(_ACTIONS) >= _ACTIONS_MAX:
            _ACTIONS.clear()
        _ACTIONS[text] = rendered
    return rendered


def render_rule(rule: TradeRule | Row[Any]) -> dict[str, Any]:
    """A rule as the original serialized it (key order kept), action as an object.

    ``rule`` is an ORM object or a row of every ``trade_rules`` column (the API's reads).
    """
    action = render_action(rule.action)
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
        # Issue 15 fields (after the original's, so its key order is kept).
        "trailingAmount": rule.trailing_amount,
        "activationPrice": rule.activation_price,
        "activatedAt": iso(rule.activated_at),
        "ocoGroupId": rule.oco_group_id,
    }


_RULE_WIRE_ORDER = (
    "id",
    "secret_id",
    "rule_type",
    "market_id",
    "market_slug",
    "token_id",
    "side",
    "trigger_price",
    "trailing_percent",
    "action",
    "status",
    "triggered_at",
    "trigger_tx_hash",
    "error_message",
    "created_at",
    "updated_at",
    "trigger_source",
    "expires_at",
    "execution_mode",
    "trailing_amount",
    "activation_price",
    "activated_at",
    "oco_group_id",
)
# A read row's values in the wire's order, picked by position (a row's attribute lookup by
# name costs several times a tuple index, and a list renders every column of every rule).
_pick_rule_values = operator.itemgetter(*(RULE_ROW_COLUMNS.index(n) for n in _RULE_WIRE_ORDER))


def render_rule_row(row: Row[Any]) -> dict[str, Any]:
    """``render_rule`` of a row from ``rule_manager.read_rule(s)``: the same dict."""
    (
        rule_id,
        secret_id,
        rule_type,
        market_id,
        market_slug,
        token_id,
        side,
        trigger_price,
        trailing_percent,
        action,
        status,
        triggered_at,
        trigger_tx_hash,
        error_message,
        created_at,
        updated_at,
        trigger_source,
        expires_at,
        execution_mode,
        trailing_amount,
        activation_price,
        activated_at,
        oco_group_id,
    ) = _pick_rule_values(row)
    return {
        "id": rule_id,
        "secretId": secret_id,
        "ruleType": rule_type.value,
        "marketId": market_id,
        "marketSlug": market_slug,
        "tokenId": token_id,
        "side": side,
        "triggerPrice": trigger_price,
        "trailingPercent": trailing_percent,
        "action": render_action(action),
        "status": status.value,
        "triggeredAt": None if triggered_at is None else iso_millis(triggered_at),
        "triggerTxHash": trigger_tx_hash,
        "errorMessage": error_message,
        "createdAt": iso_millis(created_at),
        "updatedAt": iso_millis(updated_at),
        "triggerSource": trigger_source.value,
        "expiresAt": None if expires_at is None else iso_millis(expires_at),
        "executionMode": execution_mode.value,
        "trailingAmount": trailing_amount,
        "activationPrice": activation_price,
        "activatedAt": None if activated_at is None else iso_millis(activated_at),
        "ocoGroupId": oco_group_id,
    }


def render_event(event: TradeRuleEvent | Row[Any]) -> dict[str, Any]:
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
