"""``RuleRegistry.apply_changes`` (the delta sync) against ``RuleRegistry.sync`` (the full
sync). Pure: no I/O.

The property: two registries take the same in-process changes (API edits and cancels,
fires, executions ending, re-arms, trailing flushes); one is synced with every ACTIVE row,
the other with only the rows written since its previous read (plus the rows it left alone
then, plus some unchanged rows, as the overlap re-reads). After every step they hold the
same rules in the same places. Reads may race with an in-process change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
IDS = ("a", "b", "c", "d", "e")
TOKENS = ("t1", "t2")
PRICES = ("0.30", "0.45", "0.55", "0.70")
KINDS = (TradeRuleType.STOP_LOSS, TradeRuleType.TAKE_PROFIT, TradeRuleType.TRAILING_STOP)
ACTIVE = TradeRuleStatus.ACTIVE


def new_rule(
    rule_id: str, token_id: str, trigger: str, kind: TradeRuleType, group: str | None
) -> RuleSnapshot:
    return RuleSnapshot(
        id=rule_id,
        secret_id="s",
        rule_type=kind,
        market_id="m",
        token_id=token_id,
        trigger_price=Decimal(trigger),
        trailing_percent=Decimal(10) if kind is TradeRuleType.TRAILING_STOP else None,
        action=RuleAction(ActionType.SELL_ALL),
        oco_group_id=group,
    )


@dataclass
class Database:
    """The rows, each with the logical time of its last write (its ``updated_at``)."""

    rows: dict[str, RuleSnapshot] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    time: int = 0

    def write(self, rule: RuleSnapshot) -> None:
        self.time += 1
        self.rows[rule.id] = rule
        self.written[rule.id] = self.time

    def active(self) -> list[RuleSnapshot]:
        return [r for r in self.rows.values() if r.status is ACTIVE]

    def changed_since(self, time: int) -> list[RuleSnapshot]:
        return [self.rows[i] for i, t in self.written.items() if t > time]


@dataclass
class Read:
    seq_before: tuple[int, int]
    time: int
    full_rows: list[RuleSnapshot]
    delta_rows: list[RuleSnapshot]


class World:
    def __init__(self) -> None:
        self.db = Database()
        self.full = RuleRegistry()
        self.delta = RuleRegistry()
        self.now = START
        self.watermark = -1  # the delta registry has read nothing yet
        self.reread: set[str] = set()

    @property
    def both(self) -> tuple[RuleRegistry, RuleRegistry]:
        return self.full, self.delta

    # ---- reads (the poll tick)

    def read(self, extra: list[str]) -> Read:
        db = self.db
        rows = {r.id: r for r in db.changed_since(self.watermark)}
        for rule_id in (*self.reread, *extra):  # left alone last time; the overlap
            if rule_id in db.rows:
                rows[rule_id] = db.rows[rule_id]
        return Read((self.full.seq, self.delta.seq), db.time, db.active(), list(rows.values()))

    def apply(self, read: Read) -> None:
        self.full.sync(read.full_rows, read.seq_before[0], self.now)
        result = self.delta.apply_changes(read.delta_rows, read.seq_before[1], self.now)
        self.delta.forget_stamps(read.seq_before[1])
        self.watermark = read.time
        self.reread = set(result.deferred)

    # ---- other processes' writes

    def db_create(
        self, rule_id: str, token_id: str, trigger: str, kind: int, grouped: bool
    ) -> None:
        if rule_id not in self.db.rows:
            group = "g" if grouped else None
            self.db.write(new_rule(rule_id, token_id, trigger, KINDS[kind], group))

    def db_edit(self, rule_id: str, trigger: str) -> RuleSnapshot | None:
        row = self.db.rows.get(rule_id)
        if row is None or row.status is not ACTIVE:
            return None
        row = replace(row, trigger_price=Decimal(trigger))
        self.db.write(row)
        return row

    def db_cancel(self, rule_id: str) -> bool:
        row = self.db.rows.get(rule_id)
        if row is None or row.status is not ACTIVE:
            return False
        self.db.write(replace(row, status=TradeRuleStatus.CANCELED, oco_paused_by=None))
        return True

    # ---- this process's changes (written first, then told to the registries)

    def api_edit(self, rule_id: str, trigger: str) -> None:
        row = self.db_edit(rule_id, trigger)
        if row is not None:
            for registry in self.both:
                registry.upsert(row)

    def api_cancel(self, rule_id: str) -> None:
        if self.db_cancel(rule_id):
            for registry in self.both:
                registry.remove(rule_id)

    def fire(self, token_id: str, price: str) -> None:
        outcomes = [
            registry.apply_price(token_id, TriggerSource.MIDPOINT, Decimal(price))
            for registry in self.both
        ]
        fired = [[r.id for r in outcome.fired] for outcome in outcomes]
        assert fired[0] == fired[1]
        for rule_id in fired[0]:  # the claim: TRIGGERED, its ACTIVE siblings paused
            row = self.db.rows[rule_id]
            if row.status is not ACTIVE:
                continue
            self.db.write(replace(row, status=TradeRuleStatus.TRIGGERED))
            for other in list(self.db.rows.values()):
                if (
                    other.id != rule_id
                    and row.oco_group_id is not None
                    and other.oco_group_id == row.oco_group_id
                    and other.status is ACTIVE
                ):
                    self.db.write(replace(other, oco_paused_by=rule_id))

    def sold(self, rule_id: str) -> None:
        if rule_id not in self.full.in_flight:
            return
        self.db.write(replace(self.db.rows[rule_id], status=TradeRuleStatus.TRIGGERED))
        for other in list(self.db.rows.values()):
            if other.oco_paused_by == rule_id and other.status is ACTIVE:
                self.db.write(replace(other, status=TradeRuleStatus.CANCELED, oco_paused_by=None))
        for registry in self.both:
            registry.finish(rule_id)
            registry.settle_group(rule_id)

    def cool(self, rule_id: str) -> None:
        if rule_id not in self.full.in_flight:
            return
        until = self.now + timedelta(seconds=2)
        row = self.db.rows[rule_id]
        self.db.write(replace(row, status=ACTIVE, ts_next_attempt=until))
        for other in list(self.db.rows.values()):
            if other.oco_paused_by == rule_id:
                self.db.write(replace(other, oco_paused_by=None))
        for registry in self.both:
            registry.cool(rule_id, until)
            registry.release_group(rule_id)

    def rearm_due(self) -> None:
        due = self.full.due(self.now)
        assert due == self.delta.due(self.now)
        for rule_id, until in due:
            for registry in self.both:
                registry.rearm(rule_id, until)

    def flush(self) -> None:
        """The trailing flush: raise the stored levels to the ones held, then say so."""
        levels = {}
        for rule in self.full.watched():
            row = self.db.rows.get(rule.id)
            if (
                row is not None
                and row.status is ACTIVE
                and row.rule_type is TradeRuleType.TRAILING_STOP
                and row.trigger_price < rule.trigger_price
            ):
                self.db.write(replace(row, trigger_price=rule.trigger_price))
                levels[rule.id] = rule.trigger_price
        for registry in self.both:
            registry.mark_persisted(levels)

    def tick_clock(self) -> None:
        self.now += timedelta(seconds=1)


def state(registry: RuleRegistry) -> tuple[object, ...]:
    held = sorted(registry.held(), key=lambda r: r.id)
    paused = sorted(r.id for r in held if registry.paused(r.id) is not None)
    cooling = sorted(registry.due(START + timedelta(days=1)))
    watched = sorted(registry.watched(), key=lambda r: r.id)
    return (watched, held, paused, cooling, registry.in_flight, registry.tokens())


rule_ids = st.sampled_from(IDS)
prices = st.sampled_from(PRICES)
in_process = st.one_of(
    st.tuples(st.just("api_edit"), rule_ids, prices),
    st.tuples(st.just("api_cancel"), rule_ids),
    st.tuples(st.just("fire"), st.sampled_from(TOKENS), prices),
    st.tuples(st.just("sold"), rule_ids),
    st.tuples(st.just("cool"), rule_ids),
    st.tuples(st.just("rearm_due")),
    st.tuples(st.just("flush")),
)
elsewhere = st.one_of(
    st.tuples(
        st.just("db_create"),
        rule_ids,
        st.sampled_from(TOKENS),
        prices,
        st.integers(0, len(KINDS) - 1),
        st.booleans(),
    ),
    st.tuples(st.just("db_edit"), rule_ids, prices),
    st.tuples(st.just("db_cancel"), rule_ids),
    st.tuples(st.just("tick_clock")),
)
extra_rows = st.lists(rule_ids, max_size=3)
syncs = st.one_of(
    st.tuples(st.just("sync"), extra_rows),
    st.tuples(st.just("racing_sync"), extra_rows, in_process),
)


@settings(deadline=None, max_examples=400)
@given(st.lists(st.one_of(in_process, elsewhere, syncs), max_size=40))
def test_delta_syncs_hold_what_full_syncs_hold(steps: list[tuple[object, ...]]) -> None:
    world = World()
    for step in steps:
        name, *args = step
        if name == "sync":
            world.apply(world.read(list(args[0])))  # type: ignore[arg-type]
        elif name == "racing_sync":
            read = world.read(list(args[0]))  # type: ignore[arg-type]
            change = args[1]
            assert isinstance(change, tuple)
            getattr(world, change[0])(*change[1:])  # lands while the read is running
            world.apply(read)
        else:
            getattr(world, str(name))(*args)
        assert state(world.full) == state(world.delta)
    # And once everything settles, both agree with the database.
    world.apply(world.read([]))
    world.apply(world.read([]))
    assert state(world.full) == state(world.delta)


def test_a_rule_leaving_active_is_dropped_and_one_in_flight_is_deferred() -> None:
    registry = RuleRegistry()
    a = new_rule("a", "t1", "0.40", TradeRuleType.STOP_LOSS, None)
    b = new_rule("b", "t2", "0.40", TradeRuleType.STOP_LOSS, None)
    registry.apply_changes([a, b], registry.seq, START)
    assert registry.tokens() == {"t1", "t2"}
    fired = registry.apply_price("t2", TriggerSource.MIDPOINT, Decimal("0.39")).fired
    assert [r.id for r in fired] == ["b"]

    result = registry.apply_changes(
        [replace(a, status=TradeRuleStatus.CANCELED), replace(b, status=TradeRuleStatus.TRIGGERED)],
        registry.seq,
        START,
    )

    assert (result.removed, result.deferred) == (1, ("b",))
    assert registry.index.get("a") is None
    assert registry.in_flight == {"b"}
    assert registry.tokens() == {"t2"}


def test_a_delta_read_from_before_an_in_process_change_leaves_it_alone() -> None:
    registry = RuleRegistry()
    a = new_rule("a", "t1", "0.40", TradeRuleType.STOP_LOSS, None)
    registry.apply_changes([a], registry.seq, START)
    seq_before = registry.seq
    registry.upsert(replace(a, trigger_price=Decimal("0.30")))  # the API, during the read

    result = registry.apply_changes([a], seq_before, START)

    assert result.deferred == ("a",)
    watched = registry.index.get("a")
    assert watched is not None
    assert watched.trigger_price == Decimal("0.30")
    # Rules not in a delta are not touched, whatever the database holds for them.
    registry.apply_changes([], registry.seq, START)
    assert registry.index.get("a") == watched


def test_finish_and_cool_protect_against_a_read_from_before_them() -> None:
    registry = RuleRegistry()
    a = new_rule("a", "t1", "0.40", TradeRuleType.STOP_LOSS, None)
    b = new_rule("b", "t1", "0.40", TradeRuleType.STOP_LOSS, None)
    registry.sync([a, b], registry.seq, START)
    registry.apply_price("t1", TriggerSource.MIDPOINT, Decimal("0.39"))
    assert registry.in_flight == {"a", "b"}
    seq_before = registry.seq  # the read sees both ACTIVE (claims not committed yet)
    registry.finish("a")  # sold
    registry.cool("b", START + timedelta(seconds=5))  # transient failure, retried later

    registry.sync([a, b], seq_before, START)

    assert registry.index.get("a") is None  # never watched again from the stale read
    assert registry.cooling_count == 1
    assert registry.index.get("b") is None
