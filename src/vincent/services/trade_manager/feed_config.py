"""What the market feed is tuned by and what it reports. No I/O.

The knobs (``MarketFeedConfig``) and the venue's address; the heartbeat schedule those knobs
drive on each connection (``Heartbeat``: when to send ``PING``, when silence means a stall;
times are monotonic seconds); whether a token is covered live (``Coverage``, decided by
``coverage_of``); and the feed's lifecycle state, running counters and immutable status
snapshots (``MarketFeedStatus``).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from enum import StrEnum

from vincent.services.trade_manager.backoff import BackoffPolicy

POLYMARKET_MARKET_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"


@dataclass(frozen=True, slots=True)
class MarketFeedConfig:
    """Knobs of the market feed.

    ping_interval_s: text ``PING`` every 10 s (Polymarket closes silent connections).
    stale_after_s: a connection with no frame at all (not even ``PONG``) for 30 s is dead.
    max_assets_per_connection: 500, the practical venue limit; more tokens open more shards.
    connect_timeout_s / close_timeout_s: 10 s to open, 2 s for the closing handshake.
    stop_timeout_s: 5 s for ``stop`` to await the connection tasks.
    max_message_bytes: 32 MiB (the first frame holds a book per subscribed token).
    reconnect_backoff: 1 s doubling to 60 s with full jitter; reset once a frame arrives
    (but not on the connection after a crash, so a crash loop backs off to the maximum).
    use_environment_proxy: honour HTTP(S)_PROXY variables (off: connect directly).
    """

    ping_interval_s: float = 10.0
    stale_after_s: float = 30.0
    max_assets_per_connection: int = 500
    connect_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    stop_timeout_s: float = 5.0
    max_message_bytes: int = 32 * 1024 * 1024
    custom_feature_enabled: bool = True
    reconnect_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    use_environment_proxy: bool = False

    def __post_init__(self) -> None:
        if self.ping_interval_s <= 0:
            raise ValueError(f"ping_interval_s must be positive, was {self.ping_interval_s}")
        if self.stale_after_s <= self.ping_interval_s:
            raise ValueError(
                f"stale_after_s must exceed ping_interval_s ({self.ping_interval_s}), "
                f"was {self.stale_after_s}"
            )
        if self.max_assets_per_connection < 1:
            raise ValueError(
                f"max_assets_per_connection must be at least 1, "
                f"was {self.max_assets_per_connection}"
            )


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


class Coverage(StrEnum):
    """How the feed covers one token right now.

    Only ``LIVE`` means a quiet book is quiet because nothing traded: the token's connection
    is open, its heartbeat is within its deadline, and the token's book snapshot has arrived
    on this connection since it was (re)subscribed. Every other value says why not.
    """

    LIVE = "live"
    NOT_SUBSCRIBED = "not_subscribed"  # no connection carries it (or its subscription is unsent)
    DOWN = "down"  # the feed is stopped, or the token's connection is not open
    STALLED = "stalled"  # open, but silent (not even PONG) past the heartbeat's deadline
    AWAITING_SNAPSHOT = "awaiting_snapshot"  # no book for it on this connection yet


def coverage_of(
    token_id: str,
    *,
    heartbeat: Heartbeat | None,
    subscribed: Set[str],
    awaiting_snapshot: Set[str],
    now_s: float,
) -> Coverage:
    """The coverage of ``token_id`` by one connection.

    ``heartbeat``: the open connection's (None: not open); ``subscribed``: what it has told
    the server; ``awaiting_snapshot``: the tokens subscribed on it whose book has not arrived.
    """
    if heartbeat is None:
        return Coverage.DOWN
    if heartbeat.stalled(now_s):
        return Coverage.STALLED
    if token_id not in subscribed:
        return Coverage.NOT_SUBSCRIBED
    if token_id in awaiting_snapshot:
        return Coverage.AWAITING_SNAPSHOT
    return Coverage.LIVE


class FeedState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """One connection. ``last_message_age_s``: seconds since its last frame (None: none yet).

    ``draining``: closed by a rebalance, kept open until the connections that took its tokens
    have subscribed them.
    """

    number: int
    connected: bool
    subscriptions: int
    last_message_age_s: float | None
    draining: bool = False


@dataclass(frozen=True, slots=True)
class MarketFeedStatus:
    """An immutable snapshot of the feed.

    ``connected``: the feed runs, wants at least one connection, and every wanted connection
    is live (draining ones are not wanted). ``connection_crashes``: connections ended by a bug
    (then restarted). ``shards``: wanted connections in order, then draining ones.
    """

    state: FeedState
    connected: bool
    connections: int
    wanted_connections: int
    subscriptions: int
    messages_received: int
    malformed_messages: int
    reconnects: int
    stalls: int
    callback_errors: int
    last_message_age_s: float | None
    connection_crashes: int = 0
    shards: tuple[ShardStatus, ...] = ()


class FeedCounters:
    """The feed's running totals, shared by its frame handler and its connections."""

    __slots__ = (
        "callback_errors",
        "connection_crashes",
        "malformed_messages",
        "messages_received",
        "reconnects",
        "stalls",
    )

    def __init__(self) -> None:
        self.messages_received = 0
        self.malformed_messages = 0
        self.callback_errors = 0
        self.reconnects = 0
        self.stalls = 0
        self.connection_crashes = 0
