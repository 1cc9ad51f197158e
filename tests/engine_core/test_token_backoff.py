"""Per-token backoff of HTTP prices: pure, time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vincent.services.trade_manager.http_pricing import TokenBackoff


def test_a_failing_token_waits_doubling_delays_and_a_success_forgets_it() -> None:
    backoff = TokenBackoff(base_delay_s=30.0, max_delay_s=100.0)

    delays = [backoff.failed("t", 0.0) for _ in range(4)]

    assert delays == [30.0, 60.0, 100.0, 100.0]
    assert backoff.due(["t", "u"], 99.0) == ["u"]
    assert backoff.due(["t", "u"], 100.0) == ["t", "u"]
    backoff.succeeded("t")
    assert backoff.failed("t", 200.0) == 30.0


def test_only_watched_tokens_are_remembered() -> None:
    backoff = TokenBackoff(base_delay_s=1.0, max_delay_s=10.0)
    for token_id in ("a", "b", "c"):
        backoff.failed(token_id, 0.0)

    backoff.keep_only(["b"])

    assert len(backoff) == 1
    assert backoff.due(["a", "b", "c"], 0.5) == ["a", "c"]


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="was"):
        TokenBackoff(base_delay_s=5.0, max_delay_s=1.0)


@given(
    base=st.floats(min_value=0, max_value=100),
    extra=st.floats(min_value=0, max_value=1000),
    failures=st.integers(min_value=1, max_value=200),
    now=st.floats(min_value=0, max_value=1e9),
)
def test_delays_stay_within_bounds_and_never_shrink(
    base: float, extra: float, failures: int, now: float
) -> None:
    backoff = TokenBackoff(base_delay_s=base, max_delay_s=base + extra)
    delays = [backoff.failed("t", now) for _ in range(failures)]

    assert all(base <= d <= base + extra for d in delays)
    assert delays == sorted(delays)
    assert backoff.due(["t"], now + delays[-1]) == ["t"]
