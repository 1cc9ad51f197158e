"""The market feed's knobs and the venue's address. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

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
