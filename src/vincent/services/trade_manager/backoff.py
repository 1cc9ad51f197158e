"""Exponential backoff with jitter, for reconnects and per-rule retries. No I/O.

Delays are seconds and always within [min_delay_s, max_delay_s]. Randomness is an injected
``random_fn`` returning a float in [0, 1), so tests choose the jitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

RandomFn = Callable[[], float]


class Jitter(StrEnum):
    # Uniform in [min, exponential ceiling] (AWS "full jitter").
    FULL = "FULL"
    # Uniform in [min, 3 * previous delay], capped (AWS "decorrelated jitter").
    DECORRELATED = "DECORRELATED"


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Defaults: 1 s doubling up to 60 s, full jitter (the seed reconnected 1 s *2 to 60 s)."""

    min_delay_s: float = 1.0
    max_delay_s: float = 60.0
    multiplier: float = 2.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay_s <= self.max_delay_s:
            raise ValueError(
                f"backoff needs 0 <= min_delay_s <= max_delay_s, was {self.min_delay_s} "
                f"and {self.max_delay_s}"
            )
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier must be at least 1, was {self.multiplier}")


def ceiling_delay_s(policy: BackoffPolicy, attempt: int) -> float:
    """Return the un-jittered delay before retry number ``attempt`` (0 for the first)."""
    ceiling = policy.min_delay_s
    for _ in range(attempt):
        ceiling *= policy.multiplier
        if ceiling >= policy.max_delay_s:
            return policy.max_delay_s
    return min(ceiling, policy.max_delay_s)


def full_jitter_delay_s(policy: BackoffPolicy, attempt: int, random_value: float) -> float:
    """Return a delay uniform in [min_delay_s, ceiling(attempt)] for ``random_value`` in [0, 1)."""
    ceiling = ceiling_delay_s(policy, attempt)
    return _clamp(policy, policy.min_delay_s + random_value * (ceiling - policy.min_delay_s))


def decorrelated_jitter_delay_s(
    policy: BackoffPolicy, previous_delay_s: float, random_value: float
) -> float:
    """Return a delay uniform in [min_delay_s, 3 * previous_delay_s], within the bounds."""
    upper = max(policy.min_delay_s, previous_delay_s * 3)
    return _clamp(policy, policy.min_delay_s + random_value * (upper - policy.min_delay_s))


def _clamp(policy: BackoffPolicy, delay_s: float) -> float:
    return min(policy.max_delay_s, max(policy.min_delay_s, delay_s))


class Backoff:
    """The delays of one retry sequence; ``reset`` after a success."""

    __slots__ = ("_attempt", "_policy", "_previous_s", "_random_fn")

    def __init__(self, policy: BackoffPolicy, random_fn: RandomFn = random.random) -> None:
        self._policy = policy
        self._random_fn = random_fn
        self._attempt = 0
        self._previous_s = policy.min_delay_s

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def next_delay_s(self) -> float:
        """Return the delay before the next retry and count it."""
        random_value = self._random_fn()
        if self._policy.jitter is Jitter.DECORRELATED:
            delay_s = decorrelated_jitter_delay_s(self._policy, self._previous_s, random_value)
        else:
            delay_s = full_jitter_delay_s(self._policy, self._attempt, random_value)
        self._attempt += 1
        self._previous_s = delay_s
        return delay_s

    def reset(self) -> None:
        self._attempt = 0
        self._previous_s = self._policy.min_delay_s
