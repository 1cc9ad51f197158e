"""The rule index: crossings by bisect, removal on fire, and agreement with a naive scan."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, replace
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.engine_core.rules import make_rule
from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.evaluation import evaluate_rule
from vincent.services.trade_manager.rule_index import RuleIndex
from vincent.services.trade_manager.trailing import ratchet_threshold
from vincent.services.trade_manager.types import RuleSnapshot

MID = TriggerSource.MIDPOINT


def _index(*rules: RuleSnapshot) -> RuleIndex:
    index = RuleIndex()
    for rule in rules:
        index.upsert(rule)
    return index


def test_stops_fire_at_or_below_and_take_profits_at_or_above() -> None:
    index = _index(
        make_rule("stop-40", TradeRuleType.STOP_LOSS, "0.40"),
        make_rule("stop-30", TradeRuleType.STOP_LOSS, "0.30"),
        make_rule("take-60", TradeRuleType.TAKE_PROFIT, "0.60"),
        make_rule("take-70", TradeRuleType.TAKE_PROFIT, "0.70"),
    )

    assert index.apply_price("token-1", MID, Decimal("0.5")).fired == ()
    assert [r.id for r in index.apply_price("token-1", MID, Decimal("0.40")).fired] == ["stop-40"]
    assert [r.id for r in index.apply_price("token-1", MID, Decimal("0.65")).fired] == ["take-60"]
    assert len(index) == 2


def test_a_fired_rule_is_removed_and_never_fires_twice() -> None:
    index = _index(make_rule("stop", TradeRuleType.STOP_LOSS, "0.40"))

    first = index.apply_price("token-1", MID, Decimal("0.1"))
    second = index.apply_price("token-1", MID, Decimal("0.1"))

    assert [r.id for r in first.fired] == ["stop"]
    assert second.fired == ()
    assert index.get("stop") is None
    assert index.tokens() == frozenset()


def test_prices_only_reach_rules_of_their_token_and_source() -> None:
    index = _index(
        make_rule("a", TradeRuleType.STOP_LOSS, "0.4", token_id="A"),
        make_rule("b", TradeRuleType.STOP_LOSS, "0.4", token_id="B"),
        make_rule(
            "bid", TradeRuleType.STOP_LOSS, "0.4", token_id="A", source=TriggerSource.BEST_BID
        ),
    )

    outcome = index.apply_price("A", MID, Decimal("0.3"))

    assert [r.id for r in outcome.fired] == ["a"]
    assert index.tokens() == {"A", "B"}
    assert index.sources("A") == (TriggerSource.BEST_BID,)
    assert [r.id for r in index.rules_for_token("A")] == ["bid"]


def test_trailing_stop_ratchets_then_fires_on_the_raised_trigger() -> None:
    index = _index(make_rule("trail", TradeRuleType.TRAILING_STOP, "0.4", trailing_percent="10"))

    up = index.apply_price("token-1", MID, Decimal("0.6"))
    flat = index.apply_price("token-1", MID, Decimal("0.59"))
    down = index.apply_price("token-1", MID, Decimal("0.54"))

    assert [r.trigger_price for r in up.ratcheted] == [Decimal("0.54")]
    assert up.fired == ()
    assert flat.ratcheted == ()
    assert flat.fired == ()
    assert [r.trigger_price for r in down.fired] == [Decimal("0.54")]


def test_upsert_replaces_and_non_active_rules_leave() -> None:
    rule = make_rule("r", TradeRuleType.STOP_LOSS, "0.4")
    index = _index(rule)

    index.upsert(replace(rule, trigger_price=Decimal("0.2"), token_id="other"))
    assert index.apply_price("token-1", MID, Decimal("0.3")).fired == ()
    assert index.tokens() == {"other"}

    index.upsert(replace(rule, status=TradeRuleStatus.CANCELED))
    assert len(index) == 0
    assert index.remove("r") is None


def test_remove_returns_the_rule() -> None:
    rule = make_rule("r", TradeRuleType.TRAILING_STOP, "0.4")
    index = _index(rule)

    assert index.remove("r") == rule
    assert index.apply_price("token-1", MID, Decimal("0.1")).fired == ()


@dataclass
class _NaiveIndex:
    """The oracle: every rule evaluated on every price of its token and source."""

    rules: dict[str, RuleSnapshot]

    def apply_price(
        self, token_id: str, source: TriggerSource, price: Decimal
    ) -> tuple[set[str], dict[str, Decimal]]:
        fired: set[str] = set()
        ratcheted: dict[str, Decimal] = {}
        for rule in list(self.rules.values()):
            if rule.token_id != token_id or rule.trigger_source != source:
                continue
            evaluation = evaluate_rule(rule, price)
            if evaluation.new_trigger_price is not None:
                rule = replace(rule, trigger_price=evaluation.new_trigger_price)
                self.rules[rule.id] = rule
                ratcheted[rule.id] = rule.trigger_price
            if evaluation.should_trigger:
                fired.add(rule.id)
                del self.rules[rule.id]
        return fired, ratcheted


tokens = st.sampled_from(["A", "B"])
sources = st.sampled_from([TriggerSource.MIDPOINT, TriggerSource.BEST_BID])
# Coarse prices make ties and exact crossings common.
prices = st.integers(min_value=1, max_value=99).map(lambda n: Decimal(n).scaleb(-2))
fine_prices = st.integers(min_value=1, max_value=9999).map(lambda n: Decimal(n).scaleb(-4))
rules = st.builds(
    make_rule,
    rule_id=st.text(alphabet="abcdef0123456789", min_size=1, max_size=6),
    rule_type=st.sampled_from(TradeRuleType),
    trigger_price=prices | fine_prices,
    token_id=tokens,
    trailing_percent=st.sampled_from(["1", "5", "10", "33.3", "50"]),
    source=sources,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("price"), tokens, sources, prices | fine_prices),
        st.tuples(st.just("remove"), st.text(alphabet="abcdef0123456789", min_size=1, max_size=6)),
        st.tuples(st.just("upsert"), rules),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rules, max_size=40), steps)
def test_the_index_agrees_with_a_naive_scan(
    initial: list[RuleSnapshot], path: list[tuple[object, ...]]
) -> None:
    index = RuleIndex()
    naive = _NaiveIndex({})
    for rule in initial:
        index.upsert(rule)
        naive.rules[rule.id] = rule

    for step in path:
        if step[0] == "price":
            _, token_id, source, price = step
            assert isinstance(token_id, str)
            assert isinstance(source, TriggerSource)
            assert isinstance(price, Decimal)
            outcome = index.apply_price(token_id, source, price)
            fired, ratcheted = naive.apply_price(token_id, source, price)
            assert {rule.id for rule in outcome.fired} == fired
            assert {rule.id: rule.trigger_price for rule in outcome.ratcheted} == ratcheted
            assert len({rule.id for rule in outcome.fired}) == len(outcome.fired)
        elif step[0] == "remove":
            rule_id = step[1]
            assert isinstance(rule_id, str)
            assert index.remove(rule_id) == naive.rules.pop(rule_id, None)
        else:
            new_rule = step[1]
            assert isinstance(new_rule, RuleSnapshot)
            index.upsert(new_rule)
            naive.rules[new_rule.id] = new_rule
        assert len(index) == len(naive.rules)

    assert {rule.id: rule for rule in _all(index)} == naive.rules
    assert index.tokens() == {rule.token_id for rule in naive.rules.values()}


def _all(index: RuleIndex) -> list[RuleSnapshot]:
    return [rule for token_id in index.tokens() for rule in index.rules_for_token(token_id)]


def test_memory_per_rule_stays_under_one_kilobyte() -> None:
    count = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = RuleIndex()
        for number in range(count):
            rule_type = list(TradeRuleType)[number % 3]
            index.upsert(
                make_rule(
                    f"cm{number:023d}",
                    rule_type,
                    Decimal(number % 9000 + 500).scaleb(-4),
                    token_id=f"{number % 200:077d}",
                )
            )
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert len(index) == count
    # Rules, their ids, token ids and Decimals included.
    assert used / count < 1024, f"{used / count:.0f} bytes per rule"


@given(rules)
def test_a_copy_with_another_trigger_differs_in_the_trigger_only(rule: RuleSnapshot) -> None:
    copied = rule.with_trigger_price(Decimal("0.1234"))

    assert copied == replace(rule, trigger_price=Decimal("0.1234"))
    assert copied.with_trigger_price(rule.trigger_price) == rule


@settings(deadline=None)
@given(fine_prices, st.sampled_from(["1", "3", "7", "10", "33.3"]), st.integers(-2, 2))
def test_a_price_at_a_stop_s_threshold_raises_it_only_when_its_trigger_rises(
    trigger: Decimal, percent: str, nudge: int
) -> None:
    # The index orders stops by a threshold rounded down: a price in the sliver below the
    # true threshold reaches the stop yet must not raise it (nor report it raised).
    threshold = ratchet_threshold(trigger, Decimal(percent))
    assume(threshold is not None)
    assert threshold is not None
    price = threshold + nudge * Decimal("1E-12")
    rule = make_rule("t", TradeRuleType.TRAILING_STOP, trigger, trailing_percent=percent)
    index = _index(rule)
    naive = _NaiveIndex({rule.id: rule})

    outcome = index.apply_price("token-1", MID, price)
    fired, ratcheted = naive.apply_price("token-1", MID, price)

    assert {rule.id: rule.trigger_price for rule in outcome.ratcheted} == ratcheted
    assert {rule.id for rule in outcome.fired} == fired
    assert {rule.id: rule for rule in _all(index)} == naive.rules
