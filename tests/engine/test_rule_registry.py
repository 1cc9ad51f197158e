"""The worker's in-memory rule state against database snapshots. Pure: no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def rule(
    rule_id: str,
    trigger: str = "0.40",
    rule_type: TradeRuleType = TradeRuleType.STOP_LOSS,
    token_id: str = "t1",
    **extra: object,
) -> RuleSnapshot:
    return replace(
        RuleSnapshot(
            id=rule_id,
            secret_id="s",
            rule_type=rule_type,
            market_id="m",
            token_id=token_id,
            trigger_price=Decimal(trigger),
            trailing_percent=Decimal(10) if rule_type is TradeRuleType.TRAILING_STOP else None,
            action=RuleAction(ActionType.SELL_ALL),
        ),
        **extra,  # type: ignore[arg-type]
    )


def test_sync_adds_new_rules_and_removes_rules_gone_from_the_database() -> None:
    registry = RuleRegistry()
    registry.sync([rule("a"), rule("b", token_id="t2")], registry.seq, NOW)
    assert registry.tokens() == {"t1", "t2"}

    result = registry.sync([rule("a")], registry.seq, NOW)

    assert (result.upserted, result.removed) == (0, 1)
    assert registry.index.get("b") is None
    assert registry.tokens() == {"t1"}


def test_sync_never_overrides_an_in_process_change_made_after_the_read() -> None:
    registry = RuleRegistry()
    registry.sync([rule("a")], registry.seq, NOW)
    seq_before = registry.seq
    # The API moved "a" and created "b" while the tick's query was running.
    registry.upsert(rule("a", "0.30"))
    registry.upsert(rule("b"))

    registry.sync([rule("a", "0.40")], seq_before, NOW)

    assert registry.index.get("a") == rule("a", "0.30")
    assert registry.index.get("b") == rule("b")


def test_sync_keeps_a_trailing_raise_unless_someone_else_moved_the_level() -> None:
    registry = RuleRegistry()
    stop = rule("a", "0.40", TradeRuleType.TRAILING_STOP)
    registry.sync([stop], registry.seq, NOW)
    outcome = registry.apply_price("t1", TriggerSource.MIDPOINT, Decimal("0.60"))
    assert [r.trigger_price for r in outcome.ratcheted] == [Decimal("0.54")]

    registry.sync([stop], registry.seq, NOW)  # not flushed yet: the database still says 0.40
    watched = registry.index.get("a")
    assert watched is not None
    assert watched.trigger_price == Decimal("0.54")

    registry.sync([replace(stop, trigger_price=Decimal("0.35"))], registry.seq, NOW)
    watched = registry.index.get("a")
    assert watched is not None
    assert watched.trigger_price == Decimal("0.35")


def test_sync_read_before_a_flush_committed_keeps_the_raised_level() -> None:
    registry = RuleRegistry()
    stop = rule("a", "0.40", TradeRuleType.TRAILING_STOP)
    registry.sync([stop], registry.seq, NOW)
    registry.apply_price("t1", TriggerSource.MIDPOINT, Decimal("0.60"))  # level 0.54
    seq_before = registry.seq
    # The tick's query runs and reads 0.40; meanwhile a flush commits 0.54.
    registry.mark_persisted({"a": Decimal("0.54")})

    registry.sync([stop], seq_before, NOW)

    watched = registry.index.get("a")
    assert watched is not None
    assert watched.trigger_price == Decimal("0.54")
    # The next read sees the flushed level and changes nothing.
    registry.sync([replace(stop, trigger_price=Decimal("0.54"))], registry.seq, NOW)
    assert registry.index.get("a") == watched


def test_fired_rules_stay_out_until_finished_and_cooled_rules_return_when_due() -> None:
    registry = RuleRegistry()
    registry.sync([rule("a")], registry.seq, NOW)
    fired = registry.apply_price("t1", TriggerSource.MIDPOINT, Decimal("0.39")).fired
    assert [r.id for r in fired] == ["a"]
    assert registry.in_flight == {"a"}

    registry.sync([rule("a")], registry.seq, NOW)  # still ACTIVE in the database: in flight
    assert registry.index.get("a") is None
    assert registry.tokens() == {"t1"}

    until = NOW + timedelta(seconds=5)
    assert registry.cool("a", until) is not None
    registry.sync([rule("a", ts_next_attempt=until)], registry.seq, NOW)
    assert (registry.index.get("a"), registry.cooling_count) == (None, 1)
    assert registry.due(NOW) == []
    assert registry.due(until) == [("a", until)]

    rearmed = registry.rearm("a", until)

    assert rearmed is not None
    assert registry.index.get("a") == rule("a", ts_next_attempt=until)
    assert registry.cooling_count == 0


def test_rules_loaded_in_backoff_are_cooled_not_indexed() -> None:
    registry = RuleRegistry()
    until = NOW + timedelta(seconds=30)

    result = registry.sync([rule("a", ts_next_attempt=until)], registry.seq, NOW)

    assert [r.id for r in result.cooled] == ["a"]
    assert registry.index.get("a") is None
    assert registry.tokens() == {"t1"}


def test_an_api_upsert_of_a_non_active_rule_removes_it() -> None:
    registry = RuleRegistry()
    registry.upsert(rule("a"))
    registry.upsert(rule("a", status=TradeRuleStatus.CANCELED))
    assert registry.index.get("a") is None
    assert registry.tokens() == frozenset()


def test_token_changes_report_only_tokens_gaining_a_first_or_losing_a_last_rule() -> None:
    registry = RuleRegistry()
    registry.upsert(rule("a"))
    registry.upsert(rule("b"))
    registry.upsert(rule("c", token_id="t2"))
    first = registry.take_token_changes()
    assert (first.added, first.removed) == ({"t1", "t2"}, frozenset())
    assert not registry.take_token_changes()

    registry.remove("a")
    fired = registry.apply_price("t2", TriggerSource.MIDPOINT, Decimal("0.39")).fired
    assert [r.id for r in fired] == ["c"]
    assert not registry.take_token_changes()  # "b" holds t1; "c" is in flight on t2

    registry.finish("c")
    registry.remove("b")
    last = registry.take_token_changes()
    assert (last.added, last.removed) == (frozenset(), {"t1", "t2"})
    assert registry.tokens() == frozenset()


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["upsert", "remove", "fire", "finish", "cool", "rearm", "sync"]),
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(["t1", "t2", "t3"]),
            st.sampled_from(["0.30", "0.50", "0.70"]),
        ),
        max_size=30,
    )
)
def test_token_changes_always_add_up_to_the_tokens_of_every_rule_held(
    steps: list[tuple[str, str, str, str]],
) -> None:
    registry = RuleRegistry()
    reported: set[str] = set()
    token_of: dict[str, str] = {}  # rules in flight or cooling all left the index by firing
    until = NOW + timedelta(seconds=5)
    for action, rule_id, token_id, trigger in steps:
        if action == "upsert":
            registry.upsert(rule(rule_id, trigger, token_id=token_id))
        elif action == "remove":
            registry.remove(rule_id)
        elif action == "fire":
            for fired in registry.apply_price(
                token_id, TriggerSource.MIDPOINT, Decimal(trigger)
            ).fired:
                token_of[fired.id] = fired.token_id
        elif action == "finish":
            registry.finish(rule_id)
        elif action == "cool":
            registry.cool(rule_id, until)
        elif action == "rearm":
            registry.rearm(rule_id, until)
        else:
            registry.sync([rule(rule_id, trigger, token_id=token_id)], registry.seq, NOW)
        changes = registry.take_token_changes()
        assert not changes.added & changes.removed
        reported = (reported - changes.removed) | changes.added
        held = {r.token_id for r in registry.watched()}
        held.update(token_of[r] for r in registry.in_flight)
        held.update(token_of[r] for r, _ in registry.due(NOW + timedelta(days=1)))
        assert reported == registry.tokens() == held


def test_rules_share_equal_values_read_separately() -> None:
    registry = RuleRegistry()
    token = "".join(["to", "ken"])
    other = "".join(["tok", "en"])
    assert token is not other
    registry.upsert(rule("a", "0.40", token_id=token))
    registry.upsert(rule("b", "0.40", token_id=other))

    a, b = registry.index.get("a"), registry.index.get("b")

    assert a is not None and b is not None
    assert a.token_id is b.token_id
    assert a.trigger_price is b.trigger_price
    assert a.action is b.action
    assert a == rule("a", "0.40", token_id="token")
