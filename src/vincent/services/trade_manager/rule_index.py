"""Hold every ACTIVE rule in memory, ordered by trigger per (token, trigger source). No I/O.

A price touches only the rules it crosses: lists sorted by (price, rule id) are cut with
bisect, never scanned. Stops and trailing stops fire when ``trigger >= price``, take-profits
when ``trigger <= price``. Trailing stops are also ordered by the lowest price that would
raise their trigger (``trailing.ratchet_threshold``), so a ratchet touches only the stops the
price raises. Crossed rules are removed as they are reported: a rule never fires twice from
the index. The caller re-inserts a rule (``upsert``) when it must be watched again, e.g. after
a transient execution error once its retry delay has passed. Dormant trailing stops (an
activation price not yet reached) wait in their own list, ordered by activation price: they
neither fire nor ratchet until a price reaches it. A rule paused by its OCO group is not
watched at all (``upsert`` leaves it out).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, KeysView
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple, cast

from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.trailing import (
    RATCHET_STEPS,
    activation_trigger,
    step_at,
    trail_ratchet,
    trail_threshold,
)
from vincent.services.trade_manager.types import RuleSnapshot

# Sorts after any rule id (ids are ASCII), so (price, _AFTER_ANY_ID) follows every entry at
# that price.
_AFTER_ANY_ID = "\U0010ffff"

_Entry = tuple[Decimal, str]


class PriceOutcome(NamedTuple):
    """What one price did: rules to execute (already removed) and trailing stops raised.

    A trailing stop raised and crossed by the same price is in both, raised first, as in the
    seed. Every snapshot already carries its new trigger. ``activated`` names the dormant
    stops this price woke (they are in ``ratcheted`` too: their trigger and activation must
    be stored even when the trigger did not rise). A ``NamedTuple``: most price events
    raise a trailing stop and build one, at a third of a frozen dataclass's cost.
    """

    fired: tuple[RuleSnapshot, ...] = ()
    ratcheted: tuple[RuleSnapshot, ...] = ()
    activated: frozenset[str] = frozenset()


_NOTHING = PriceOutcome()
# What ``apply_price`` returns, this very object, when a price raises, wakes and fires
# nothing (most prices): the caller may test identity instead of reading the fields.
NO_OUTCOME = _NOTHING
_NO_IDS: frozenset[str] = frozenset()
# Built by ``tuple.__new__`` itself, without ``_make``'s Python frame (given the fields in
# order only).
_new_outcome = cast(Callable[[tuple[Any, ...]], PriceOutcome], partial(tuple.__new__, PriceOutcome))
_NONE: list[RuleSnapshot] = []  # never appended to: a shared "no rules"


class _Bucket:
    """The rules of one (token, trigger source)."""

    __slots__ = ("dormant", "falling", "rising", "trailing")

    def __init__(self) -> None:
        # STOP_LOSS and TRAILING_STOP by trigger: a price fires the tail (trigger >= price).
        self.falling: list[_Entry] = []
        # TAKE_PROFIT by trigger: a price fires the head (trigger <= price).
        self.rising: list[_Entry] = []
        # TRAILING_STOP by ratchet threshold: a price raises the head (threshold <= price).
        self.trailing: list[_Entry] = []
        # Dormant TRAILING_STOP by activation price: a price wakes the head (activation <= price).
        self.dormant: list[_Entry] = []

    def __bool__(self) -> bool:
        return bool(self.falling or self.rising or self.dormant)


class RuleIndex:
    """The ACTIVE rules, answering "which rules does this price fire or raise?"."""

    __slots__ = ("_by_token", "_rules")

    def __init__(self) -> None:
        self._rules: dict[str, RuleSnapshot] = {}
        self._by_token: dict[str, dict[TriggerSource, _Bucket]] = {}

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def get(self, rule_id: str) -> RuleSnapshot | None:
        return self._rules.get(rule_id)

    def ids(self) -> KeysView[str]:
        """The ids of the rules indexed (a live view: copy it before changing the index)."""
        return self._rules.keys()

    def tokens(self) -> frozenset[str]:
        """Return the token ids that have at least one rule."""
        return frozenset(self._by_token)

    def sources(self, token_id: str) -> tuple[TriggerSource, ...]:
        """Return the trigger sources the token's rules watch."""
        return tuple(self._by_token.get(token_id, ()))

    def rules_for_token(self, token_id: str) -> tuple[RuleSnapshot, ...]:
        rules: list[RuleSnapshot] = []
        for bucket in self._by_token.get(token_id, {}).values():
            rules.extend(self._rules[rule_id] for _, rule_id in bucket.falling)
            rules.extend(self._rules[rule_id] for _, rule_id in bucket.rising)
            rules.extend(self._rules[rule_id] for _, rule_id in bucket.dormant)
        return tuple(rules)

    def upsert(self, rule: RuleSnapshot) -> None:
        """Insert or replace ``rule``. A rule that is not ACTIVE is removed instead."""
        self.remove(rule.id)
        if rule.status is not TradeRuleStatus.ACTIVE or rule.oco_paused_by is not None:
            return
        self._rules[rule.id] = rule
        bucket = self._by_token.setdefault(rule.token_id, {}).get(rule.trigger_source)
        if bucket is None:
            bucket = self._by_token[rule.token_id][rule.trigger_source] = _Bucket()
        entry = (rule.trigger_price, rule.id)
        if rule.rule_type is TradeRuleType.TAKE_PROFIT:
            insort(bucket.rising, entry)
            return
        if rule.dormant:
            assert rule.activation_price is not None
            insort(bucket.dormant, (rule.activation_price, rule.id))
            return
        insort(bucket.falling, entry)
        threshold = _threshold(rule)
        if threshold is not None:
            insort(bucket.trailing, (threshold, rule.id))

    def remove(self, rule_id: str) -> RuleSnapshot | None:
        """Remove a rule; return it, or None when it was not in the index."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return None
        sources = self._by_token[rule.token_id]
        bucket = sources[rule.trigger_source]
        entry = (rule.trigger_price, rule.id)
        if rule.rule_type is TradeRuleType.TAKE_PROFIT:
            _delete(bucket.rising, entry)
        elif rule.dormant:
            assert rule.activation_price is not None
            _delete(bucket.dormant, (rule.activation_price, rule.id))
        else:
            _delete(bucket.falling, entry)
            self._forget_threshold(bucket, rule)
        self._drop_if_empty(rule.token_id, sources, rule.trigger_source, bucket)
        return rule

    def apply_price(self, token_id: str, source: TriggerSource, price: Decimal) -> PriceOutcome:
        """Apply one price: wake the dormant stops it reaches, raise the trailing stops it
        lifts, then fire every rule it crosses."""
        sources = self._by_token.get(token_id)
        if sources is None:
            return _NOTHING
        bucket = sources.get(source)
        if bucket is None:
            return _NOTHING
        # Each step tests its list's head first: most prices wake, raise and fire nothing.
        dormant = bucket.dormant
        activated = self._activate(bucket, price) if dormant and dormant[0][0] <= price else _NONE
        trailing = bucket.trailing
        ratcheted = self._ratchet(bucket, price) if trailing and trailing[0][0] <= price else _NONE
        falling = bucket.falling
        rising = bucket.rising
        if (falling and falling[-1][0] >= price) or (rising and rising[0][0] <= price):
            fired = self._fire(bucket, price)
            self._drop_if_empty(token_id, sources, source, bucket)
        elif ratcheted or activated:
            # Woken and raised stops stay in ``falling``: the bucket is not empty.
            fired = ()
        else:
            return _NOTHING
        if activated:
            woken = frozenset(rule.id for rule in activated)
            # An activated stop raised again by the same price is reported once, raised.
            raised = {rule.id for rule in ratcheted}
            stored = [self._current(rule) for rule in activated if rule.id not in raised]
            return PriceOutcome(fired=fired, ratcheted=(*stored, *ratcheted), activated=woken)
        return _new_outcome((fired, tuple(ratcheted), _NO_IDS))

    def _fire(self, bucket: _Bucket, price: Decimal) -> tuple[RuleSnapshot, ...]:
        """Remove and return the rules ``price`` crosses."""
        fired: list[RuleSnapshot] = []
        falling = bucket.falling
        if falling and falling[-1][0] >= price:
            start = bisect_left(falling, (price,))
            for _, rule_id in falling[start:]:
                rule = self._rules.pop(rule_id)
                self._forget_threshold(bucket, rule)
                fired.append(rule)
            del falling[start:]
        rising = bucket.rising
        if rising and rising[0][0] <= price:
            end = bisect_right(rising, (price, _AFTER_ANY_ID))
            fired.extend(self._rules.pop(rule_id) for _, rule_id in rising[:end])
            del rising[:end]
        return tuple(fired)

    def _current(self, rule: RuleSnapshot) -> RuleSnapshot:
        # A rule activated and fired by one price is no longer held: report it as woken.
        return self._rules.get(rule.id, rule)

    def _activate(self, bucket: _Bucket, price: Decimal) -> list[RuleSnapshot]:
        dormant = bucket.dormant
        end = bisect_right(dormant, (price, _AFTER_ANY_ID))
        woken: list[RuleSnapshot] = []
        for _, rule_id in dormant[:end]:
            rule = self._rules[rule_id]
            trigger = activation_trigger(
                rule.trigger_price, price, rule.trailing_percent, rule.trailing_amount
            )
            rule = rule.with_trigger_price(trigger, activated=True)
            self._rules[rule_id] = rule
            insort(bucket.falling, (trigger, rule_id))
            threshold = _threshold(rule)
            if threshold is not None:
                insort(bucket.trailing, (threshold, rule_id))
            woken.append(rule)
        del dormant[:end]
        return woken

    def _ratchet(self, bucket: _Bucket, price: Decimal) -> list[RuleSnapshot]:
        trailing = bucket.trailing
        end = bisect_right(trailing, (price, _AFTER_ANY_ID))
        touched = trailing[:end]
        del trailing[:end]
        rules = self._rules
        falling = bucket.falling
        steps = RATCHET_STEPS
        raised: list[RuleSnapshot] = []
        for entry in touched:
            rule_id = entry[1]
            rule = rules[rule_id]
            trigger = rule.trigger_price
            percent, amount = rule.trailing_percent, rule.trailing_amount
            # The percent trail in one lookup, inline (``trailing.ratchet_step``): the
            # common case, on the hot path.
            if amount is None and percent is not None:
                step = steps.get((price, percent))
                if step is None:
                    step = step_at(price, percent)
                new_trigger, threshold = step
                if not new_trigger > trigger:
                    # Only a price in the rounding sliver below the true threshold gets here.
                    insort(trailing, entry)
                    continue
            else:
                raised_to = trail_ratchet(trigger, price, percent, amount)
                if raised_to is None:
                    insort(trailing, entry)
                    continue
                new_trigger = raised_to
                threshold = trail_threshold(new_trigger, percent, amount)
            # Moved up in ``falling``: the new entry sorts after the old one, so the search
            # starts where the old one was.
            insort(falling, (new_trigger, rule_id), _delete(falling, (trigger, rule_id)))
            rule = rule.with_trigger_price(new_trigger)
            rules[rule_id] = rule
            if threshold is not None:
                insort(trailing, (threshold, rule_id))
            raised.append(rule)
        return raised

    def _forget_threshold(self, bucket: _Bucket, rule: RuleSnapshot) -> None:
        threshold = _threshold(rule)
        if threshold is not None:
            _delete(bucket.trailing, (threshold, rule.id))

    def _drop_if_empty(
        self,
        token_id: str,
        sources: dict[TriggerSource, _Bucket],
        source: TriggerSource,
        bucket: _Bucket,
    ) -> None:
        if bucket:
            return
        del sources[source]
        if not sources:
            del self._by_token[token_id]


def _threshold(rule: RuleSnapshot) -> Decimal | None:
    if rule.rule_type is not TradeRuleType.TRAILING_STOP or rule.dormant:
        return None
    return trail_threshold(rule.trigger_price, rule.trailing_percent, rule.trailing_amount)


def _delete(entries: list[_Entry], entry: _Entry) -> int:
    """Remove ``entry``; return where it was."""
    index = bisect_left(entries, entry)
    if index == len(entries) or entries[index] != entry:
        # Our own state is broken: fail loudly rather than fire a rule twice or never.
        raise AssertionError(f"rule index entry missing: {entry!r}")
    del entries[index]
    return index
