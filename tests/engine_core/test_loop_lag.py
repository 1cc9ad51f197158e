"""Event-loop lag: the sample window's figures, and the monitor on a real loop."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from vincent.services.trade_manager.loop_lag import LagSamples, LagSummary, LoopLagMonitor

lags = st.floats(min_value=-1.0, max_value=5.0, allow_nan=False)


@given(st.lists(lags, min_size=1, max_size=300), st.integers(min_value=1, max_value=100))
def test_summary_is_over_the_latest_window_by_nearest_rank(
    values: list[float], window: int
) -> None:
    samples = LagSamples(max_samples=window)
    for value in values:
        samples.record(value)

    kept = sorted(max(0.0, v) for v in values[-window:])
    summary = samples.summary()

    assert summary.samples == len(kept) == len(samples)
    assert summary.max_ms == 1000 * kept[-1]
    assert summary.p99_ms == 1000 * kept[round(0.99 * (len(kept) - 1))]
    assert summary.p50_ms == 1000 * kept[round(0.5 * (len(kept) - 1))]
    assert 0.0 <= summary.p50_ms <= summary.p99_ms <= summary.max_ms


def test_no_sample_is_all_zero_and_clear_forgets() -> None:
    samples = LagSamples()
    assert samples.summary() == LagSummary(0, 0.0, 0.0, 0.0)
    samples.record(0.5)
    samples.clear()
    assert samples.summary() == LagSummary(0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_sizes_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="max_samples must be at least 1, was"):
        LagSamples(max_samples=bad)
    with pytest.raises(ValueError, match="interval_s must be positive, was"):
        LoopLagMonitor(interval_s=bad)


async def test_a_blocked_loop_shows_as_lag_in_samples_and_histogram() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("lag_seconds", "lag", buckets=(0.01, 0.04, 1.0), registry=registry)
    monitor = LoopLagMonitor(histogram, interval_s=0.001)
    stopping = asyncio.Event()
    task = asyncio.create_task(monitor.run(stopping))
    try:
        async with asyncio.timeout(10):
            while len(monitor.samples) < 3:  # noqa: ASYNC110 - the monitor owns no event
                await asyncio.sleep(0)
            # Hold the loop as a long synchronous step would: the next wake-up is late.
            time.sleep(0.06)  # noqa: ASYNC251 - the blocking call is the stimulus
            while monitor.summary().max_ms < 50:  # noqa: ASYNC110
                await asyncio.sleep(0)
    finally:
        stopping.set()
        await task

    assert monitor.summary().max_ms < 10_000
    late = registry.get_sample_value("lag_seconds_bucket", {"le": "1.0"})
    on_time = registry.get_sample_value("lag_seconds_bucket", {"le": "0.04"})
    count = registry.get_sample_value("lag_seconds_count")
    assert count is not None and count == len(monitor.samples)
    assert late is not None and on_time is not None and late > on_time

    monitor.reset()
    assert monitor.summary().samples == 0
