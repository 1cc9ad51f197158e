"""Event-loop lag: how late the worker's loop runs a callback that is due.

A fire is a callback on the same loop as the feed, the trailing flush and the poll tick:
while one of them holds the loop, a crossing price waits. ``LoopLagMonitor.run`` sleeps a
short interval over and over and records how much later than asked it woke up (the
scheduling delay any callback due at that moment also suffered). ``LagSamples`` keeps the
recent samples and answers p99 and max; it does no I/O and never awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Histogram

SAMPLE_INTERVAL_S = 0.01
# Ten minutes of samples at the default interval: a bounded window for p99 and max.
MAX_SAMPLES = 60_000


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Lag over the samples kept, in milliseconds (0 with no sample)."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class LagSamples:
    """The most recent lags (seconds), oldest dropped first past ``max_samples``."""

    __slots__ = ("_lags",)

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, was {max_samples}")
        self._lags: deque[float] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._lags)

    def record(self, lag_s: float) -> None:
        self._lags.append(max(0.0, lag_s))

    def clear(self) -> None:
        self._lags.clear()

    def summary(self) -> LagSummary:
        """p50, p99 (nearest rank) and max of the samples kept."""
        if not self._lags:
            return LagSummary(0, 0.0, 0.0, 0.0)
        ordered = sorted(self._lags)
        return LagSummary(
            samples=len(ordered),
            p50_ms=1000 * _nearest_rank(ordered, 50),
            p99_ms=1000 * _nearest_rank(ordered, 99),
            max_ms=1000 * ordered[-1],
        )


def _nearest_rank(ordered: list[float], q: float) -> float:
    rank = round(q / 100 * (len(ordered) - 1))
    return ordered[rank]


class LoopLagMonitor:
    """Samples the running loop's lag every ``interval_s`` into samples and a histogram."""

    def __init__(
        self,
        histogram: Histogram | None = None,
        *,
        interval_s: float = SAMPLE_INTERVAL_S,
        samples: LagSamples | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, was {interval_s}")
        self._histogram = histogram
        self._interval_s = interval_s
        self._clock = clock
        self.samples = samples or LagSamples()

    async def run(self, stopping: asyncio.Event) -> None:
        """Sample until ``stopping`` is set (one of the worker's owned loops)."""
        interval_s = self._interval_s
        clock = self._clock
        while not stopping.is_set():
            asked_s = clock() + interval_s
            await asyncio.sleep(interval_s)
            lag_s = max(0.0, clock() - asked_s)
            self.samples.record(lag_s)
            if self._histogram is not None:
                self._histogram.observe(lag_s)

    def summary(self) -> LagSummary:
        return self.samples.summary()

    def reset(self) -> None:
        """Forget the samples so far (the benchmark measures its drive alone)."""
        self.samples.clear()
