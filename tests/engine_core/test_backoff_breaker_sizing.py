"""Backoff bounds, the circuit breaker, and sell sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.services.trade_manager.backoff import (
    Backoff,
    BackoffPolicy,
    Jitter,
    ceiling_delay_s,
)
from vincent.services.trade_manager.breaker import BreakerStatus, CircuitBreaker
from vincent.services.trade_manager.sell_planning import sell_shares, sell_size
from vincent.services.trade_manager.types import ActionType, RuleAction

policies = st.builds(
    lambda low, extra, multiplier, jitter: BackoffPolicy(low, low + extra, multiplier, jitter),
    st.floats(min_value=0, max_value=10),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=1, max_value=5),
    st.sampled_from(Jitter),
)
unit_values = st.floats(min_value=0, max_value=1, exclude_max=True)


@settings(deadline=None)
@given(policies, st.lists(unit_values, min_size=1, max_size=50))
def test_backoff_stays_within_its_bounds(policy: BackoffPolicy, draws: list[float]) -> None:
    values = iter(draws)
    backoff = Backoff(policy, random_fn=lambda: next(values))

    for _ in draws:
        assert policy.min_delay_s <= backoff.next_delay_s() <= policy.max_delay_s


@settings(deadline=None)
@given(policies, st.integers(min_value=0, max_value=200))
def test_the_ceiling_grows_to_the_maximum(policy: BackoffPolicy, attempt: int) -> None:
    assert ceiling_delay_s(policy, attempt) <= ceiling_delay_s(policy, attempt + 1)
    assert policy.min_delay_s <= ceiling_delay_s(policy, attempt) <= policy.max_delay_s


def test_full_jitter_doubles_and_reset_starts_over() -> None:
    backoff = Backoff(BackoffPolicy(1.0, 60.0), random_fn=lambda: 0.999999)

    delays = [round(backoff.next_delay_s()) for _ in range(8)]
    backoff.reset()

    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.attempt == 0
    assert round(backoff.next_delay_s()) == 1


def test_bad_policies_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="min_delay_s"):
        BackoffPolicy(5.0, 1.0)
    with pytest.raises(ValueError, match="multiplier"):
        BackoffPolicy(multiplier=0.5)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=10), st.integers(min_value=0, max_value=20))
def test_breaker_opens_after_n_consecutive_failures(threshold: int, failures: int) -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown_s=60)

    for _ in range(failures):
        breaker.record_failure(NOW)

    assert breaker.is_open(NOW) == (failures >= threshold)
    assert breaker.status().consecutive_failures == failures


def test_breaker_closes_after_cooldown_and_success_resets() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60)
    breaker.record_failure(NOW)
    status = breaker.record_failure(NOW)

    assert status == BreakerStatus(consecutive_failures=2, open_until=NOW + timedelta(seconds=60))
    assert breaker.is_open(NOW + timedelta(seconds=59))
    assert not breaker.is_open(NOW + timedelta(seconds=60))

    breaker.record_success()
    assert breaker.status() == BreakerStatus()
    breaker.record_failure(NOW)
    assert not breaker.is_open(NOW)


shares = st.decimals(min_value=0, max_value=10**6, places=6)


@settings(deadline=None)
@given(shares, st.none() | st.decimals(min_value=Decimal("0.000001"), max_value=10**6, places=6))
def test_sell_size_never_exceeds_what_is_held(held: Decimal, requested: Decimal | None) -> None:
    size = sell_shares(held, requested)

    assert 0 <= size <= held
    assert size == size.quantize(Decimal("0.01"))
    if requested is not None:
        assert size <= requested
    action = (
        RuleAction(ActionType.SELL_ALL)
        if requested is None
        else RuleAction(ActionType.SELL_PARTIAL, requested)
    )
    assert sell_size(action, held) == (size if size > 0 else None)


def test_sell_sizes_round_down_to_the_cent() -> None:
    assert sell_size(RuleAction(ActionType.SELL_ALL), Decimal("12.349")) == Decimal("12.34")
    assert sell_size(RuleAction(ActionType.SELL_PARTIAL, Decimal("5")), Decimal("12")) == 5
    assert sell_size(RuleAction(ActionType.SELL_PARTIAL, Decimal("50")), Decimal("12")) == 12
    assert sell_size(RuleAction(ActionType.SELL_ALL), Decimal("0.009")) is None
    assert sell_size(RuleAction(ActionType.SELL_ALL), Decimal("0")) is None
    with pytest.raises(ValueError, match="amount must be positive"):
        sell_size(RuleAction(ActionType.SELL_PARTIAL, None), Decimal("12"))
