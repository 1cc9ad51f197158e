"""Trailing stops as traders set them: a trail in price units, and an activation price."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine_core.rules import make_rule
from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.evaluation import evaluate_rule
from vincent.services.trade_manager.rule_index import RuleIndex
from vincent.services.trade_manager.trailing import (
    MAX_TRIGGER,
    amount_candidate,
    amount_threshold,
    trail_ratchet,
)
from vincent.services.trade_manager.types import RuleSnapshot

MID = TriggerSource.MIDPOINT

prices = st.integers(min_value=1, max_value=99999).map(lambda n: Decimal(n).scaleb(-5))
coarse_prices = st.integers(min_value=1, max_value=99).map(lambda n: Decimal(n).scaleb(-2))
amounts = st.integers(min_value=1, max_value=9999).map(lambda n: Decimal(n).scaleb(-4))
triggers = st.integers(min_value=1, max_value=9999).map(lambda n: Decimal(n).scaleb(-4))


def trailing(
    rule_id: str,
    trigger: str | Decimal,
    *,
    percent: str | Decimal | None = None,
    amount: str | Decimal | None = None,
    activation: str | Decimal | None = None,
    token_id: str = "token-1",
) -> RuleSnapshot:
    rule = make_rule(
        rule_id,
        TradeRuleType.TRAILING_STOP,
        trigger,
        token_id=token_id,
        trailing_percent=percent if percent is not None else ("10" if amount is None else "1"),
    )
    return replace(
        rule,
        trailing_percent=None if amount is not None else rule.trailing_percent,
        trailing_amount=None if amount is None else Decimal(amount),
        activation_price=None if activation is None else Decimal(activation),
    )


# --------------------------------------------------------------------------- trail in price units


@pytest.mark.parametrize(
    ("price", "amount", "expected"),
    [
        ("0.60", "0.05", "0.55"),
        # Half up: 0.12345 - 0.1 = 0.02345 -> 0.0235.
        ("0.12345", "0.1", "0.0235"),
        ("0.999", "0.001", "0.99"),
    ],
)
def test_amount_candidate_is_price_less_the_amount(price: str, amount: str, expected: str) -> None:
    assert amount_candidate(Decimal(price), Decimal(amount)) == Decimal(expected)


@settings(deadline=None)
@given(triggers, amounts, prices)
def test_the_amount_threshold_is_exactly_where_the_ratchet_starts(
    trigger: Decimal, amount: Decimal, price: Decimal
) -> None:
    threshold = amount_threshold(trigger, amount)
    raised = trail_ratchet(trigger, price, None, amount)

    if threshold is None:
        assert raised is None
    else:
        assert (raised is not None) == (price >= threshold)


@settings(deadline=None)
@given(
    triggers,
    st.one_of(
        st.tuples(st.just("percent"), st.sampled_from(["1", "5", "10", "33.3"])),
        st.tuples(st.just("amount"), amounts),
    ),
    st.none() | coarse_prices,
    st.lists(prices, max_size=40),
)
def test_the_trigger_never_moves_down_for_either_trail(
    trigger: Decimal,
    trail: tuple[str, str | Decimal],
    activation: Decimal | None,
    path: list[Decimal],
) -> None:
    kind, value = trail
    rule = trailing(
        "r",
        trigger,
        percent=value if kind == "percent" else None,
        amount=value if kind == "amount" else None,
        activation=activation,
    )
    for price in path:
        evaluation = evaluate_rule(rule, price)
        assert evaluation.trigger_price >= rule.trigger_price
        assert evaluation.trigger_price <= max(MAX_TRIGGER, trigger)
        if evaluation.new_trigger_price is not None:
            assert evaluation.new_trigger_price > rule.trigger_price
        rule = rule.with_trigger_price(evaluation.trigger_price, activated=evaluation.activated)


# --------------------------------------------------------------------------- activation


@settings(deadline=None)
@given(coarse_prices, triggers, st.lists(prices, max_size=40))
def test_a_dormant_stop_neither_fires_nor_ratchets_below_its_activation_price(
    activation: Decimal, trigger: Decimal, path: list[Decimal]
) -> None:
    rule = trailing("r", trigger, activation=activation)
    index = RuleIndex()
    index.upsert(rule)

    for price in (p for p in path if p < activation):
        evaluation = evaluate_rule(rule, price)
        outcome = index.apply_price("token-1", MID, price)
        assert not evaluation.should_trigger
        assert evaluation.new_trigger_price is None
        assert not evaluation.activated
        assert outcome.fired == () and outcome.ratcheted == ()

    assert index.get("r") == rule


def test_activation_sets_the_larger_of_the_trigger_and_price_less_the_trail() -> None:
    low_floor = trailing("low", "0.30", percent="10", activation="0.60")
    high_floor = trailing("high", "0.58", amount="0.05", activation="0.60")

    raised = evaluate_rule(low_floor, Decimal("0.62"))
    kept = evaluate_rule(high_floor, Decimal("0.62"))

    assert raised.activated and raised.trigger_price == Decimal("0.558")
    assert raised.new_trigger_price == Decimal("0.558") and not raised.should_trigger
    assert kept.activated and kept.trigger_price == Decimal("0.58")
    assert kept.new_trigger_price is None and not kept.should_trigger


def test_the_index_wakes_a_dormant_stop_once_then_trails_and_fires_it() -> None:
    index = RuleIndex()
    index.upsert(trailing("r", "0.30", amount="0.05", activation="0.60"))

    below = [index.apply_price("token-1", MID, Decimal(p)) for p in ("0.20", "0.59")]
    woken = index.apply_price("token-1", MID, Decimal("0.61"))
    raised = index.apply_price("token-1", MID, Decimal("0.70"))
    crossed = index.apply_price("token-1", MID, Decimal("0.65"))
    after = index.apply_price("token-1", MID, Decimal("0.60"))

    assert all(o.fired == () and o.ratcheted == () for o in below)
    assert woken.activated == {"r"} and woken.fired == ()
    assert [(r.trigger_price, r.activated) for r in woken.ratcheted] == [(Decimal("0.56"), True)]
    assert raised.activated == frozenset()
    assert [r.trigger_price for r in raised.ratcheted] == [Decimal("0.65")]
    assert [r.id for r in crossed.fired] == ["r"]
    assert after.fired == ()


def test_a_stop_woken_above_its_trigger_fires_at_once() -> None:
    index = RuleIndex()
    index.upsert(trailing("r", "0.70", percent="10", activation="0.65"))

    outcome = index.apply_price("token-1", MID, Decimal("0.66"))

    assert outcome.activated == {"r"}
    assert [(r.id, r.trigger_price) for r in outcome.fired] == [("r", Decimal("0.70"))]
    assert [r.id for r in outcome.ratcheted] == ["r"]
    assert len(index) == 0


# --------------------------------------------------------------------------- index vs naive scan


@dataclass
class _Naive:
    """The oracle: every rule evaluated on every price of its token."""

    rules: dict[str, RuleSnapshot]

    def apply_price(
        self, token_id: str, price: Decimal
    ) -> tuple[set[str], dict[str, Decimal], set[str]]:
        fired: set[str] = set()
        stored: dict[str, Decimal] = {}
        woken: set[str] = set()
        for rule in list(self.rules.values()):
            if rule.token_id != token_id:
                continue
            evaluation = evaluate_rule(rule, price)
            if evaluation.new_trigger_price is not None or evaluation.activated:
                rule = rule.with_trigger_price(
                    evaluation.trigger_price, activated=evaluation.activated
                )
                self.rules[rule.id] = rule
                stored[rule.id] = rule.trigger_price
            if evaluation.activated:
                woken.add(rule.id)
            if evaluation.should_trigger:
                fired.add(rule.id)
                del self.rules[rule.id]
        return fired, stored, woken


ids = st.text(alphabet="abcdef0123", min_size=1, max_size=4)
tokens = st.sampled_from(["A", "B"])


@st.composite
def any_rule(draw: st.DrawFn) -> RuleSnapshot:
    rule_id = draw(ids)
    token_id = draw(tokens)
    kind = draw(st.sampled_from(["stop", "take", "percent", "amount"]))
    trigger = draw(coarse_prices | triggers)
    if kind == "stop":
        return make_rule(rule_id, TradeRuleType.STOP_LOSS, trigger, token_id=token_id)
    if kind == "take":
        return make_rule(rule_id, TradeRuleType.TAKE_PROFIT, trigger, token_id=token_id)
    activation = draw(st.none() | coarse_prices)
    if kind == "percent":
        percent = draw(st.sampled_from(["1", "5", "10", "33.3"]))
        return trailing(rule_id, trigger, percent=percent, activation=activation, token_id=token_id)
    amount = draw(st.sampled_from(["0.01", "0.05", "0.1234", "0.3"]))
    return trailing(rule_id, trigger, amount=amount, activation=activation, token_id=token_id)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(any_rule(), max_size=30),
    st.lists(
        st.one_of(
            st.tuples(st.just("price"), tokens, coarse_prices | triggers),
            st.tuples(st.just("remove"), ids),
            st.tuples(st.just("upsert"), any_rule()),
        ),
        max_size=50,
    ),
)
def test_the_index_agrees_with_a_naive_scan_with_dormant_and_amount_stops(
    initial: list[RuleSnapshot], path: list[tuple[object, ...]]
) -> None:
    index = RuleIndex()
    naive = _Naive({})
    for rule in initial:
        index.upsert(rule)
        naive.rules[rule.id] = rule

    for step in path:
        if step[0] == "price":
            _, token_id, price = step
            assert isinstance(token_id, str) and isinstance(price, Decimal)
            outcome = index.apply_price(token_id, MID, price)
            fired, stored, woken = naive.apply_price(token_id, price)
            assert {rule.id for rule in outcome.fired} == fired
            assert {rule.id: rule.trigger_price for rule in outcome.ratcheted} == stored
            assert outcome.activated == woken
        elif step[0] == "remove":
            assert isinstance(step[1], str)
            assert index.remove(step[1]) == naive.rules.pop(step[1], None)
        else:
            assert isinstance(step[1], RuleSnapshot)
            index.upsert(step[1])
            naive.rules[step[1].id] = step[1]
        assert len(index) == len(naive.rules)

    held = {rule.id: rule for token in index.tokens() for rule in index.rules_for_token(token)}
    assert held == naive.rules
