"""Settings: one pydantic-settings object, built once by the entry point and passed down."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vincent.enums import ExecutionMode

__all__ = ["ExecutionMode", "LogFormat", "Settings"]

VAR_DIR = Path("var")
DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///{VAR_DIR / 'vincent.db'}"

PRODUCTION_CLOB_URL = "https://clob.polymarket.com"
PRODUCTION_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
PRODUCTION_DATA_API_URL = "https://data-api.polymarket.com"
PRODUCTION_GAMMA_URL = "https://gamma-api.polymarket.com"
PRODUCTION_RELAYER_URL = "https://relayer-v2.polymarket.com"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


Seconds = Annotated[float, Field(gt=0)]
DEFAULT_RATE_LIMIT_PER_ADDRESS = 60


class Settings(BaseSettings):
    """Every knob of the service. Units are in the names (``_s`` seconds)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = DEFAULT_SQLITE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    # API processes of ``vincent serve``; past 1 the monitoring worker gets its own process.
    api_workers: int = Field(default=1, ge=1)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT

    trade_manager_enabled: bool = True
    trade_manager_poll_interval_s: Seconds = 60.0
    trade_manager_ws_enabled: bool = True
    trade_manager_max_rules_per_secret: int = Field(default=100, ge=1)
    # A token the feed does not cover live (its connection down or stalled, or no snapshot
    # since it (re)subscribed) whose WebSocket book is older than this is priced over HTTP
    # on the poll tick. A covered-live token is fresh however quiet its book.
    trade_manager_stale_after_s: Seconds = 120.0
    # A covered-live token whose book (and last HTTP answer) is older than this is re-checked
    # over HTTP anyway: a safety net against a subscription that died on a live connection.
    # At most (watched tokens x poll interval / this) re-checks per tick, quiet longest first.
    trade_manager_quiet_book_recheck_s: Seconds = 900.0
    # Polymarket drops subscriptions past ~500 assets per connection; shard beyond it.
    trade_manager_max_assets_per_connection: int = Field(default=500, ge=1)
    trade_manager_ping_interval_s: Seconds = 10.0
    trade_manager_breaker_failures: int = Field(default=5, ge=1)
    trade_manager_breaker_cooldown_s: Seconds = 60.0
    # A leader whose event loop has not beaten its heartbeat (every 0.5 s) for this long
    # gives its leadership up, so a hung process does not leave the rules unguarded.
    trade_manager_leader_max_stall_s: float = Field(default=10.0, gt=0.5)
    # The poll tick reads only the rules changed since its previous read, less this overlap
    # (writers' clocks and the time between a writer's timestamp and its commit), and every
    # ACTIVE rule at start and every TRADE_MANAGER_FULL_SYNC_INTERVAL_S (a safety net).
    trade_manager_sync_overlap_s: float = Field(default=60.0, ge=0)
    trade_manager_full_sync_interval_s: Seconds = 600.0
    # gc.freeze() once the worker's first load is in: the rules held stay out of every later
    # collection (a full one over 100k rules holds the loop for ~250 ms).
    trade_manager_gc_freeze: bool = True

    polymarket_clob_url: str = PRODUCTION_CLOB_URL
    polymarket_ws_url: str = PRODUCTION_WS_URL
    polymarket_data_api_url: str = PRODUCTION_DATA_API_URL
    polymarket_gamma_url: str = PRODUCTION_GAMMA_URL
    polymarket_relayer_url: str = PRODUCTION_RELAYER_URL
    polymarket_http_timeout_s: Seconds = 10.0
    gamma_lookup_timeout_s: Seconds = 3.0

    execution_mode: ExecutionMode = ExecutionMode.LIVE

    vincent_encryption_key: SecretStr | None = None
    vincent_admin_token: SecretStr | None = None

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Request limits (see api/rate_limit.py): per API key for authenticated requests, per
    # client address for the rest, both per RATE_LIMIT_WINDOW_MS, a burst of up to
    # RATE_LIMIT_BURST_S seconds' worth allowed at once. /health and /metrics are free.
    rate_limit_per_key: int = Field(default=600, ge=0)
    # Unset: RATE_LIMIT_MAX_REQUESTS when that is set (the original's per-address limit),
    # else 60.
    rate_limit_per_address: int | None = Field(default=None, ge=0)
    # The original's setting. 0 turns every request limit off; another value is the
    # per-address limit unless RATE_LIMIT_PER_ADDRESS is set.
    rate_limit_max_requests: int | None = Field(default=None, ge=0)
    rate_limit_window_ms: int = Field(default=60_000, ge=1)
    rate_limit_burst_s: float = Field(default=10.0, gt=0)
    # Believe X-Forwarded-For only from these proxies (comma-separated addresses or CIDRs):
    # the client is the right-most hop that is not one of them.
    trust_proxy: bool = False
    trusted_proxies: str = "127.0.0.1/32,::1/128"
    # Requests of one API process that use the database at once; the others wait their turn
    # (first come, first served) before they take a pooled connection. The process's pool
    # keeps max(10, this + 2) connections, so these turns never open and close connections.
    api_db_concurrency: int = Field(default=8, ge=1, le=1000)
    # A resolved API key is trusted this long without a query (0 = always query): a key
    # revoked in another process is refused at most this many seconds later.
    api_key_cache_ttl_s: float = Field(default=2.0, ge=0, le=10)
    # ``vincent worker`` publishes its status here; API-only processes read it.
    worker_status_file: Path = VAR_DIR / "worker-status.json"

    # --- Agents (MCP server, POST /api/secrets) --------------------------------------------
    # Agents may create their own secrets with POST /api/secrets (false: operators create
    # tenants by hand with ``vincent secrets create``; the route answers 403).
    allow_agent_secrets: bool = True
    # The original's limiter on that route: this many creations per client address per window.
    agent_secret_limit: int = Field(default=5, ge=1)
    agent_secret_window_s: Seconds = 900.0
    # Base URL of the claim links handed to agents (default http://HOST:PORT).
    public_url: str | None = None
    # The MCP server (streamable HTTP) at /mcp on the API server (false: not mounted).
    mcp_enabled: bool = True

    @property
    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, was {value!r}")
        return upper

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            value = "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not (
            value.startswith("postgresql+asyncpg://") or value.startswith("sqlite+aiosqlite://")
        ):
            raise ValueError(
                f"must be a postgresql:// or sqlite:// URL, was {value.split(':')[0]!r}"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _known_networks(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"not an address or CIDR: {item!r}") from None
        return value

    @property
    def rate_limits_enabled(self) -> bool:
        return self.rate_limit_max_requests != 0

    @property
    def effective_rate_limit_per_address(self) -> int:
        if self.rate_limit_per_address is not None:
            return self.rate_limit_per_address
        if self.rate_limit_max_requests is not None:
            return self.rate_limit_max_requests
        return DEFAULT_RATE_LIMIT_PER_ADDRESS

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def describe_validation_error(error: ValidationError) -> str:
    """Render a settings error as one line that names the variable and the problem."""
    parts = []
    for issue in error.errors():
        name = ".".join(str(p) for p in issue["loc"]).upper() or "settings"
        parts.append(f"{name}: {issue['msg']}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and ``.env``; raise ``ValidationError`` if bad."""
    return Settings(**overrides)  # type: ignore[arg-type]
