"""The SDK environment module is pinned: these fail loudly when an SDK upgrade moves it."""

from __future__ import annotations

import dataclasses

import polymarket
import pytest
from polymarket._internal import environment as sdk_environment
from polymarket.environments import PRODUCTION

from vincent.skills.polymarket.environment import (
    PINNED_SDK_VERSION,
    ExchangeUrls,
    build_environment,
    environment_urls,
)

URLS = ExchangeUrls(
    clob_url="http://127.0.0.1:9/",
    ws_url="ws://127.0.0.1:9/ws/market",
    data_api_url="http://127.0.0.1:9/data-api",
    gamma_url="http://127.0.0.1:9/gamma",
    relayer_url="http://127.0.0.1:9/relayer",
)


def test_the_installed_sdk_is_the_pinned_one() -> None:
    assert polymarket.__version__ == PINNED_SDK_VERSION


def test_the_internal_environment_api_still_exists() -> None:
    for name in ("create_environment", "get_environment_config", "PRODUCTION_CONFIG"):
        assert hasattr(sdk_environment, name), f"polymarket._internal.environment.{name} is gone"
    fields = {f.name for f in dataclasses.fields(sdk_environment.EnvironmentConfig)}
    used = {"clob_url", "clob_market_ws_url", "clob_user_ws_url", "data_url", "gamma_url"}
    assert used | {"relayer_url", "chain_id", "wallet_derivation"} <= fields


def test_build_environment_swaps_urls_and_keeps_contracts() -> None:
    environment = build_environment(URLS)

    assert environment_urls(environment) == ExchangeUrls(
        clob_url="http://127.0.0.1:9",
        ws_url="ws://127.0.0.1:9/ws/market",
        data_api_url="http://127.0.0.1:9/data-api",
        gamma_url="http://127.0.0.1:9/gamma",
        relayer_url="http://127.0.0.1:9/relayer",
    )
    config = sdk_environment.get_environment_config(environment)
    production = sdk_environment.get_environment_config(PRODUCTION)
    assert config.clob_user_ws_url == "ws://127.0.0.1:9/ws/user"
    assert config.chain_id == production.chain_id == 137
    assert config.standard_exchange == production.standard_exchange
    assert config.wallet_derivation == production.wallet_derivation


def test_a_different_sdk_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from vincent.skills.polymarket import environment

    monkeypatch.setattr(environment, "sdk_version", "9.9.9")

    with pytest.raises(RuntimeError, match=r"must be 0\.14\.0.*was 9\.9\.9"):
        build_environment(URLS)
