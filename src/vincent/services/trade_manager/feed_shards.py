"""Which market-feed connection carries which token. No I/O.

Tokens stay on the connection they were given (a move would cost an unsubscribe and a
resubscribe); new tokens fill connections that have room, then open new ones. A connection
left without tokens is closed. ``rebalance`` merges half-empty connections after churn: it
closes the smallest ones when fewer connections would hold every token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ShardChange:
    """What ``ShardMap.set_tokens`` did, by shard number and by token."""

    opened: tuple[int, ...] = ()
    changed: tuple[int, ...] = ()
    closed: tuple[int, ...] = ()
    added_tokens: frozenset[str] = frozenset()
    removed_tokens: frozenset[str] = frozenset()


_UNCHANGED = ShardChange()


@dataclass(frozen=True, slots=True)
class ShardMerge:
    """What ``ShardMap.rebalance`` did: each closed shard with the tokens it held, and the
    shards that took them (each token now sits on exactly one of those)."""

    closed: Mapping[int, frozenset[str]] = field(default_factory=dict)
    changed: tuple[int, ...] = ()


_NO_MERGE = ShardMerge()


class ShardMap:
    """Tokens per shard, at most ``max_tokens_per_shard`` each."""

    __slots__ = ("_max_tokens", "_next_number", "_shard_of", "_tokens")

    def __init__(self, max_tokens_per_shard: int) -> None:
        if max_tokens_per_shard < 1:
            raise ValueError(f"max_tokens_per_shard must be at least 1, was {max_tokens_per_shard}")
        self._max_tokens = max_tokens_per_shard
        self._tokens: dict[int, set[str]] = {}
        self._shard_of: dict[str, int] = {}
        self._next_number = 0

    def __len__(self) -> int:
        """The number of shards (connections wanted)."""
        return len(self._tokens)

    def shards(self) -> tuple[int, ...]:
        """Return the shard numbers, oldest first."""
        return tuple(self._tokens)

    def tokens(self) -> frozenset[str]:
        """Return every token of every shard."""
        return frozenset(self._shard_of)

    def token_count(self) -> int:
        return len(self._shard_of)

    def shard_of(self, token_id: str) -> int | None:
        """Return the shard carrying ``token_id``, or None when it is not wanted."""
        return self._shard_of.get(token_id)

    def minimum_shards(self) -> int:
        """Return how many shards the tokens need at the least."""
        return -(-len(self._shard_of) // self._max_tokens)

    def desired(self, shard: int) -> Set[str]:
        """Return the shard's tokens: a live view that later changes show through."""
        return self._tokens[shard]

    def set_tokens(self, token_ids: Iterable[str]) -> ShardChange:
        """Make the tokens exactly ``token_ids``; return which shards opened, changed, closed."""
        wanted = set(token_ids)
        return self._change(wanted - self._shard_of.keys(), self._shard_of.keys() - wanted)

    def update(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> ShardChange:
        """Add and remove tokens, in work proportional to the change (not to every token).

        Adding a token already held or removing one that is not are no-ops; a token in both
        stays held.
        """
        held = self._shard_of
        add = {token_id for token_id in added if token_id not in held}
        drop = {token_id for token_id in removed if token_id in held}
        drop -= set(added)
        return self._change(add, drop)

    def _change(self, added: Set[str], removed: Set[str]) -> ShardChange:
        if not removed and not added:
            return _UNCHANGED
        changed: dict[int, None] = {}
        for token_id in removed:
            shard = self._shard_of.pop(token_id)
            self._tokens[shard].discard(token_id)
            changed[shard] = None
        opened: list[int] = []
        with_room = [shard for shard, held in self._tokens.items() if len(held) < self._max_tokens]
        for token_id in sorted(added):
            while with_room and len(self._tokens[with_room[0]]) >= self._max_tokens:
                with_room.pop(0)
            if not with_room:
                with_room.append(self._open())
                opened.append(with_room[0])
            shard = with_room[0]
            self._tokens[shard].add(token_id)
            self._shard_of[token_id] = shard
            changed[shard] = None
        closed = tuple(shard for shard in changed if not self._tokens[shard])
        for shard in closed:
            del self._tokens[shard]
        return ShardChange(
            opened=tuple(opened),
            changed=tuple(
                shard for shard in changed if shard in self._tokens and shard not in opened
            ),
            closed=closed,
            added_tokens=frozenset(added),
            removed_tokens=frozenset(removed),
        )

    def rebalance(self) -> ShardMerge:
        """Close shards while fewer would hold every token; move their tokens to the rest.

        Only ever lowers the shard count, and then to the minimum. The smallest shards close
        (fewest tokens to move; on a tie the newest), their tokens fill the survivors oldest
        first, and tokens on surviving shards stay where they are.
        """
        surplus = len(self._tokens) - self.minimum_shards()
        if surplus <= 0:
            return _NO_MERGE
        by_size = sorted(self._tokens, key=lambda shard: (len(self._tokens[shard]), -shard))
        closing = by_size[:surplus]
        closed = {shard: frozenset(self._tokens.pop(shard)) for shard in closing}
        survivors = [shard for shard in self._tokens if len(self._tokens[shard]) < self._max_tokens]
        changed: dict[int, None] = {}
        for token_id in sorted(token for held in closed.values() for token in held):
            while len(self._tokens[survivors[0]]) >= self._max_tokens:
                # Cannot run out: the survivors are at least minimum_shards().
                survivors.pop(0)
            shard = survivors[0]
            self._tokens[shard].add(token_id)
            self._shard_of[token_id] = shard
            changed[shard] = None
        return ShardMerge(closed=MappingProxyType(closed), changed=tuple(changed))

    def _open(self) -> int:
        shard = self._next_number
        self._next_number += 1
        self._tokens[shard] = set()
        return shard
