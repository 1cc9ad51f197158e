"""Sharding the feed's tokens over connections."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.services.trade_manager.feed_shards import ShardMap

universe = [f"token-{number:02d}" for number in range(40)]


def test_600_tokens_make_two_shards_and_emptying_one_closes_it() -> None:
    shards = ShardMap(500)
    tokens = {f"{number:077d}" for number in range(600)}

    opened = shards.set_tokens(tokens)
    first, second = opened.opened
    kept = set(shards.desired(first))
    closed = shards.set_tokens(kept)

    assert [len(kept), len(tokens - kept)] == [500, 100]
    assert closed.closed == (second,)
    assert closed.changed == ()
    assert closed.removed_tokens == tokens - kept
    assert shards.shards() == (first,)


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=7),
    st.lists(st.sets(st.sampled_from(universe)), min_size=1, max_size=12),
)
def test_shards_hold_every_token_once_within_the_limit_and_never_move_one(
    limit: int, steps: list[set[str]]
) -> None:
    shards = ShardMap(limit)
    placed: dict[str, int] = {}
    for wanted in steps:
        before = set(shards.shards())
        change = shards.set_tokens(wanted)
        after = set(shards.shards())

        held = {shard: set(shards.desired(shard)) for shard in after}
        assert all(0 < len(tokens) <= limit for tokens in held.values())
        assert sum(len(tokens) for tokens in held.values()) == len(wanted)
        assert set().union(*held.values()) == wanted
        assert shards.tokens() == wanted
        assert after == (before - set(change.closed)) | set(change.opened)
        assert change.added_tokens == wanted - placed.keys()
        assert change.removed_tokens == placed.keys() - wanted
        now = {token: shard for shard, tokens in held.items() for token in tokens}
        assert all(now[token] == placed[token] for token in wanted & placed.keys())
        placed = now
