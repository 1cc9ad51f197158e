"""``/data/trades`` by id and filters, taker and maker side, while trades settle.

Trades are found by id without a scan and settlement only walks trades not settled yet;
what a caller sees must stay what it was: the same trades, sides, filters and statuses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from polymarket.models.clob.order_response import AcceptedOrder

from tests.sim.conftest import CONDITION_ID, NO, YES, ClientFactory
from vincent.sim import LocalExchange, settlement
from vincent.sim.accounts import Ledger
from vincent.sim.records import TradeRecord


async def _trades(client: Any, **filters: str) -> list[tuple[str, str, str]]:
    """(id, trader side, status) of the account's trades with these filters."""
    return [
        (trade.id, trade.trader_side, trade.status)
        async for trade in client.list_account_trades(**filters).iter_items()
    ]


async def test_trades_by_id_and_filters_for_taker_and_maker(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    buyer_account = Account.create()
    seller = await make_client(account, account.address)
    buyer = await make_client(buyer_account, buyer_account.address)
    exchange.credit(account.address, token_id=YES, shares=20)
    exchange.credit(buyer_account.address, collateral=50)
    async with httpx.AsyncClient() as http:
        # Long enough that nothing settles while the MATCHED statuses are read, however
        # slow the machine; shortened below to let settlement finish.
        await http.post(f"{exchange.control_url}/settlement", json={"delay_s": 600})

    resting = await seller.place_limit_order(token_id=YES, side="SELL", price="0.5", size="10")
    assert isinstance(resting, AcceptedOrder)
    assert resting.status == "live"
    crossed = await buyer.place_limit_order(token_id=YES, side="BUY", price="0.5", size="10")
    assert isinstance(crossed, AcceptedOrder)
    sold = await seller.place_market_order(
        token_id=YES, side="SELL", shares="5", min_price="0.45", order_type="FOK"
    )
    assert isinstance(sold, AcceptedOrder)
    (between_users,) = crossed.trade_ids
    (with_the_book,) = sold.trade_ids

    assert await _trades(buyer, id=between_users) == [(between_users, "TAKER", "MATCHED")]
    assert await _trades(seller, id=between_users) == [(between_users, "MAKER", "MATCHED")]
    assert await _trades(seller, id=with_the_book) == [(with_the_book, "TAKER", "MATCHED")]
    assert await _trades(buyer, id=with_the_book) == []
    assert await _trades(seller, id="not-a-trade") == []
    assert await _trades(seller, id=between_users, asset_id=YES, market=CONDITION_ID) == [
        (between_users, "MAKER", "MATCHED")
    ]
    assert await _trades(seller, id=between_users, asset_id=NO) == []
    assert await _trades(seller, id=between_users, market="0x" + "00" * 32) == []
    assert await _trades(seller) == [
        (between_users, "MAKER", "MATCHED"),
        (with_the_book, "TAKER", "MATCHED"),
    ]
    assert await _trades(seller, asset_id=NO) == []

    async with httpx.AsyncClient() as http:
        await http.post(f"{exchange.control_url}/settlement", json={"delay_s": 0})
    assert await exchange.wait_for_settlement(timeout_s=5.0) == ["CONFIRMED", "CONFIRMED"]
    assert await _trades(buyer, id=between_users) == [(between_users, "TAKER", "CONFIRMED")]
    assert await _trades(seller, market=CONDITION_ID) == [
        (between_users, "MAKER", "CONFIRMED"),
        (with_the_book, "TAKER", "CONFIRMED"),
    ]
    assert exchange.balances(buyer_account.address)["shares"][YES] == "10"


def _trade(trade_id: str, ts_match_s: float, fails: bool = False) -> TradeRecord:
    return TradeRecord(
        trade_id=trade_id,
        taker_order_id="0x01",
        market=CONDITION_ID,
        asset_id=YES,
        side="SELL",
        price=Decimal("0.5"),
        size=1,
        outcome="Yes",
        owner="key",
        maker_address="0x" + "11" * 20,
        transaction_hash="0x02",
        makers=[],
        ts_match_s=ts_match_s,
        fails=fails,
    )


def test_settlement_hands_back_only_the_trades_still_settling() -> None:
    plan = settlement.SettlementPlan(delay_s=10.0)
    old, failing, young = (
        _trade("old", 0.0),
        _trade("failing", 4.0, fails=True),
        _trade("young", 9.0),
    )
    pending = settlement.advance([old, failing, young], Ledger(), plan, now_s=12.0)
    assert [t.status for t in (old, failing, young)] == ["CONFIRMED", "RETRYING", "MATCHED"]
    assert pending == [failing, young]
    pending = settlement.advance(pending, Ledger(), plan, now_s=14.0)
    assert [t.status for t in (failing, young)] == ["FAILED", "MINED"]
    assert pending == [young]
    assert settlement.advance(pending, Ledger(), plan, now_s=19.0) == []
    assert young.status == "CONFIRMED"
