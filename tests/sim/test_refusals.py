"""Orders and requests Polymarket refuses are refused here the same way (status and text)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from polymarket._internal.actions.orders.post import build_post_order_request
from polymarket._internal.hmac import build_hmac_signature
from polymarket.errors import RequestRejectedError
from polymarket.models.clob import ApiKeyCreds
from polymarket.models.clob.order_response import AcceptedOrder

from tests.sim.conftest import V3_CONDITION_ID, V3_NO, V3_YES, YES, ClientFactory
from vincent.sim import LocalExchange

V1_EXCHANGE = "0x4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E"


async def post_raw(
    exchange: LocalExchange,
    creds: ApiKeyCreds,
    address: str,
    payload: Any,
    *,
    timestamp: int | None = None,
    secret: str | None = None,
) -> httpx.Response:
    body = json.dumps(payload, separators=(",", ":"))
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "POLY_ADDRESS": address,
        "POLY_API_KEY": creds.key,
        "POLY_PASSPHRASE": creds.passphrase,
        "POLY_TIMESTAMP": str(ts),
        "POLY_SIGNATURE": build_hmac_signature(
            secret=secret or creds.secret, timestamp=ts, method="POST", path="/order", body=body
        ),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(base_url=exchange.clob_url) as http:
        return await http.post("/order", content=body, headers=headers)


async def signed_payload(client: Any, owner: str) -> dict[str, Any]:
    signed = await client.create_limit_order(token_id=YES, side="SELL", price="0.7", size="10")
    return build_post_order_request(signed, owner_api_key=owner)[1]


async def test_wrong_hmac_and_stale_timestamp_are_401(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    payload = await signed_payload(client, client.credentials.key)
    other_secret = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1yaWdodC1vbmU="
    wrong = await post_raw(
        exchange, client.credentials, account.address, payload, secret=other_secret
    )
    stale = await post_raw(
        exchange, client.credentials, account.address, payload, timestamp=int(time.time()) - 600
    )
    for response in (wrong, stale):
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized/Invalid api key"}
    good = await post_raw(exchange, client.credentials, account.address, payload)
    assert good.status_code == 200
    assert good.json()["success"] is True


async def test_order_signed_by_another_key_is_refused(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    intruder_account = Account.create()
    intruder = await make_client(intruder_account, intruder_account.address)
    exchange.credit(intruder_account.address, token_id=YES, shares=20)
    payload = await signed_payload(intruder, client.credentials.key)
    response = await post_raw(exchange, client.credentials, account.address, payload)
    assert response.status_code == 400
    assert response.json() == {
        "error": "the order signer address has to be the address of the API KEY"
    }


async def test_v1_order_is_refused_with_version_mismatch(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    order = {
        "salt": 12345,
        "maker": account.address,
        "signer": account.address,
        "taker": "0x0000000000000000000000000000000000000000",
        "tokenId": int(YES),
        "makerAmount": 10_000_000,
        "takerAmount": 7_000_000,
        "expiration": 0,
        "nonce": 0,
        "feeRateBps": 0,
        "side": 1,
        "signatureType": 0,
    }
    typed = {
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "1",
            "chainId": 137,
            "verifyingContract": V1_EXCHANGE,
        },
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": [
                {"name": n, "type": t}
                for n, t in [
                    ("salt", "uint256"),
                    ("maker", "address"),
                    ("signer", "address"),
                    ("taker", "address"),
                    ("tokenId", "uint256"),
                    ("makerAmount", "uint256"),
                    ("takerAmount", "uint256"),
                    ("expiration", "uint256"),
                    ("nonce", "uint256"),
                    ("feeRateBps", "uint256"),
                    ("side", "uint8"),
                    ("signatureType", "uint8"),
                ]
            ],
        },
        "primaryType": "Order",
        "message": order,
    }
    signature = "0x" + account.sign_typed_data(full_message=typed).signature.hex()
    wire = {
        **{k: str(v) for k, v in order.items()},
        "salt": 12345,
        "side": "SELL",
        "signatureType": 0,
        "signature": signature,
    }
    payload = {"order": wire, "owner": client.credentials.key, "orderType": "GTC"}
    response = await post_raw(exchange, client.credentials, account.address, payload)
    assert response.status_code == 400
    assert response.json() == {"error": "order_version_mismatch"}


async def test_switching_version_2_to_3(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    exchange.create_market(V3_CONDITION_ID, [V3_YES, V3_NO])
    exchange.set_book(V3_YES, bids=[("0.40", 100)], asks=[("0.60", 100)])
    exchange.credit(account.address, token_id=V3_YES, shares=50)
    client = await make_client(account, account.address)
    with pytest.raises(RequestRejectedError) as refused:
        await client.place_limit_order(token_id=V3_YES, side="SELL", price="0.7", size="10")
    assert (refused.value.status, str(refused.value)) == (400, "order_version_mismatch")

    exchange.set_version(3)
    async with httpx.AsyncClient(base_url=exchange.clob_url) as http:
        assert (await http.get("/version")).json() == {"version": 3}
    placed = await client.place_limit_order(token_id=V3_YES, side="SELL", price="0.7", size="10")
    assert isinstance(placed, AcceptedOrder)
    # Legacy CTF tokens stay on Exchange V2 (the SDK signs them for version "2").
    exchange.credit(account.address, collateral=1)
    legacy = await client.place_limit_order(token_id=YES, side="BUY", price="0.1", size="5")
    assert isinstance(legacy, AcceptedOrder)


async def test_balance_tick_size_and_fok_refusals(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=500)
    with pytest.raises(RequestRejectedError) as no_balance:
        await client.place_limit_order(token_id=YES, side="SELL", price="0.7", size="501")
    assert str(no_balance.value) == "not enough balance / allowance"

    with pytest.raises(RequestRejectedError) as killed:
        await client.place_market_order(
            token_id=YES, side="SELL", shares="400", min_price="0.45", order_type="FOK"
        )
    assert str(killed.value) == (
        "order couldn't be fully filled. FOK orders are fully filled or killed."
    )
    assert exchange.balances(account.address)["shares"][YES] == "500"

    exchange.set_tick_size(YES, "0.1")  # the client still has 0.01 cached
    with pytest.raises(RequestRejectedError) as off_tick:
        await client.place_limit_order(token_id=YES, side="SELL", price="0.55", size="10")
    assert str(off_tick.value).endswith("breaks minimum tick size rule: 0.1")
    assert "Price (0.55)" in str(off_tick.value)


async def test_deposit_wallet_only_refuses_other_wallets(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    eoa = await make_client(account, account.address)
    deposit = await make_client(account)
    for client in (eoa, deposit):
        exchange.credit(str(client.wallet), token_id=YES, shares=10)
    exchange.require_deposit_wallet()
    with pytest.raises(RequestRejectedError) as refused:
        await eoa.place_limit_order(token_id=YES, side="SELL", price="0.7", size="10")
    assert str(refused.value) == "maker address not allowed, please use the deposit wallet flow"
    placed = await deposit.place_limit_order(token_id=YES, side="SELL", price="0.7", size="10")
    assert isinstance(placed, AcceptedOrder)
