"""Injected REST faults: 5xx, 429 with Retry-After, hangs and withheld order answers."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from polymarket.errors import RateLimitError, RequestRejectedError, TransportError

from tests.sim.conftest import YES, ClientFactory
from vincent.sim import LocalExchange


async def test_error_and_rate_limit_for_the_next_calls(exchange: LocalExchange) -> None:
    exchange.fail_next("/book", count=2, status=502)
    exchange.rate_limit_next("/midpoint", retry_after_s=7)
    async with httpx.AsyncClient(base_url=exchange.clob_url) as http:
        statuses = [
            (await http.get("/book", params={"token_id": YES})).status_code for _ in range(3)
        ]
        limited = await http.get("/midpoint", params={"token_id": YES})
        after = await http.get("/midpoint", params={"token_id": YES})
    assert statuses == [502, 502, 200]
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert after.json() == {"mid": "0.5"}


async def test_sdk_sees_rate_limit_with_retry_after(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    exchange.rate_limit_next("/order", retry_after_s=3)
    with pytest.raises(RateLimitError) as limited:
        await client.place_limit_order(token_id=YES, side="SELL", price="0.7", size="10")
    assert limited.value.retry_after == 3
    exchange.fail_next("/order", status=500)
    with pytest.raises(RequestRejectedError) as failed:
        await client.place_limit_order(token_id=YES, side="SELL", price="0.7", size="10")
    assert failed.value.status == 500
    assert exchange.state.exchange.orders == {}


async def test_hang_until_the_client_gives_up(exchange: LocalExchange) -> None:
    exchange.hang_next("/book")
    async with httpx.AsyncClient(base_url=exchange.clob_url, timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/book", params={"token_id": YES})
        assert (await http.get("/book", params={"token_id": YES})).status_code == 200


@pytest.mark.parametrize("mode", ["close", "hang"])
async def test_withheld_order_is_executed_but_never_answered(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount, mode: str
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    signed = await client.create_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FAK"
    )
    exchange.withhold_next("/order", mode="close" if mode == "close" else "hang")
    if mode == "hang":
        # The SDK's read timeout (10 s) is too long for a test: release the hang instead.
        post = asyncio.create_task(client.post_order(signed))
        await exchange.wait_for_order_receipts(1)
        exchange.clear_faults()
        with pytest.raises(TransportError):
            await post
    else:
        with pytest.raises(TransportError):
            await client.post_order(signed)
    [receipt] = exchange.order_receipts()
    assert (receipt.token_id, receipt.side, receipt.size) == (YES, "SELL", "10")
    assert exchange.balances(account.address)["shares"][YES] == "10"
    with pytest.raises(RequestRejectedError) as duplicate:
        await client.post_order(signed)  # the exactly-once probe: it already reached us
    assert str(duplicate.value) == f"order {receipt.order_id} is invalid. Duplicated."
    order = await client.get_order(order_id=receipt.order_id)
    assert order.status == "MATCHED"
