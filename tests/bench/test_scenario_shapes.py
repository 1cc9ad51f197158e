"""The spaced benchmark shapes: one rule per step (--single), one step for all (--burst)."""

from __future__ import annotations

from collections import Counter

import pytest
from bench.scenario import SHARES_PER_SELL, build_burst_scenario, build_single_scenario
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(deadline=None, max_examples=30)
@given(
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=80),
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=1, max_value=7),
)
def test_single_each_step_crosses_exactly_one_rule(
    tokens: int, fires: int, quiet: int, tenants: int
) -> None:
    if fires > 40 * tokens:
        return
    scenario = build_single_scenario(
        rules=fires + quiet, tokens=tokens, fires=fires, tenants=tenants, seed=3, spacing_s=0.1
    )

    token_of = {rule.id: rule.token_id for rule in scenario.rules}
    crossings = Counter((token_of[r], step) for r, step in scenario.expected.items())
    per_token = Counter(token for token, _ in scenario.sequence())
    assert len(scenario.rules) == fires + quiet
    assert scenario.events == len(scenario.sequence()) == fires == len(scenario.expected)
    assert set(crossings.values()) == {1}  # never two fires on one step
    assert len(per_token) <= tokens and max(per_token.values()) <= 40
    assert 0 not in scenario.expected.values()  # nothing fires on the starting book


def test_single_refuses_more_fires_than_the_book_can_step() -> None:
    with pytest.raises(ValueError, match="at most 40 fires per token"):
        build_single_scenario(rules=100, tokens=1, fires=41, tenants=1, seed=1, spacing_s=0.1)
    with pytest.raises(ValueError, match="fires <= rules"):
        build_single_scenario(rules=5, tokens=1, fires=6, tenants=1, seed=1, spacing_s=0.1)


def test_burst_one_step_crosses_every_burst_rule_and_no_other() -> None:
    scenario = build_burst_scenario(burst=50, rules=30, tokens=4, tenants=7, seed=5)

    assert len(scenario.rules) == 80
    assert scenario.events == 1
    assert set(scenario.expected.values()) == {1}
    assert len(scenario.expected) == 50
    assert len({scenario.tenant_of[r] for r in scenario.expected}) == 7
    assert scenario.book_size >= SHARES_PER_SELL * 50
    assert sum(scenario.credits().values()) == SHARES_PER_SELL * 50
