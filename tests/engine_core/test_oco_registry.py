"""OCO groups in the worker's memory: a fired rule pauses its siblings at once. Pure: no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine_core.rules import make_rule
from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import RuleSnapshot

MID = TriggerSource.MIDPOINT
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def grouped(rule_id: str, rule_type: TradeRuleType, trigger: str, group: str = "g") -> RuleSnapshot:
    return replace(make_rule(rule_id, rule_type, trigger), oco_group_id=group)


def bracket() -> RuleRegistry:
    registry = RuleRegistry()
    registry.upsert(grouped("stop", TradeRuleType.STOP_LOSS, "0.40"))
    registry.upsert(grouped("take", TradeRuleType.TAKE_PROFIT, "0.60"))
    registry.upsert(make_rule("alone", TradeRuleType.TAKE_PROFIT, "0.60"))
    return registry


def test_a_fired_rule_pauses_its_siblings_in_the_same_price() -> None:
    registry = bracket()

    outcome = registry.apply_price("token-1", MID, Decimal("0.35"))
    later = registry.apply_price("token-1", MID, Decimal("0.70"))

    assert [r.id for r in outcome.fired] == ["stop"]
    assert registry.index.get("take") is None
    paused = registry.paused("take")
    assert paused is not None and paused.oco_paused_by == "stop"
    # The take-profit cannot fire while the stop executes; a rule outside the group can.
    assert [r.id for r in later.fired] == ["alone"]
    assert registry.tokens() == {"token-1"}


def test_a_sale_settles_the_siblings_and_no_sale_releases_them() -> None:
    sold, unsold = bracket(), bracket()
    for registry in (sold, unsold):
        registry.apply_price("token-1", MID, Decimal("0.35"))

    assert sold.settle_group("stop") == ["take"]
    sold.finish("stop")
    released = unsold.release_group("stop")
    unsold.finish("stop")

    assert sold.paused("take") is None and sold.index.get("take") is None
    assert [r.id for r in released] == ["take"]
    assert unsold.index.get("take") is not None
    fired = unsold.apply_price("token-1", MID, Decimal("0.65")).fired
    assert sorted(r.id for r in fired) == ["alone", "take"]


def test_of_two_siblings_crossed_by_one_price_only_the_first_fires() -> None:
    registry = RuleRegistry()
    registry.upsert(grouped("high", TradeRuleType.STOP_LOSS, "0.45"))
    registry.upsert(grouped("low", TradeRuleType.STOP_LOSS, "0.40"))

    outcome = registry.apply_price("token-1", MID, Decimal("0.30"))

    assert len(outcome.fired) == 1
    other = ({"high", "low"} - {outcome.fired[0].id}).pop()
    paused = registry.paused(other)
    assert paused is not None and paused.oco_paused_by == outcome.fired[0].id


def test_groups_are_per_secret_and_a_sync_keeps_a_pause_its_claim_has_not_written_yet() -> None:
    registry = bracket()
    other_tenant = replace(grouped("theirs", TradeRuleType.TAKE_PROFIT, "0.60"), secret_id="x")
    registry.upsert(other_tenant)
    seq_before = registry.seq
    rows = [
        grouped("take", TradeRuleType.TAKE_PROFIT, "0.60"),
        make_rule("alone", TradeRuleType.TAKE_PROFIT, "0.60"),
        other_tenant,
    ]

    registry.apply_price("token-1", MID, Decimal("0.35"))
    # A sync whose read started before the claim committed sees "take" unpaused.
    registry.sync(rows, seq_before, NOW)
    registry.sync(rows, registry.seq, NOW)

    assert registry.index.get("take") is None
    assert registry.index.get("theirs") is not None


def test_a_sync_follows_a_pause_written_by_another_process() -> None:
    registry = bracket()
    paused_elsewhere = replace(
        grouped("take", TradeRuleType.TAKE_PROFIT, "0.60"), oco_paused_by="stop"
    )

    registry.sync([paused_elsewhere], registry.seq, NOW)
    assert registry.index.get("take") is None and registry.paused("take") is not None
    assert registry.tokens() == {"token-1"}

    registry.sync([grouped("take", TradeRuleType.TAKE_PROFIT, "0.60")], registry.seq, NOW)
    assert registry.index.get("take") is not None and registry.paused("take") is None

    registry.sync([], registry.seq, NOW)
    assert registry.tokens() == frozenset()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=99).map(lambda n: Decimal(n).scaleb(-2))),
    st.lists(st.sampled_from(["settle", "release", "retry"]), max_size=8),
)
def test_a_group_never_has_two_rules_in_flight_and_a_rule_is_in_one_place(
    path: list[Decimal], endings: list[str]
) -> None:
    registry = RuleRegistry()
    group = [
        grouped("stop", TradeRuleType.STOP_LOSS, "0.40"),
        grouped("take", TradeRuleType.TAKE_PROFIT, "0.60"),
        grouped("trail", TradeRuleType.TRAILING_STOP, "0.30"),
    ]
    for rule in group:
        registry.upsert(rule)
    endings_left = list(endings)
    for price in path:
        registry.apply_price("token-1", MID, price)
        assert len(registry.in_flight) <= 1
        for rule_id in registry.in_flight:
            if not endings_left:
                continue
            ending = endings_left.pop(0)
            if ending == "settle":
                registry.settle_group(rule_id)
                registry.finish(rule_id)
            elif ending == "release":
                registry.release_group(rule_id)
                registry.finish(rule_id)
            else:  # back to ACTIVE: watched again with its siblings
                registry.release_group(rule_id)
                registry.finish(rule_id)
                registry.upsert(next(r for r in group if r.id == rule_id))
        for rule in group:
            places = (
                (registry.index.get(rule.id) is not None)
                + (rule.id in registry.in_flight)
                + (registry.paused(rule.id) is not None)
            )
            assert places <= 1
        paused_by = {registry.paused(r.id).oco_paused_by for r in group if registry.paused(r.id)}  # type: ignore[union-attr]
        assert paused_by <= registry.in_flight


def test_a_late_snapshot_from_before_the_claim_never_unpauses_a_sibling() -> None:
    registry = bracket()
    registry.apply_price("token-1", MID, Decimal("0.35"))

    # A notification read before the claim paused it: the sibling as it was then.
    stale = grouped("take", TradeRuleType.TAKE_PROFIT, "0.60")
    assert registry.upsert(stale) is False
    fired = registry.apply_price("token-1", MID, Decimal("0.70")).fired

    assert registry.index.get("take") is None
    paused = registry.paused("take")
    assert paused is not None and paused.oco_paused_by == "stop"
    assert [r.id for r in fired] == ["alone"]
