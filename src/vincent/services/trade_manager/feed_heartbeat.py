"""One connection's heartbeat schedule: when to send ``PING``, when silence means a stall.

No I/O: the connection reports traffic and asks what is due; times are monotonic seconds.
"""

from __future__ import annotations


class Heartbeat:
    """Ping every ``ping_interval_s``; stalled after ``stale_after_s`` without any frame."""

    __slots__ = ("_ping_interval_s", "_stale_after_s", "ts_last_traffic_s", "ts_next_ping_s")

    def __init__(self, ping_interval_s: float, stale_after_s: float, now_s: float) -> None:
        self._ping_interval_s = ping_interval_s
        self._stale_after_s = stale_after_s
        # Written by the reader on every frame (the hot path: a plain attribute store).
        self.ts_last_traffic_s = now_s
        self.ts_next_ping_s = now_s + ping_interval_s

    def silent_for_s(self, now_s: float) -> float:
        """Return the seconds since the last frame (or since connecting)."""
        return now_s - self.ts_last_traffic_s

    def stalled(self, now_s: float) -> bool:
        return now_s - self.ts_last_traffic_s >= self._stale_after_s

    def ping_due(self, now_s: float) -> bool:
        return now_s >= self.ts_next_ping_s

    def pinged(self, now_s: float) -> None:
        """Record a ``PING`` sent at ``now_s``; the next is due one interval later."""
        self.ts_next_ping_s = now_s + self._ping_interval_s

    def ts_next_check_s(self) -> float:
        """Return when something may next be due: a ping, or the stall deadline."""
        return min(self.ts_next_ping_s, self.ts_last_traffic_s + self._stale_after_s)
