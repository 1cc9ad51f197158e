"""Fixtures: a running local exchange with one market, and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from polymarket import AsyncSecureClient

from tests.sim.sdk_env import sdk_environment
from vincent.sim import LocalExchange

CONDITION_ID = "0x" + "c1" * 32
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
# Protocol-v2 position ids (bits 40..103 zero): the SDK signs these for Exchange V3.
V3_CONDITION_ID = "0x" + "d3" * 32
V3_YES = str((1 << 248) | (0xABCDEF << 104) | 0)
V3_NO = str((1 << 248) | (0xABCDEF << 104) | 1)

ClientFactory = Callable[..., Awaitable[AsyncSecureClient]]


@pytest.fixture
async def exchange() -> AsyncIterator[LocalExchange]:
    async with LocalExchange.start(host="127.0.0.1", port=0) as ex:
        ex.create_market(CONDITION_ID, [YES, NO], title="Will it rain?", slug="will-it-rain")
        ex.set_book(YES, bids=[("0.48", 100), ("0.47", 200)], asks=[("0.52", 100), ("0.53", 50)])
        ex.set_book(NO, bids=[("0.47", 100)], asks=[("0.53", 100)])
        yield ex


@pytest.fixture
async def make_client(exchange: LocalExchange) -> AsyncIterator[ClientFactory]:
    """``await make_client(account, wallet)``: an SDK client for that wallet (closed after)."""
    clients: list[AsyncSecureClient] = []

    async def make(account: LocalAccount, wallet: str | None = None) -> AsyncSecureClient:
        client = await AsyncSecureClient.create(
            private_key=account.key.hex(), wallet=wallet, environment=sdk_environment(exchange)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def account() -> LocalAccount:
    return Account.create()
