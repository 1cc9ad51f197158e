"""Decide whether a rule fires at a price, ratcheting trailing stops first. No I/O.

The seed's ``ruleExecutor.evaluateRule`` plus the worker's ratchet, as one pure function.
``rule_executor`` re-exports ``evaluate_rule`` from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from vincent.enums import TradeRuleType
from vincent.services.trade_manager.trailing import (
    activation_trigger,
    reaches_activation,
    trail_ratchet,
)
from vincent.services.trade_manager.types import RuleSnapshot


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The decision for one rule at one price.

    ``trigger_price`` is the trigger the test used (after any ratchet); ``new_trigger_price``
    is set only when a trailing stop's trigger rose and must be stored. ``activated``: a
    dormant stop reached its activation price at this price (its trigger must be stored even
    when it did not rise).
    """

    should_trigger: bool
    current_price: Decimal
    trigger_price: Decimal
    new_trigger_price: Decimal | None = None
    activated: bool = False


def crosses(rule_type: TradeRuleType, trigger_price: Decimal, price: Decimal) -> bool:
    """Return whether ``price`` crosses the trigger (inclusive, like the seed)."""
    if rule_type is TradeRuleType.TAKE_PROFIT:
        return price >= trigger_price
    # STOP_LOSS and TRAILING_STOP protect against a fall.
    return price <= trigger_price


def evaluate_rule(rule: RuleSnapshot, price: Decimal) -> Evaluation:
    """Evaluate ``rule`` at ``price``: activate or ratchet a trailing stop, then test it.

    A dormant stop (activation price not yet reached) neither fires nor ratchets.
    """
    trigger = rule.trigger_price
    if rule.rule_type is not TradeRuleType.TRAILING_STOP:
        return Evaluation(crosses(rule.rule_type, trigger, price), price, trigger)
    percent, amount = rule.trailing_percent, rule.trailing_amount
    if rule.dormant:
        assert rule.activation_price is not None
        if not reaches_activation(rule.activation_price, price):
            return Evaluation(False, price, trigger)
        trigger = activation_trigger(trigger, price, percent, amount)
        return Evaluation(
            should_trigger=crosses(rule.rule_type, trigger, price),
            current_price=price,
            trigger_price=trigger,
            new_trigger_price=trigger if trigger > rule.trigger_price else None,
            activated=True,
        )
    new_trigger = None
    if percent is not None or amount is not None:
        new_trigger = trail_ratchet(trigger, price, percent, amount)
        if new_trigger is not None:
            trigger = new_trigger
    return Evaluation(
        should_trigger=crosses(rule.rule_type, trigger, price),
        current_price=price,
        trigger_price=trigger,
        new_trigger_price=new_trigger,
    )
