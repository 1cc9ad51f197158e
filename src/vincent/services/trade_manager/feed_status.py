"""The market feed's lifecycle state, its counters and its immutable status snapshots. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
