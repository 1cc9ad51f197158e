"""Which market-feed connection carries which token. No I/O.

Tokens stay on the connection they were given (a move would cost an unsubscribe and a
resubscribe); new tokens fill connections that have room, then open new ones. A connection
left without tokens is closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ShardChange:
    """What ``ShardMap.set_tokens`` did, by shard number and by token."""

    opened: tuple[int, ...] = ()
    changed: tuple[int, ...] = ()
    closed: tuple[int, ...] = ()
    added_tokens: frozenset[str] = frozenset()
    removed_tokens: frozenset[str] = frozenset()


_UNCHANGED = ShardChange()


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

    def desired(self, shard: int) -> Set[str]:
        """Return the shard's tokens: a live view that later changes show through."""
        return self._tokens[shard]

    def set_tokens(self, token_ids: Iterable[str]) -> ShardChange:
        """Make the tokens exactly ``token_ids``; return which shards opened, changed, closed."""
        wanted = set(token_ids)
        removed = self._shard_of.keys() - wanted
        added = wanted - self._shard_of.keys()
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

    def _open(self) -> int:
        shard = self._next_number
        self._next_number += 1
        self._tokens[shard] = set()
        return shard
