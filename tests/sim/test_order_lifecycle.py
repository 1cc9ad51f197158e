"""The order-lifecycle faults: lost answers after a match, matching delays, settlement that
confirms or fails, and a stale balance cache, seen through the official SDK."""

from __future__ import annotations

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from polymarket.errors import RequestRejectedError, UnexpectedResponseError

from tests.sim.conftest import YES, ClientFactory
from vincent.sim import LocalExchange


async def test_a_lost_answer_after_the_match_still_fills(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    signed = await client.create_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
    )
    async with httpx.AsyncClient() as http:
        armed = await http.post(
            f"{exchange.control_url}/faults",
            json={"kind": "error_after", "path": "/order", "status": 502},
        )
    assert armed.status_code == 200

    with pytest.raises(RequestRejectedError) as answered:
        await client.post_order(signed)

    assert answered.value.status == 502
    [receipt] = exchange.order_receipts()
    assert exchange.balances(account.address)["shares"][YES] == "10"
    assert (await client.get_order(order_id=receipt.order_id)).status == "MATCHED"
    exchange.garble_next("/order")
    other = await client.create_market_order(
        token_id=YES, side="SELL", shares="5", min_price="0.45", order_type="FOK"
    )
    with pytest.raises(UnexpectedResponseError):
        await client.post_order(other)
    assert exchange.balances(account.address)["shares"][YES] == "5"


async def test_a_deferred_order_is_answered_delayed_and_matched_later(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    exchange.defer_next_orders(answer="delayed", delay_s=0.0)
    signed = await client.create_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
    )

    accepted = await client.post_order(signed)

    assert accepted.status == "delayed"  # type: ignore[union-attr]
    assert accepted.making_amount == 0  # type: ignore[union-attr]
    # The next request runs the matcher first: the order filled meanwhile.
    order = await client.get_order(order_id=accepted.order_id)  # type: ignore[union-attr]
    assert (order.status, order.size_matched) == ("MATCHED", 10)
    assert exchange.balances(account.address)["shares"][YES] == "10"


async def test_a_failing_settlement_returns_the_shares(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    async with httpx.AsyncClient() as http:
        await http.post(f"{exchange.control_url}/settlement", json={"delay_s": 0.1, "fail_next": 1})
    first = await client.place_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
    )
    second = await client.place_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.40", order_type="FOK"
    )
    assert exchange.trade_statuses() == ["MATCHED", "MATCHED"]
    assert exchange.balances(account.address)["shares"][YES] == "0"

    assert await exchange.wait_for_settlement(timeout_s=5.0) == ["FAILED", "CONFIRMED"]

    trades = [t async for t in client.list_account_trades().iter_items()]
    by_order = {t.taker_order_id: t.status for t in trades}
    assert by_order == {first.order_id: "FAILED", second.order_id: "CONFIRMED"}  # type: ignore[union-attr]
    assert exchange.balances(account.address)["shares"][YES] == "10"


async def test_a_stale_balance_cache_refuses_sells_until_updated(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    async with httpx.AsyncClient() as http:
        await http.post(f"{exchange.control_url}/stale-balances/{account.address}")
    signed = await client.create_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
    )
    with pytest.raises(RequestRejectedError) as refused:
        await client.post_order(signed)
    assert "not enough balance" in str(refused.value)
    stale = await client.get_balance_allowance(asset_type="CONDITIONAL", asset_id=YES)
    assert stale.balance == 0

    ctx = client._ctx
    await ctx.secure_clob.get_bytes(
        "/balance-allowance/update",
        params={"asset_type": "CONDITIONAL", "token_id": YES, "signature_type": 0},
    )
    fresh = await client.get_balance_allowance(asset_type="CONDITIONAL", asset_id=YES)

    assert fresh.balance == 20_000_000
    resigned = await client.create_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
    )
    assert (await client.post_order(resigned)).status == "matched"  # type: ignore[union-attr]
