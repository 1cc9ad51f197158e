"""Builds an SDK environment pointing at a local exchange (test-only; pinned to SDK 0.14.0)."""

from __future__ import annotations

import dataclasses

from polymarket._internal.environment import create_environment, get_environment_config
from polymarket.environments import PRODUCTION, Environment

from vincent.sim import LocalExchange


def sdk_environment(exchange: LocalExchange) -> Environment:
    config = dataclasses.replace(
        get_environment_config(PRODUCTION),
        clob_url=exchange.clob_url,
        clob_market_ws_url=exchange.ws_url,
        data_url=exchange.data_api_url,
        gamma_url=exchange.gamma_url,
        relayer_url=exchange.relayer_url,
        rpc_url=exchange.base_url + "/rpc",
    )
    return create_environment(name="local-exchange", config=config)
