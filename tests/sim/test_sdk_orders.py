"""The official SDK against the local exchange: credentials, reads, market and limit orders."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_account.signers.local import LocalAccount
from polymarket._internal.wallet import (
    derive_beacon_deposit_wallet_address,
    derive_safe_wallet_address,
)
from polymarket.errors import RequestRejectedError
from polymarket.models.clob.order_response import AcceptedOrder

from tests.sim.conftest import YES, ClientFactory
from tests.sim.sdk_env import sdk_environment
from vincent.sim import LocalExchange


def beacon_wallet_of(exchange: LocalExchange, account: LocalAccount) -> str:
    config = sdk_environment(exchange)._config
    return str(derive_beacon_deposit_wallet_address(account.address, config.wallet_derivation))


def safe_of(exchange: LocalExchange, account: LocalAccount) -> str:
    config = sdk_environment(exchange)._config  # the SDK's own derivation settings
    return str(derive_safe_wallet_address(account.address, config.wallet_derivation))


async def test_credentials_are_created_then_derived(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    first = await make_client(account, account.address)
    second = await make_client(account, account.address)
    assert first.credentials.key == second.credentials.key
    assert first.credentials.key in await first.fetch_api_keys()


async def test_reads_book_midpoint_and_tick_size(
    make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    book = await client.get_order_book(token_id=YES)
    assert [level.price for level in book.bids] == [Decimal("0.47"), Decimal("0.48")]
    assert [level.price for level in book.asks] == [Decimal("0.53"), Decimal("0.52")]
    assert await client.get_midpoint(token_id=YES) == Decimal("0.5")
    assert book.tick_size == Decimal("0.01")


@pytest.mark.parametrize("wallet_kind", ["eoa", "safe", "deposit", "deposit-beacon"])
async def test_market_sell_fills_and_limit_order_rests(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount, wallet_kind: str
) -> None:
    wallet = {
        "eoa": account.address,
        "safe": safe_of(exchange, account),
        "deposit": None,  # the SDK's default: the signer's deposit wallet
        "deposit-beacon": beacon_wallet_of(exchange, account),
    }[wallet_kind]
    client = await make_client(account, wallet)
    expected_type = {
        "eoa": "EOA",
        "safe": "GNOSIS_SAFE",
        "deposit": "DEPOSIT_WALLET",
        "deposit-beacon": "DEPOSIT_WALLET",
    }
    assert client.wallet_type == expected_type[wallet_kind]
    exchange.credit(str(client.wallet), collateral=50, token_id=YES, shares=40, avg_price="0.4")

    sold = await client.place_market_order(
        token_id=YES, side="SELL", shares="15", min_price="0.45", order_type="FAK"
    )
    assert isinstance(sold, AcceptedOrder)
    assert sold.status == "matched"
    assert (sold.making_amount, sold.taking_amount) == (Decimal(15), Decimal("7.2"))
    balances = exchange.balances(str(client.wallet))
    assert balances["shares"][YES] == "25"
    assert balances["collateral"] == "57.2"

    resting = await client.place_limit_order(token_id=YES, side="SELL", price="0.6", size="10")
    assert isinstance(resting, AcceptedOrder)
    assert resting.status == "live"
    looked_up = await client.get_order(order_id=resting.order_id)
    assert (looked_up.status, looked_up.price, looked_up.original_size) == (
        "LIVE",
        Decimal("0.6"),
        Decimal(10),
    )
    book = await client.get_order_book(token_id=YES)
    assert (Decimal("0.6"), Decimal(10)) in [(lv.price, lv.size) for lv in book.asks]
    trades = [trade async for page in client.list_account_trades() for trade in page.items]
    assert [trade.size for trade in trades] == [Decimal(15)]

    canceled = await client.cancel_order(order_id=resting.order_id)
    assert resting.order_id in canceled.canceled


async def test_same_signed_order_twice_is_duplicated(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    signed = await client.create_limit_order(token_id=YES, side="SELL", price="0.7", size="10")
    first = await client.post_order(signed)
    assert isinstance(first, AcceptedOrder)
    with pytest.raises(RequestRejectedError) as refused:
        await client.post_order(signed)
    assert refused.value.status == 400
    assert str(refused.value) == f"order {first.order_id} is invalid. Duplicated."


async def test_user_orders_match_each_other(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    from eth_account import Account

    seller = await make_client(account, account.address)
    buyer_account = Account.create()
    buyer = await make_client(buyer_account, buyer_account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    exchange.credit(buyer_account.address, collateral=20)
    ask = await seller.place_limit_order(token_id=YES, side="SELL", price="0.5", size="10")
    assert isinstance(ask, AcceptedOrder)
    bought = await buyer.place_limit_order(token_id=YES, side="BUY", price="0.5", size="10")
    assert isinstance(bought, AcceptedOrder)
    assert bought.status == "matched"
    assert exchange.balances(buyer_account.address)["shares"][YES] == "10"
    assert exchange.balances(account.address)["collateral"] == "5"
    assert (await seller.get_order(order_id=ask.order_id)).status == "MATCHED"
