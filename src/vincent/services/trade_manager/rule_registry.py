"""The worker's in-memory rule state: the index, rules in flight or cooling down. No I/O.

A rule is in exactly one place: the ``RuleIndex`` (watched), ``in_flight`` (fired, being
executed) or ``cooling`` (a transient failure; watched again after its retry time). The
API's changes arrive through ``upsert``/``remove`` and are stamped with a sequence number so
the poll tick's database snapshot, read earlier, never overwrites a newer in-process change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_index import PriceOutcome, RuleIndex
from vincent.services.trade_manager.types import RuleSnapshot


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a database sync changed; ``cooled`` rules need a re-arm at their retry time."""

    upserted: int = 0
    removed: int = 0
    cooled: tuple[RuleSnapshot, ...] = ()


class RuleRegistry:
    """Owns the ``RuleIndex`` and the rules outside it that the worker still tracks."""

    __slots__ = ("_change_seq", "_cooling", "_in_flight", "_persisted", "_seq", "index")

    def __init__(self) -> None:
        self.index = RuleIndex()
        self._in_flight: dict[str, RuleSnapshot] = {}
        self._cooling: dict[str, RuleSnapshot] = {}
        self._seq = 0
        self._change_seq: dict[str, int] = {}
        # The trigger the database is known to hold, per rule: tells a trailing raise kept
        # in memory from a change made by someone else.
        self._persisted: dict[str, Decimal] = {}

    @property
    def seq(self) -> int:
        """The sequence number of the latest in-process change."""
        return self._seq

    @property
    def in_flight(self) -> frozenset[str]:
        return frozenset(self._in_flight)

    @property
    def cooling_count(self) -> int:
        return len(self._cooling)

    def tokens(self) -> frozenset[str]:
        """Tokens the feed must watch: indexed, in-flight and cooling rules' tokens."""
        extra = {r.token_id for r in self._in_flight.values()}
        extra.update(r.token_id for r in self._cooling.values())
        return self.index.tokens() | extra if extra else self.index.tokens()

    def watched(self) -> list[RuleSnapshot]:
        """Every rule in the index."""
        index = self.index
        return [rule for token in index.tokens() for rule in index.rules_for_token(token)]

    def upsert(self, rule: RuleSnapshot) -> bool:
        """Take an in-process change (API). Return False when the rule is being executed."""
        self._stamp(rule.id)
        self._persisted[rule.id] = rule.trigger_price
        self._cooling.pop(rule.id, None)
        if rule.id in self._in_flight:
            return False
        self.index.upsert(rule)
        return True

    def remove(self, rule_id: str) -> None:
        """Take an in-process removal (API cancel)."""
        self._stamp(rule_id)
        self._cooling.pop(rule_id, None)
        self._persisted.pop(rule_id, None)
        self.index.remove(rule_id)

    def apply_price(self, token_id: str, source: TriggerSource, price: Decimal) -> PriceOutcome:
        """Apply a price; fired rules move to ``in_flight``."""
        outcome = self.index.apply_price(token_id, source, price)
        for rule in outcome.fired:
            self._in_flight[rule.id] = rule
        return outcome

    def finish(self, rule_id: str) -> None:
        """An execution ended with the rule leaving ACTIVE (or settled elsewhere)."""
        self._in_flight.pop(rule_id, None)
        self._persisted.pop(rule_id, None)

    def cool(self, rule_id: str, until: datetime) -> RuleSnapshot | None:
        """An execution ended transiently: hold the rule until ``until``."""
        rule = self._in_flight.pop(rule_id, None)
        if rule is None:
            return None
        rule = replace(rule, ts_next_attempt=until)
        self._cooling[rule_id] = rule
        return rule

    def rearm(self, rule_id: str, until: datetime) -> RuleSnapshot | None:
        """Put a cooled rule back in the index, if it is still the same cooling period."""
        rule = self._cooling.get(rule_id)
        if rule is None or rule.ts_next_attempt != until:
            return None
        del self._cooling[rule_id]
        self.index.upsert(rule)
        return rule

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """Cooled rules whose retry time has come: (rule id, the cooling period's end)."""
        return [
            (rule_id, rule.ts_next_attempt)
            for rule_id, rule in self._cooling.items()
            if rule.ts_next_attempt is not None and rule.ts_next_attempt <= now
        ]

    def mark_persisted(self, levels: dict[str, Decimal]) -> None:
        self._persisted.update(levels)

    def sync(self, active: Iterable[RuleSnapshot], seq_before: int, now: datetime) -> SyncResult:
        """Make the index agree with the ACTIVE rules read from the database.

        ``seq_before`` is ``seq`` as it was before the read: rules changed in process since
        then are left alone, as are rules being executed.
        """
        upserted = removed = 0
        cooled: list[RuleSnapshot] = []
        seen: set[str] = set()
        for rule in active:
            seen.add(rule.id)
            if rule.id in self._in_flight or self._change_seq.get(rule.id, 0) > seq_before:
                continue
            current = self.index.get(rule.id)
            if current is None:
                current = self._cooling.get(rule.id)
            stored = rule.trigger_price
            if (
                current is not None
                and rule.rule_type is TradeRuleType.TRAILING_STOP
                and self._persisted.get(rule.id) == stored
            ):
                # Nobody else moved it: keep the raise we hold in memory (flushed later).
                rule = replace(rule, trigger_price=current.trigger_price)
            self._persisted[rule.id] = stored
            if rule.ts_next_attempt is not None and rule.ts_next_attempt > now:
                if self._cooling.get(rule.id) != rule:
                    self.index.remove(rule.id)
                    self._cooling[rule.id] = rule
                    cooled.append(rule)
                continue
            if rule.id in self._cooling:
                continue  # its re-arm is scheduled
            if current != rule:
                self.index.upsert(rule)
                upserted += 1
        stale = [
            rule.id
            for rule in self.watched()
            if rule.id not in seen and self._change_seq.get(rule.id, 0) <= seq_before
        ]
        stale.extend(
            rule_id
            for rule_id in self._cooling
            if rule_id not in seen and self._change_seq.get(rule_id, 0) <= seq_before
        )
        for rule_id in stale:
            self.index.remove(rule_id)
            self._cooling.pop(rule_id, None)
            self._persisted.pop(rule_id, None)
            removed += 1
        # Stamps at or before the read can never matter again: later reads start after them.
        self._change_seq = {k: v for k, v in self._change_seq.items() if v > seq_before}
        return SyncResult(upserted=upserted, removed=removed, cooled=tuple(cooled))

    def _stamp(self, rule_id: str) -> None:
        self._seq += 1
        self._change_seq[rule_id] = self._seq
