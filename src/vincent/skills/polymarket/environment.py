"""The one place that points the Polymarket SDK at our URLs (production or the local exchange).

The SDK builds environments other than its own only through its internal module
``polymarket._internal.environment``; that module is pinned with the SDK version
(``polymarket-client==0.14.0``) and ``tests/skill/test_environment.py`` fails loudly when an
upgrade moves it. Nothing else in the project imports SDK internals for this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from polymarket import __version__ as sdk_version
from polymarket._internal import environment as sdk_environment
from polymarket.environments import PRODUCTION, Environment

from vincent.config import Settings

PINNED_SDK_VERSION = "0.14.0"


@dataclass(frozen=True, slots=True)
class ExchangeUrls:
    """Base URLs of the exchange services the SDK and the skill talk to."""

    clob_url: str
    ws_url: str
    data_api_url: str
    gamma_url: str
    relayer_url: str


def _strip(url: str) -> str:
    return url.rstrip("/")


def wallet_derivation_config() -> Any:
    """The SDK's wallet-derivation constants (factories, init-code hashes) for Polygon."""
    return sdk_environment.PRODUCTION_CONFIG.wallet_derivation


def build_environment(urls: ExchangeUrls, *, name: str = "vincent") -> Environment:
    """Return an SDK environment: production's contracts and chain, with our service URLs.

    Raises ``RuntimeError`` when the installed SDK is not the pinned version, because the
    internal module used here is not a public API.
    """
    if sdk_version != PINNED_SDK_VERSION:
        raise RuntimeError(
            f"polymarket-client must be {PINNED_SDK_VERSION} (environment.py builds SDK "
            f"environments through its internal module), was {sdk_version}"
        )
    base = sdk_environment.get_environment_config(PRODUCTION)
    user_ws = _strip(urls.ws_url)
    if user_ws.endswith("/market"):
        user_ws = user_ws[: -len("/market")] + "/user"
    config = dataclasses.replace(
        base,
        clob_url=_strip(urls.clob_url),
        clob_market_ws_url=_strip(urls.ws_url),
        clob_user_ws_url=user_ws,
        data_url=_strip(urls.data_api_url),
        gamma_url=_strip(urls.gamma_url),
        relayer_url=_strip(urls.relayer_url),
    )
    return sdk_environment.create_environment(name=name, config=config)


def settings_environment(settings: Settings) -> Environment:
    """The exchange ``settings`` name, as the skill's SDK clients see it."""
    return build_environment(
        ExchangeUrls(
            clob_url=settings.polymarket_clob_url,
            ws_url=settings.polymarket_ws_url,
            data_api_url=settings.polymarket_data_api_url,
            gamma_url=settings.polymarket_gamma_url,
            relayer_url=settings.polymarket_relayer_url,
        )
    )


def environment_urls(environment: Environment) -> ExchangeUrls:
    """Read back the service URLs an environment carries (used by the drift test)."""
    config = sdk_environment.get_environment_config(environment)
    return ExchangeUrls(
        clob_url=config.clob_url,
        ws_url=config.clob_market_ws_url,
        data_api_url=config.data_url,
        gamma_url=config.gamma_url,
        relayer_url=config.relayer_url,
    )
