"""Build RuleSnapshots for the engine-core tests."""

from __future__ import annotations

from decimal import Decimal

from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot


def make_rule(
    rule_id: str,
    rule_type: TradeRuleType,
    trigger_price: str | Decimal,
    *,
    token_id: str = "token-1",
    trailing_percent: str | Decimal | None = None,
    source: TriggerSource = TriggerSource.MIDPOINT,
) -> RuleSnapshot:
    if rule_type is TradeRuleType.TRAILING_STOP and trailing_percent is None:
        trailing_percent = "10"
    return RuleSnapshot(
        id=rule_id,
        secret_id="secret-1",
        rule_type=rule_type,
        market_id="0xmarket",
        token_id=token_id,
        trigger_price=Decimal(trigger_price),
        trailing_percent=None if trailing_percent is None else Decimal(trailing_percent),
        action=RuleAction(ActionType.SELL_ALL),
        trigger_source=source,
    )
