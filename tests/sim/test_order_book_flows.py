"""More order flows through the SDK: proxy wallets, market BUYs, cancels and order timing."""

from __future__ import annotations

import time
from decimal import Decimal

from eth_account.signers.local import LocalAccount
from polymarket._internal.wallet import derive_proxy_wallet_address
from polymarket.models.clob.order_response import AcceptedOrder

from tests.sim.conftest import NO, YES, ClientFactory
from tests.sim.sdk_env import sdk_environment
from vincent.sim import LocalExchange


async def test_proxy_wallet_market_buy(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    config = sdk_environment(exchange)._config
    proxy = str(derive_proxy_wallet_address(account.address, config.wallet_derivation))
    client = await make_client(account, proxy)
    assert client.wallet_type == "POLY_PROXY"
    exchange.credit(proxy, collateral=26)
    bought = await client.place_market_order(
        token_id=YES, side="BUY", amount="26", max_price="0.53", order_type="FOK"
    )
    assert isinstance(bought, AcceptedOrder)
    # 100 shares at 0.52 cost 52; 26 pUSD buy 50 of them.
    assert (bought.making_amount, bought.taking_amount) == (Decimal(26), Decimal(50))
    assert exchange.balances(proxy) == {"address": proxy, "collateral": "0", "shares": {YES: "50"}}


async def test_cancel_all_and_open_orders(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, collateral=10, token_id=NO, shares=10)
    placed = [
        await client.place_limit_order(token_id=YES, side="BUY", price="0.1", size="50"),
        await client.place_limit_order(token_id=NO, side="SELL", price="0.9", size="10"),
    ]
    ids = {order.order_id for order in placed if isinstance(order, AcceptedOrder)}
    assert len(ids) == 2
    open_ids = {o.id async for page in client.list_open_orders() for o in page.items}
    assert open_ids == ids
    canceled = await client.cancel_all()
    assert set(canceled.canceled) == ids
    assert [o async for page in client.list_open_orders() for o in page.items] == []
    assert exchange.balances(account.address)["collateral"] == "10"  # reservation released


async def test_order_receipts_record_every_post(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=10)
    exchange.clear_timing()
    before_ns = exchange.state.timing.now_ns()
    sold = await client.place_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.4", order_type="FOK"
    )
    assert isinstance(sold, AcceptedOrder)
    [receipt] = await exchange.wait_for_order_receipts(1)
    assert (receipt.order_id, receipt.token_id, receipt.side, receipt.size) == (
        sold.order_id,
        YES,
        "SELL",
        "10",
    )
    assert receipt.order_type == "FOK"
    assert before_ns < receipt.ts_receive_ns < exchange.state.timing.now_ns()


async def test_gtd_orders_expire(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    expiration = int(time.time()) + 200  # the SDK wants at least 3 minutes
    resting = await client.place_limit_order(
        token_id=YES, side="SELL", price="0.7", size="5", expiration=expiration
    )
    assert isinstance(resting, AcceptedOrder)
    order = await client.get_order(order_id=resting.order_id)
    assert (order.order_type, order.status) == ("GTD", "LIVE")
    exchange.state.exchange.expire_orders(expiration)  # what the next order at that time does
    assert (await client.get_order(order_id=resting.order_id)).status == "CANCELED"


async def test_neg_risk_market_uses_the_neg_risk_exchange(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    condition_id, yes, no = "0x" + "4e" * 32, "9" * 70 + "1", "9" * 70 + "2"
    exchange.create_market(condition_id, [yes, no], neg_risk=True)
    exchange.set_book(yes, bids=[("0.30", 50)], asks=[("0.35", 50)])
    exchange.credit(account.address, token_id=yes, shares=10)
    client = await make_client(account, account.address)
    sold = await client.place_market_order(
        token_id=yes, side="SELL", shares="10", min_price="0.3", order_type="FOK"
    )
    assert isinstance(sold, AcceptedOrder)
    assert sold.taking_amount == Decimal(3)
