"""Circuit breaker: N consecutive failures open it until now + cooldown. No I/O.

Time is passed in (``now``), never read. While open, the caller skips the guarded work; a
success closes it and resets the count. A failure at or past the threshold (re)opens it.
The seed used 5 failures and 60 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    consecutive_failures: int = 0
    open_until: datetime | None = None

    def is_open(self, now: datetime) -> bool:
        return self.open_until is not None and now < self.open_until


class CircuitBreaker:
    """Counts consecutive failures and opens for ``cooldown_s`` after ``failure_threshold``."""

    __slots__ = ("_cooldown", "_failure_threshold", "_status")

    def __init__(self, failure_threshold: int = 5, cooldown_s: float = 60.0) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, was {failure_threshold}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must not be negative, was {cooldown_s}")
        self._failure_threshold = failure_threshold
        self._cooldown = timedelta(seconds=cooldown_s)
        self._status = BreakerStatus()

    def status(self) -> BreakerStatus:
        return self._status

    def is_open(self, now: datetime) -> bool:
        """Return whether the guarded work must be skipped at ``now``."""
        return self._status.is_open(now)

    def record_success(self) -> None:
        self._status = BreakerStatus()

    def record_failure(self, now: datetime) -> BreakerStatus:
        """Count a failure at ``now``; open the breaker once the threshold is reached."""
        failures = self._status.consecutive_failures + 1
        open_until = self._status.open_until
        if failures >= self._failure_threshold:
            open_until = now + self._cooldown
        self._status = BreakerStatus(consecutive_failures=failures, open_until=open_until)
        return self._status
