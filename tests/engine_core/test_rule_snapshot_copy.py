"""``RuleSnapshot.with_trigger_price`` (filled slot by slot) against ``dataclasses.replace``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot

_prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.9999"), places=4)
_texts = st.text(min_size=1, max_size=8)

# Every field drawn on its own, so a field the copy drops or swaps shows.
_snapshots = st.builds(
    RuleSnapshot,
    id=_texts,
    secret_id=_texts,
    rule_type=st.sampled_from(TradeRuleType),
    market_id=_texts,
    token_id=_texts,
    trigger_price=_prices,
    trailing_percent=st.none() | _prices,
    action=st.builds(
        RuleAction, st.sampled_from(ActionType), st.none() | st.decimals(1, 1000, places=2)
    ),
    status=st.sampled_from(TradeRuleStatus),
    trigger_source=st.sampled_from(TriggerSource),
    ts_next_attempt=st.none() | st.datetimes(timezones=st.just(UTC)),
    trailing_amount=st.none() | _prices,
    activation_price=st.none() | _prices,
    activated=st.booleans(),
    oco_group_id=st.none() | _texts,
    oco_paused_by=st.none() | _texts,
)


@given(_snapshots, _prices, st.booleans())
def test_the_copy_is_replace_with_the_new_trigger(
    rule: RuleSnapshot, trigger: Decimal, activated: bool
) -> None:
    before = dataclasses.replace(rule)
    copy = rule.with_trigger_price(trigger, activated=activated)
    expected = dataclasses.replace(
        rule, trigger_price=trigger, activated=rule.activated or activated
    )

    # Field by field (a slot left unset raises here), then as a whole.
    for field in dataclasses.fields(RuleSnapshot):
        assert getattr(copy, field.name) == getattr(expected, field.name), field.name
    assert copy == expected
    assert type(copy) is RuleSnapshot
    assert copy is not rule
    # The original is untouched and the copy stays frozen.
    assert rule == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.trigger_price = trigger  # type: ignore[misc]


def test_every_field_is_copied() -> None:
    rule = RuleSnapshot(
        "r",
        "s",
        TradeRuleType.TRAILING_STOP,
        "m",
        "t",
        Decimal("0.5"),
        Decimal("10"),
        RuleAction(ActionType.SELL_PARTIAL, Decimal("3")),
        TradeRuleStatus.ACTIVE,
        TriggerSource.BEST_BID,
        datetime(2026, 1, 2, tzinfo=UTC),
        Decimal("0.05"),
        Decimal("0.6"),
        False,
        "g",
        "p",
    )

    copy = rule.with_trigger_price(Decimal("0.55"), activated=True)

    assert copy == dataclasses.replace(rule, trigger_price=Decimal("0.55"), activated=True)
    assert hash(copy) == hash(dataclasses.replace(copy))
