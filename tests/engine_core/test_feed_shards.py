"""Sharding the feed's tokens over connections."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.services.trade_manager.feed_shards import ShardMap, ShardMerge

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


def test_rebalance_merges_a_half_empty_shard_into_one_with_room() -> None:
    shards = ShardMap(3)
    first, second = shards.set_tokens(["a", "b", "c", "d", "e", "f"]).opened
    shards.set_tokens(["c", "e", "f"])

    merge = shards.rebalance()

    assert dict(merge.closed) == {first: frozenset({"c"})}
    assert merge.changed == (second,)
    assert shards.shards() == (second,)
    assert set(shards.desired(second)) == {"c", "e", "f"}
    assert shards.shard_of("c") == second
    assert shards.rebalance() == ShardMerge()


def test_rebalance_leaves_shards_alone_when_none_can_close() -> None:
    shards = ShardMap(3)
    shards.set_tokens(["a", "b", "c", "d", "e", "f"])
    shards.set_tokens(["b", "c", "d", "e"])

    assert shards.rebalance() == ShardMerge()
    assert len(shards) == 2


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=7),
    st.lists(st.sets(st.sampled_from(universe)), min_size=1, max_size=12),
)
def test_rebalance_leaves_the_fewest_shards_and_moves_only_tokens_of_closed_ones(
    limit: int, steps: list[set[str]]
) -> None:
    shards = ShardMap(limit)
    for wanted in steps:
        shards.set_tokens(wanted)
        before = {shard: set(shards.desired(shard)) for shard in shards.shards()}
        placed = {token: shard for shard, tokens in before.items() for token in tokens}

        merge = shards.rebalance()

        held = {shard: set(shards.desired(shard)) for shard in shards.shards()}
        now = {token: shard for shard, tokens in held.items() for token in tokens}
        # Every shard within the limit, every wanted token on exactly one shard.
        assert all(0 < len(tokens) <= limit for tokens in held.values())
        assert sum(len(tokens) for tokens in held.values()) == len(wanted)
        assert now.keys() == wanted == shards.tokens()
        # As few shards as the tokens need, and never more than before.
        assert len(held) == -(-len(wanted) // limit) == shards.minimum_shards()
        assert len(held) <= len(before)
        # Only closed shards' tokens moved, and only onto shards reported as changed.
        assert set(held) == set(before) - merge.closed.keys()
        assert {shard: set(tokens) for shard, tokens in merge.closed.items()} == {
            shard: before[shard] for shard in merge.closed
        }
        moved = {token for token in wanted if now[token] != placed[token]}
        assert moved == {token for tokens in merge.closed.values() for token in tokens}
        assert {now[token] for token in moved} == set(merge.changed)
        assert all(shards.shard_of(token) == now[token] for token in wanted)


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=7),
    st.lists(
        st.tuples(st.sets(st.sampled_from(universe)), st.sets(st.sampled_from(universe))),
        min_size=1,
        max_size=12,
    ),
)
def test_update_by_changes_places_tokens_as_set_tokens_does(
    limit: int, steps: list[tuple[set[str], set[str]]]
) -> None:
    by_change = ShardMap(limit)
    by_set = ShardMap(limit)
    for added, removed in steps:
        wanted = (by_set.tokens() - removed) | added

        change = by_change.update(added, removed)
        expected = by_set.set_tokens(wanted)

        assert change.opened == expected.opened
        assert set(change.changed) == set(expected.changed)
        assert set(change.closed) == set(expected.closed)
        assert (change.added_tokens, change.removed_tokens) == (
            expected.added_tokens,
            expected.removed_tokens,
        )
        assert by_change.tokens() == wanted
        assert all(
            set(by_change.desired(shard)) == set(by_set.desired(shard)) for shard in by_set.shards()
        )
