"""The Polymarket skill: the only code that talks to Polymarket (CLOB, Data API, Gamma).

``create_polymarket_skill`` builds it from settings; ``PolymarketSkill`` is its facade.
Pipeline of a bet: bets (policies, audit row) → execution (sign, store, post, record).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from vincent.config import ExecutionMode, Settings
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.skills.polymarket.clients import ClientRegistry
from vincent.skills.polymarket.environment import settings_environment
from vincent.skills.polymarket.exchange_link import KEEPALIVE_S
from vincent.skills.polymarket.http import JsonGetter
from vincent.skills.polymarket.http_transport import LeanClient, lean_transport_for
from vincent.skills.polymarket.market_data import MarketData
from vincent.skills.polymarket.skill import PolymarketSkill

__all__ = ["PolymarketSkill", "create_polymarket_skill"]


def create_polymarket_skill(
    settings: Settings,
    session_factory: SessionFactory,
    keybox: KeyBox,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> PolymarketSkill:
    """Build the skill for ``settings`` (URLs, timeouts, live or paper). Close with ``aclose``.
    ``clock`` (monotonic seconds) ages the market-metadata caches."""
    timeout_s = settings.polymarket_http_timeout_s
    urls = (
        settings.polymarket_clob_url,
        settings.polymarket_gamma_url,
        settings.polymarket_data_api_url,
    )
    http_client = LeanClient(
        # None behind a proxy: httpx's own transport, with these limits.
        transport=lean_transport_for(
            *urls, max_connections=50, max_keepalive=20, keepalive_expiry=KEEPALIVE_S
        ),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
    clob = JsonGetter(http_client, settings.polymarket_clob_url)
    gamma = JsonGetter(http_client, settings.polymarket_gamma_url)
    data_api = JsonGetter(http_client, settings.polymarket_data_api_url)
    environment = settings_environment(settings)
    return PolymarketSkill(
        session_factory=session_factory,
        http_client=http_client,
        market_data=MarketData(
            clob, gamma, gamma_timeout_s=settings.gamma_lookup_timeout_s, clock=clock
        ),
        data_api=data_api,
        registry=ClientRegistry(environment, session_factory, keybox, clock=clock),
        post_timeout_s=timeout_s,
        paper_mode=settings.execution_mode is ExecutionMode.PAPER,
        clock=clock,
    )
