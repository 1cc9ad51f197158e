"""The worker's in-memory rule state: the index, rules in flight or cooling down. No I/O.

A rule is in exactly one place: the ``RuleIndex`` (watched), ``in_flight`` (fired, being
executed), ``cooling`` (a transient failure; watched again after its retry time) or
``paused`` (an OCO sibling of a fired rule: settled or released with that rule). The
API's changes arrive through ``upsert``/``remove`` and are stamped with a sequence number so
the poll tick's database snapshot, read earlier, never overwrites a newer in-process change.
It counts the rules it holds per token, so the feed hears only of tokens gained or lost.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from itertools import chain

from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_index import PriceOutcome, RuleIndex
from vincent.services.trade_manager.types import RuleAction, RuleSnapshot

# Shared values kept at most (prices, actions): past this the table starts again, which only
# costs later rules the sharing, never correctness.
_MAX_SHARED = 65_536


@dataclass(frozen=True, slots=True)
class TokenChanges:
    """Tokens that gained their first rule or lost their last since the previous call."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


_NO_TOKEN_CHANGES = TokenChanges()


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a database sync changed; ``cooled`` rules need a re-arm at their retry time."""

    upserted: int = 0
    removed: int = 0
    cooled: tuple[RuleSnapshot, ...] = ()
    # Rules read but left alone (being executed, changed in process since the read began,
    # or paused by a sibling being executed): read them again on the next sync.
    deferred: tuple[str, ...] = ()


class RuleRegistry:
    """Owns the ``RuleIndex`` and the rules outside it that the worker still tracks."""

    __slots__ = (
        "_actions",
        "_change_seq",
        "_cooling",
        "_decimals",
        "_in_flight",
        "_paused",
        "_persisted",
        "_rules_per_token",
        "_seq",
        "_token_changes",
        "index",
    )

    def __init__(self) -> None:
        self.index = RuleIndex()
        self._in_flight: dict[str, RuleSnapshot] = {}
        self._cooling: dict[str, RuleSnapshot] = {}
        # OCO siblings of a fired rule (``oco_paused_by`` names it): not watched meanwhile.
        self._paused: dict[str, RuleSnapshot] = {}
        self._seq = 0
        self._change_seq: dict[str, int] = {}
        # The trigger the database is known to hold, per trailing stop: tells a raise kept
        # in memory from a change made by someone else.
        self._persisted: dict[str, Decimal] = {}
        # Rules held (indexed, in flight or cooling) per token, and the tokens whose count
        # went to or from zero since ``take_token_changes`` (True: now held).
        self._rules_per_token: dict[str, int] = {}
        self._token_changes: dict[str, bool] = {}
        # One object per distinct price text and action, shared by every rule holding it.
        self._decimals: dict[str, Decimal] = {}
        self._actions: dict[tuple[str, str], RuleAction] = {}

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

    def paused(self, rule_id: str) -> RuleSnapshot | None:
        """The rule, when an OCO sibling's execution pauses it."""
        return self._paused.get(rule_id)

    def tokens(self) -> frozenset[str]:
        """Tokens the feed must watch: indexed, in-flight and cooling rules' tokens."""
        return frozenset(self._rules_per_token)

    def take_token_changes(self) -> TokenChanges:
        """Return the tokens gained and lost since the last call (work per change, not per
        token held)."""
        if not self._token_changes:
            return _NO_TOKEN_CHANGES
        changes = self._token_changes
        self._token_changes = {}
        return TokenChanges(
            added=frozenset(token for token, held in changes.items() if held),
            removed=frozenset(token for token, held in changes.items() if not held),
        )

    def watched(self) -> list[RuleSnapshot]:
        """Every rule in the index."""
        index = self.index
        return [rule for token in index.tokens() for rule in index.rules_for_token(token)]

    def upsert(self, rule: RuleSnapshot) -> bool:
        """Take an in-process change (API). Return False when the rule is being executed."""
        self._stamp(rule.id)
        self._set_persisted(rule, rule.trigger_price)
        if rule.id in self._in_flight:
            self._drop_cooling(rule.id)
            return False
        paused = self._paused.get(rule.id)
        if paused is not None and paused.oco_paused_by in self._in_flight:
            # Its sibling's execution holds it: a snapshot read before that claim (a late
            # notification) must not make it watched; the execution's outcome decides.
            self._paused[rule.id] = replace(
                self._compact(rule), oco_paused_by=paused.oco_paused_by, ts_next_attempt=None
            )
            return False
        self._index(rule)
        return True

    def remove(self, rule_id: str) -> None:
        """Take an in-process removal (API cancel)."""
        self._stamp(rule_id)
        self._drop_cooling(rule_id)
        self._persisted.pop(rule_id, None)
        self._unindex(rule_id)

    def apply_price(self, token_id: str, source: TriggerSource, price: Decimal) -> PriceOutcome:
        """Apply a price; fired rules move to ``in_flight``, their OCO siblings to ``paused``.

        Of the rules of one group crossed by one price, only the first fires.
        """
        outcome = self.index.apply_price(token_id, source, price)
        if not outcome.fired:
            return outcome
        fired: list[RuleSnapshot] = []
        for rule in outcome.fired:
            if rule.id in self._paused:
                continue  # a sibling fired just before it, by the same price
            self._in_flight[rule.id] = rule
            fired.append(rule)
            if rule.oco_group_id is not None:
                self._pause_group(rule, outcome.fired)
        if len(fired) == len(outcome.fired):
            return outcome
        return outcome._replace(fired=tuple(fired))

    def _pause_group(self, fired: RuleSnapshot, batch: tuple[RuleSnapshot, ...]) -> None:
        # Siblings held anywhere but in flight: indexed, cooling, or crossed by this price.
        candidates = [*self.index.rules_for_token(fired.token_id), *batch]
        candidates.extend(r for r in self._cooling.values() if r.token_id == fired.token_id)
        for rule in candidates:
            if (
                rule.id == fired.id
                or rule.oco_group_id != fired.oco_group_id
                or rule.secret_id != fired.secret_id
                or rule.id in self._in_flight
                or rule.id in self._paused
            ):
                continue
            # Moved, not dropped: the token's rule count does not change.
            self.index.remove(rule.id)
            self._cooling.pop(rule.id, None)
            self._stamp(rule.id)
            self._paused[rule.id] = replace(rule, oco_paused_by=fired.id, ts_next_attempt=None)

    def held(self) -> list[RuleSnapshot]:
        """Every rule watched, cooling or paused (not the ones being executed)."""
        return [*self.watched(), *self._cooling.values(), *self._paused.values()]

    def retire_token(self, token_id: str) -> list[RuleSnapshot]:
        """The token's market ended: stop holding its rules (in flight ones finish alone)."""
        rules = [
            *self.index.rules_for_token(token_id),
            *(r for r in self._cooling.values() if r.token_id == token_id),
            *(r for r in self._paused.values() if r.token_id == token_id),
        ]
        for rule in rules:
            self.remove(rule.id)
        return rules

    def release_group(self, fired_rule_id: str) -> list[RuleSnapshot]:
        """The fired rule ended without a sell: its paused siblings are watched again."""
        released = []
        for rule in [r for r in self._paused.values() if r.oco_paused_by == fired_rule_id]:
            del self._paused[rule.id]
            self._stamp(rule.id)
            rule = replace(rule, oco_paused_by=None)
            self.index.upsert(rule)
            if rule.id in self.index:
                released.append(rule)
            else:
                self._count(rule.token_id, -1)
        return released

    def settle_group(self, fired_rule_id: str) -> list[str]:
        """The fired rule sold: its paused siblings are CANCELED (in the database already)."""
        settled = [r for r in self._paused.values() if r.oco_paused_by == fired_rule_id]
        for rule in settled:
            del self._paused[rule.id]
            self._stamp(rule.id)
            self._persisted.pop(rule.id, None)
            self._count(rule.token_id, -1)
        return [rule.id for rule in settled]

    def finish(self, rule_id: str) -> None:
        """An execution ended with the rule leaving ACTIVE (or settled elsewhere)."""
        rule = self._in_flight.pop(rule_id, None)
        self._stamp(rule_id)  # a read from before (the rule ACTIVE) must not watch it again
        self._persisted.pop(rule_id, None)
        if rule is not None:
            self._count(rule.token_id, -1)

    def cool(self, rule_id: str, until: datetime) -> RuleSnapshot | None:
        """An execution ended transiently: hold the rule until ``until``."""
        rule = self._in_flight.pop(rule_id, None)
        if rule is None:
            return None
        self._stamp(rule_id)  # a read from before (the rule TRIGGERED) must not drop it
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
        if rule_id not in self.index:
            self._count(rule.token_id, -1)
        return rule

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """Cooled rules whose retry time has come: (rule id, the cooling period's end)."""
        return [
            (rule_id, rule.ts_next_attempt)
            for rule_id, rule in self._cooling.items()
            if rule.ts_next_attempt is not None and rule.ts_next_attempt <= now
        ]

    def mark_persisted(self, levels: dict[str, Decimal]) -> None:
        """Trailing levels a flush has committed.

        Each rule is stamped like an in-process change: a sync whose read began before the
        commit saw the old level, and must not mistake it for someone else's change (that
        would lower the stop we hold to the level read).
        """
        for rule_id, level in levels.items():
            self._stamp(rule_id)
            self._persisted[rule_id] = level

    def forget_persisted(self) -> None:
        """Treat every trailing level held in memory as unconfirmed: the next ``sync`` takes
        the database's (a worker that lost leadership may not write its own)."""
        self._persisted.clear()

    def sync(self, active: Iterable[RuleSnapshot], seq_before: int, now: datetime) -> SyncResult:
        """Make the index agree with the ACTIVE rules read from the database.

        ``seq_before`` is ``seq`` as it was before the read: rules changed in process since
        then are left alone, as are rules being executed. The same as ``apply_changes`` of
        every ACTIVE rule, then ``drop_missing`` and ``forget_stamps``.
        """
        rules = list(active)
        result = self.apply_changes(rules, seq_before, now)
        removed = self.drop_missing({rule.id for rule in rules}, seq_before)
        self.forget_stamps(seq_before)
        return replace(result, removed=result.removed + removed)

    def apply_changes(
        self, changed: Iterable[RuleSnapshot], seq_before: int, now: datetime
    ) -> SyncResult:
        """Take rules read from the database in any status (the ones changed since the last
        read): an ACTIVE rule is watched, cooled or paused as it says, any other is dropped.

        The guarantees of ``sync``: a rule being executed, or changed in process since
        ``seq_before``, is left alone (and reported ``deferred``: read it again next time),
        as is a rule paused by a sibling being executed; a trailing level raised in memory is
        kept while the database still holds the level we know it holds. Rules not given are
        not touched. Safe to call in chunks, with the loop running in between.
        """
        upserted = removed = 0
        cooled: list[RuleSnapshot] = []
        deferred: list[str] = []
        for rule in changed:
            if rule.id in self._in_flight or self._change_seq.get(rule.id, 0) > seq_before:
                deferred.append(rule.id)
                continue
            if rule.status is not TradeRuleStatus.ACTIVE:
                if self._held(rule.id):
                    self._unindex(rule.id)
                    self._drop_cooling(rule.id)
                    removed += 1
                self._persisted.pop(rule.id, None)
                continue
            paused = self._paused.get(rule.id)
            if paused is not None and paused.oco_paused_by in self._in_flight:
                deferred.append(rule.id)
                continue  # its sibling's claim may not be committed yet
            current = self.index.get(rule.id)
            if current is None:
                current = self._cooling.get(rule.id) or paused
            stored = rule.trigger_price
            if (
                current is not None
                and rule.rule_type is TradeRuleType.TRAILING_STOP
                and self._persisted.get(rule.id) == stored
            ):
                # Nobody else moved it: keep the raise (and activation) we hold in memory,
                # flushed later.
                rule = replace(
                    rule,
                    trigger_price=current.trigger_price,
                    activated=rule.activated or current.activated,
                )
            self._set_persisted(rule, stored)
            if rule.oco_paused_by is not None:
                if paused != rule:
                    self._index(rule)  # held in ``paused`` (another process fired a sibling)
                    upserted += 1
                continue
            if rule.ts_next_attempt is not None and rule.ts_next_attempt > now:
                if self._cooling.get(rule.id) != rule:
                    rule = self._compact(rule)
                    self._unindex(rule.id)
                    self._drop_cooling(rule.id)
                    self._cooling[rule.id] = rule
                    self._count(rule.token_id, 1)
                    cooled.append(rule)
                continue
            if rule.id in self._cooling:
                continue  # its re-arm is scheduled
            if current != rule:
                self._index(rule)
                upserted += 1
        return SyncResult(
            upserted=upserted, removed=removed, cooled=tuple(cooled), deferred=tuple(deferred)
        )

    def drop_missing(self, seen: Collection[str], seq_before: int) -> int:
        """After a full read of the ACTIVE rules: drop every rule held (watched, cooling or
        paused) that the read did not see, unless changed in process since ``seq_before``.
        Return how many were dropped."""
        change_seq = self._change_seq
        stale = [
            rule_id
            for rule_id in chain(self.index.ids(), self._cooling, self._paused)
            if rule_id not in seen and change_seq.get(rule_id, 0) <= seq_before
        ]
        for rule_id in stale:
            self._unindex(rule_id)
            self._drop_cooling(rule_id)
            self._persisted.pop(rule_id, None)
        return len(stale)

    def forget_stamps(self, seq_before: int) -> None:
        """A sync whose read began at ``seq_before`` is done: stamps at or before it can
        never matter again (later reads start after them). Only while no other sync whose
        read began earlier is still being applied."""
        if self._change_seq:
            self._change_seq = {k: v for k, v in self._change_seq.items() if v > seq_before}

    def _held(self, rule_id: str) -> bool:
        return rule_id in self.index or rule_id in self._cooling or rule_id in self._paused

    def _stamp(self, rule_id: str) -> None:
        self._seq += 1
        self._change_seq[rule_id] = self._seq

    def _set_persisted(self, rule: RuleSnapshot, stored: Decimal) -> None:
        # Only a trailing stop's level moves in memory; other rules need no record.
        if rule.rule_type is TradeRuleType.TRAILING_STOP:
            self._persisted[rule.id] = self._decimal(stored)
        else:
            self._persisted.pop(rule.id, None)

    def _index(self, rule: RuleSnapshot) -> None:
        """Put ``rule`` in the index (or out of it when not ACTIVE), leaving cooling; a rule
        an OCO sibling pauses goes to ``paused`` instead."""
        self._drop_cooling(rule.id)
        self._unindex(rule.id)
        rule = self._compact(rule)
        if rule.oco_paused_by is not None:
            if rule.status is TradeRuleStatus.ACTIVE:
                self._paused[rule.id] = rule
                self._count(rule.token_id, 1)
            return
        self.index.upsert(rule)
        if rule.id in self.index:
            self._count(rule.token_id, 1)

    def _unindex(self, rule_id: str) -> None:
        rule = self.index.remove(rule_id) or self._paused.pop(rule_id, None)
        if rule is not None:
            self._count(rule.token_id, -1)

    def _drop_cooling(self, rule_id: str) -> None:
        rule = self._cooling.pop(rule_id, None)
        if rule is not None:
            self._count(rule.token_id, -1)

    def _count(self, token_id: str, delta: int) -> None:
        counts = self._rules_per_token
        count = counts.get(token_id, 0) + delta
        if count < 0:
            # Our own bookkeeping is broken: fail loudly rather than drop a watched token.
            raise AssertionError(f"rule count of token {token_id} below zero")
        if count:
            counts[token_id] = count
        else:
            del counts[token_id]
        if (count == 0) != (count - delta == 0):
            self._token_changes[token_id] = count > 0

    def _compact(self, rule: RuleSnapshot) -> RuleSnapshot:
        """Return ``rule`` holding the shared copy of each value many rules repeat.

        Rules read from the database carry their own copy of the token id, market id,
        secret id, prices and action; sharing them roughly halves the memory per rule.
        """
        trailing = rule.trailing_percent
        return replace(
            rule,
            secret_id=sys.intern(rule.secret_id),
            market_id=sys.intern(rule.market_id),
            token_id=sys.intern(rule.token_id),
            trigger_price=self._decimal(rule.trigger_price),
            trailing_percent=None if trailing is None else self._decimal(trailing),
            action=self._action(rule.action),
        )

    def _decimal(self, value: Decimal) -> Decimal:
        # Keyed by text, not value: "0.40" and "0.4" are equal but may be written differently.
        decimals = self._decimals
        if len(decimals) >= _MAX_SHARED:
            decimals.clear()
        return decimals.setdefault(str(value), value)

    def _action(self, action: RuleAction) -> RuleAction:
        actions = self._actions
        if len(actions) >= _MAX_SHARED:
            actions.clear()
        key = (action.type.value, "" if action.amount is None else str(action.amount))
        return actions.setdefault(key, action)
