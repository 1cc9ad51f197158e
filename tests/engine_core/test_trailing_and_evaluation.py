"""The trailing ratchet and the trigger test (the seed's evaluateRule)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine_core.rules import make_rule
from vincent.enums import TradeRuleType
from vincent.services.trade_manager.evaluation import evaluate_rule
from vincent.services.trade_manager.trailing import (
    MAX_TRIGGER,
    _candidate,
    _threshold,
    ratchet,
    ratchet_step,
    ratchet_threshold,
    trailing_candidate,
)

# Wire prices: at most 4 decimals; midpoints add a fifth.
prices = st.integers(min_value=1, max_value=99999).map(lambda n: Decimal(n).scaleb(-5))
percents = st.integers(min_value=1, max_value=9900).map(lambda n: Decimal(n).scaleb(-2))
triggers = st.integers(min_value=1, max_value=9999).map(lambda n: Decimal(n).scaleb(-4))


@pytest.mark.parametrize(
    ("price", "percent", "expected"),
    [
        ("0.6", "10", "0.54"),
        # Half up like JS Math.round: 0.12345 -> 0.1235.
        ("0.12345", "0", "0.1235"),
        ("0.2469", "50", "0.1235"),
        ("0.999", "0.5", "0.99"),
    ],
)
def test_candidate_rounds_half_up_to_4_decimals_and_caps(
    price: str, percent: str, expected: str
) -> None:
    assert trailing_candidate(Decimal(price), Decimal(percent)) == Decimal(expected)


def test_ratchet_only_raises() -> None:
    assert ratchet(Decimal("0.5"), Decimal("0.6"), Decimal("10")) == Decimal("0.54")
    assert ratchet(Decimal("0.54"), Decimal("0.6"), Decimal("10")) is None
    assert ratchet(Decimal("0.54"), Decimal("0.55"), Decimal("10")) is None


@settings(deadline=None)
@given(triggers, percents, st.lists(prices, max_size=30))
def test_trailing_trigger_never_falls(
    trigger: Decimal, percent: Decimal, path: list[Decimal]
) -> None:
    for price in path:
        raised = ratchet(trigger, price, percent)
        if raised is not None:
            assert trigger < raised <= MAX_TRIGGER
            trigger = raised


@settings(deadline=None)
@given(triggers, percents, prices)
def test_the_threshold_is_exactly_where_the_ratchet_starts(
    trigger: Decimal, percent: Decimal, price: Decimal
) -> None:
    threshold = ratchet_threshold(trigger, percent)
    raised = ratchet(trigger, price, percent)

    if threshold is None:
        assert raised is None
    else:
        assert (raised is not None) == (price >= threshold)


def test_stop_loss_and_take_profit_are_inclusive() -> None:
    stop = make_rule("s", TradeRuleType.STOP_LOSS, "0.4")
    take = make_rule("t", TradeRuleType.TAKE_PROFIT, "0.6")

    assert evaluate_rule(stop, Decimal("0.4")).should_trigger
    assert not evaluate_rule(stop, Decimal("0.4001")).should_trigger
    assert evaluate_rule(take, Decimal("0.6")).should_trigger
    assert not evaluate_rule(take, Decimal("0.5999")).should_trigger


def test_trailing_stop_ratchets_before_the_trigger_test() -> None:
    rule = make_rule("t", TradeRuleType.TRAILING_STOP, "0.4", trailing_percent="10")

    evaluation = evaluate_rule(rule, Decimal("0.6"))

    assert evaluation.new_trigger_price == Decimal("0.54")
    assert evaluation.trigger_price == Decimal("0.54")
    assert not evaluation.should_trigger


def test_a_trailing_stop_without_percent_is_a_plain_stop() -> None:
    rule = replace(make_rule("t", TradeRuleType.TRAILING_STOP, "0.4"), trailing_percent=None)

    evaluation = evaluate_rule(rule, Decimal("0.9"))

    assert evaluation.new_trigger_price is None
    assert evaluation.trigger_price == Decimal("0.4")


def _first_crossing(
    rule_type: TradeRuleType, trigger: Decimal, percent: Decimal, path: list[Decimal]
) -> int | None:
    """An independent oracle: the seed's loop written out with plain arithmetic."""
    for step, price in enumerate(path):
        if rule_type is TradeRuleType.TRAILING_STOP:
            trigger = max(trigger, trailing_candidate(price, percent))
        if (price >= trigger) if rule_type is TradeRuleType.TAKE_PROFIT else (price <= trigger):
            return step
    return None


@settings(deadline=None)
@given(st.sampled_from(TradeRuleType), triggers, percents, st.lists(prices, max_size=30))
def test_a_rule_fires_on_the_first_crossing_and_never_before(
    rule_type: TradeRuleType, trigger: Decimal, percent: Decimal, path: list[Decimal]
) -> None:
    rule = make_rule("r", rule_type, trigger, trailing_percent=percent)
    fired_at = None
    for step, price in enumerate(path):
        evaluation = evaluate_rule(rule, price)
        if evaluation.new_trigger_price is not None:
            rule = make_rule("r", rule_type, evaluation.new_trigger_price, trailing_percent=percent)
        if evaluation.should_trigger:
            fired_at = step
            break

    assert fired_at == _first_crossing(rule_type, trigger, percent, path)


@settings(deadline=None)
@given(prices, percents, triggers)
def test_a_value_written_with_more_zeros_gives_the_very_same_results(
    price: Decimal, percent: Decimal, trigger: Decimal
) -> None:
    def padded(value: Decimal) -> Decimal:
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        return value.quantize(Decimal(1).scaleb(exponent - 2))

    # The padded inputs go first: whatever they leave behind must not change the results.
    candidate = trailing_candidate(padded(price), padded(percent))
    threshold = ratchet_threshold(padded(trigger), padded(percent))

    assert str(trailing_candidate(price, percent)) == str(candidate)
    assert str(ratchet_threshold(trigger, percent)) == str(threshold)


@settings(deadline=None)
@given(
    st.lists(triggers, min_size=1, max_size=3),
    st.lists(prices, min_size=1, max_size=3),
    percents,
)
def test_the_one_lookup_ratchet_step_agrees_with_ratchet_and_its_threshold(
    some_triggers: list[Decimal], some_prices: list[Decimal], percent: Decimal
) -> None:
    # Several triggers per price and several prices per percent: most reads are memo hits.
    for price in some_prices:
        # Computed afresh, without any memo.
        candidate = _candidate(price, percent)
        # A trigger right at the candidate is not raised (strictly higher only).
        for trigger in [*some_triggers, candidate]:
            step = ratchet_step(trigger, price, percent)

            if candidate > trigger:
                assert step == (candidate, _threshold(candidate, percent))
                assert step[0] == ratchet(trigger, price, percent)
            else:
                assert step is None
