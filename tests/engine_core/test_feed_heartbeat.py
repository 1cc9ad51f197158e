"""The heartbeat schedule of one feed connection (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vincent.services.trade_manager.feed_config import Heartbeat


def test_pings_fall_due_each_interval_and_silence_becomes_a_stall() -> None:
    heartbeat = Heartbeat(ping_interval_s=10.0, stale_after_s=30.0, now_s=100.0)

    assert not heartbeat.ping_due(109.9)
    assert heartbeat.ping_due(110.0)
    heartbeat.pinged(110.0)
    assert heartbeat.ts_next_check_s() == 120.0
    assert not heartbeat.stalled(129.9)
    assert heartbeat.stalled(130.0)
    heartbeat.ts_last_traffic_s = 125.0
    assert not heartbeat.stalled(130.0)
    assert heartbeat.silent_for_s(130.0) == 5.0


@given(
    st.floats(min_value=0.01, max_value=60.0),
    st.floats(min_value=1.01, max_value=10.0),
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=20),
)
def test_the_next_check_is_never_after_a_ping_or_stall_falls_due(
    ping_interval_s: float, stale_factor: float, gaps_s: list[float]
) -> None:
    heartbeat = Heartbeat(ping_interval_s, ping_interval_s * stale_factor, now_s=0.0)
    now_s = 0.0
    for gap_s in gaps_s:
        now_s += gap_s
        if heartbeat.ping_due(now_s):
            heartbeat.pinged(now_s)
        check_s = heartbeat.ts_next_check_s()
        # Something falls due at the next check, and nothing before it.
        assert heartbeat.ping_due(check_s) or heartbeat.stalled(check_s)
        if check_s - now_s > 1e-6:
            between_s = (now_s + check_s) / 2
            assert not heartbeat.ping_due(between_s)
            assert not heartbeat.stalled(between_s)
        else:
            assert check_s > now_s or heartbeat.stalled(now_s)
