"""Data API positions and Gamma markets follow fills; resolution makes positions redeemable."""

from __future__ import annotations

import json

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from polymarket.errors import RequestRejectedError

from tests.sim.conftest import CONDITION_ID, NO, YES, ClientFactory
from vincent.sim import LocalExchange


async def positions(exchange: LocalExchange, user: str, threshold: str = "0") -> list[dict]:
    async with httpx.AsyncClient(base_url=exchange.data_api_url) as http:
        response = await http.get("/positions", params={"user": user, "sizeThreshold": threshold})
    assert response.status_code == 200
    return list(response.json())


async def test_fills_move_the_sellers_position(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    exchange.credit(account.address, token_id=YES, shares=30, avg_price="0.40")
    [before] = await positions(exchange, account.address)
    assert (before["asset"], before["size"], before["avgPrice"]) == (YES, 30.0, 0.4)
    assert (before["conditionId"], before["outcome"], before["oppositeAsset"]) == (
        CONDITION_ID,
        "Yes",
        NO,
    )
    assert (before["title"], before["slug"], before["redeemable"]) == (
        "Will it rain?",
        "will-it-rain",
        False,
    )
    assert before["curPrice"] == 0.5

    client = await make_client(account, account.address)
    await client.place_market_order(
        token_id=YES, side="SELL", shares="29.5", min_price="0.45", order_type="FAK"
    )
    assert await positions(exchange, account.address, threshold="1") == []
    [after] = await positions(exchange, account.address)
    assert after["size"] == 0.5


async def test_resolution_makes_positions_redeemable_and_stops_trading(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    signed = await client.create_limit_order(token_id=YES, side="SELL", price="0.6", size="10")
    exchange.resolve(CONDITION_ID, YES)
    [position] = await positions(exchange, account.address)
    assert (position["redeemable"], position["curPrice"]) == (True, 1.0)
    with pytest.raises(RequestRejectedError) as refused:
        await client.post_order(signed)
    assert (refused.value.status, str(refused.value)) == (400, "market is closed")
    async with httpx.AsyncClient(base_url=exchange.clob_url) as http:
        book = await http.get("/book", params={"token_id": YES})
    assert book.status_code == 404
    assert book.json() == {"error": "No orderbook exists for the requested token id"}


async def test_gamma_markets_by_condition_token_and_slug(exchange: LocalExchange) -> None:
    async with httpx.AsyncClient(base_url=exchange.gamma_url) as http:
        by_condition = (await http.get("/markets", params={"condition_ids": CONDITION_ID})).json()
        by_token = (await http.get("/markets", params={"clob_token_ids": NO})).json()
        by_slug = (await http.get("/markets", params={"slug": "will-it-rain"})).json()
        none = (await http.get("/markets", params={"slug": "no-such-market"})).json()
    assert by_condition == by_token == by_slug
    [market] = by_condition
    assert json.loads(market["clobTokenIds"]) == [YES, NO]
    assert json.loads(market["outcomes"]) == ["Yes", "No"]
    assert (market["conditionId"], market["closed"], market["orderMinSize"]) == (
        CONDITION_ID,
        False,
        5.0,
    )
    assert none == []
