"""Request bodies of the trade-rule routes (Pydantic: the Zod of the seed) and wire renderers.

Field names are camelCase on the wire. Numbers must be JSON numbers (strings are refused,
as Zod refused them). Unknown top-level keys are stripped; unknown keys inside ``action``
are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from pydantic_core import PydanticCustomError

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
_CONDITION_ID = re.compile(r"0x[0-9a-fA-F]{64}")
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
        """An expiry at or before ``now`` would store a rule that is already expired."""
        if self.expiresAt is None or self.expiresAt > now:
            return []
        message = f"expiresAt must be in the future, was {self.expiresAt.isoformat()}"
        return [{"code": "custom", "path": ["expiresAt"], "message": message}]

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
