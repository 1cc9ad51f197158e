"""Placing an order: verify, check, match, settle, rest the remainder, publish.

The only code that turns a ``POST /order`` into fills. Uses ``matching`` (pure) for the
fills and writes through the ``Exchange`` it is given.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from eth_utils.crypto import keccak

from vincent.sim import addresses, events, matching, settlement, signatures, wallets
from vincent.sim.accounts import Ledger
from vincent.sim.book import units_text
from vincent.sim.errors import (
    FAK_NOT_FILLED,
    FOK_NOT_FILLED,
    INVALID_SIGNATURE,
    MAKER_NOT_WALLET,
    MARKET_CLOSED,
    NOT_ENOUGH_BALANCE,
    ORDER_VERSION_MISMATCH,
    SIGNER_NOT_API_KEY,
    SimError,
)
from vincent.sim.exchange import DeferredOrder, Exchange
from vincent.sim.orders import PostedOrder, check_amounts
from vincent.sim.records import LedgerMove, MakerFill, OrderRecord, TradeRecord

_ALL_DOMAINS = (
    ("2", signatures.EXCHANGE_V2),
    ("2", signatures.EXCHANGE_V2_NEG_RISK),
    ("3", signatures.EXCHANGE_V3),
)


def expected_domain(exchange: Exchange, token_id: str, neg_risk: bool) -> tuple[str, str]:
    """Exchange V3 serves protocol-v2 position ids once ``/version`` is 3; else V2."""
    version = 3 if exchange.version == 3 and signatures.is_v3_token(token_id) else 2
    return signatures.domain_for(version, neg_risk)


def verify(exchange: Exchange, posted: PostedOrder, key_address: str) -> str:
    """Check signature, version, wallet and key ownership; return the order id."""
    order = posted.order
    market = exchange.market_of(order.token_id)
    version, contract = expected_domain(exchange, order.token_id, market.neg_risk)
    try:
        verified = signatures.verify_order(order, version, contract)
    except SimError:
        for other_version, other_contract in _ALL_DOMAINS:
            if (other_version, other_contract) == (version, contract):
                continue
            try:
                signatures.verify_order(order, other_version, other_contract)
            except SimError:
                continue
            raise SimError(400, ORDER_VERSION_MISMATCH) from None
        raise
    if exchange.deposit_wallet_only and order.signature_type != 3:
        raise SimError(400, MAKER_NOT_WALLET)
    if order.signature_type == 3:
        if addresses.checksum(order.signer) != addresses.checksum(order.maker):
            raise SimError(400, INVALID_SIGNATURE)
    elif not wallets.wallet_matches(order.signature_type, order.signer, order.maker):
        raise SimError(400, INVALID_SIGNATURE)
    if verified.eoa != addresses.checksum(key_address):
        raise SimError(400, SIGNER_NOT_API_KEY)
    # The digest the signature was checked against, over (version, contract): the order id.
    return "0x" + verified.digest.hex()


def place(exchange: Exchange, posted: PostedOrder, order_id: str, api_key: str) -> dict[str, Any]:
    """Execute a verified order. Refusals raise ``SimError``; success returns the body."""
    order = posted.order
    token_id = order.token_id
    market = exchange.market_of(token_id)
    if order_id in exchange.orders:
        raise SimError(400, f"order {order_id} is invalid. Duplicated.")
    if market.closed:
        raise SimError(400, MARKET_CLOSED)
    now_s = time.time()
    if posted.order_type == "GTD" and order.expiration <= now_s:
        raise SimError(400, "invalid expiration")
    exchange.expire_orders(now_s)
    check_amounts(posted, order_id, market.tick_size, market.min_order_size)
    maker = addresses.checksum(order.maker)
    asset = token_id if order.side == "SELL" else ""
    if order.side == "SELL" and maker.lower() in exchange.stale_balances:
        # The exchange's balance cache has not seen the shares arrive yet.
        raise SimError(400, NOT_ENOUGH_BALANCE)
    if exchange.ledger.available(maker, asset) < order.maker_amount:
        raise SimError(400, NOT_ENOUGH_BALANCE)
    if exchange.deferral.remaining > 0 and not posted.post_only:
        return _defer(exchange, posted, order_id, api_key)
    return _execute(exchange, posted, order_id, api_key)


def _defer(exchange: Exchange, posted: PostedOrder, order_id: str, api_key: str) -> dict[str, Any]:
    """Accept an order without matching it yet (answered ``delayed`` or ``live``)."""
    plan = exchange.deferral
    plan.remaining -= 1
    order = posted.order
    market = exchange.market_of(order.token_id)
    # Held for the order while it waits, so nothing else spends it meanwhile.
    exchange.ledger.reserve(order.maker, _asset(posted), order.maker_amount)
    exchange.orders[order_id] = OrderRecord(
        order_id=order_id,
        market=market.condition_id,
        asset_id=order.token_id,
        owner=api_key,
        maker_address=addresses.checksum(order.maker),
        side=order.side,
        price=posted.price,
        original_size=posted.shares,
        order_type=posted.order_type,
        outcome=market.outcome_of(order.token_id),
        expiration=order.expiration,
        status="DELAYED",
    )
    exchange.deferred.append(
        DeferredOrder(order_id, posted, api_key, time.monotonic() + plan.delay_s)
    )
    return {
        "success": True,
        "errorMsg": "",
        "orderID": order_id,
        "status": plan.answer,
        "makingAmount": "",
        "takingAmount": "",
        "transactionsHashes": [],
        "tradeIDs": [],
    }


def advance(exchange: Exchange, now_s: float) -> None:
    """Match deferred orders whose delay passed, then move trade settlement on.

    Called before every request is served, so time-based changes are seen in order.
    """
    due = [d for d in exchange.deferred if d.due_s <= now_s]
    if due:
        exchange.deferred = [d for d in exchange.deferred if d.due_s > now_s]
        for deferred in due:
            del exchange.orders[deferred.order_id]
            order = deferred.posted.order
            exchange.ledger.release(order.maker, _asset(deferred.posted), order.maker_amount)
            # A FOK/FAK without a match is killed: _execute records it CANCELED.
            with contextlib.suppress(SimError):
                _execute(exchange, deferred.posted, deferred.order_id, deferred.api_key)
    if exchange.unsettled:
        exchange.unsettled = settlement.advance(
            exchange.unsettled, exchange.ledger, exchange.settlement, now_s
        )


def _asset(posted: PostedOrder) -> str:
    """What an order spends: the token's shares (SELL) or collateral, "" (BUY)."""
    return posted.order.token_id if posted.order.side == "SELL" else ""


def _execute(
    exchange: Exchange, posted: PostedOrder, order_id: str, api_key: str
) -> dict[str, Any]:
    """Match a checked order now, settle its fills, rest the remainder; the answer body."""
    order = posted.order
    token_id = order.token_id
    market = exchange.market_of(token_id)
    maker = addresses.checksum(order.maker)
    asset = token_id if order.side == "SELL" else ""
    book = exchange.books[token_id]
    limit = posted.price
    market_buy = posted.is_market and order.side == "BUY"
    fills = matching.plan(
        book,
        order.side,
        limit,
        shares=None if market_buy else posted.shares,
        budget=order.maker_amount if market_buy else None,
        taker=maker,
    )
    filled = sum(f.size for f in fills)
    spent = sum(f.collateral for f in fills)
    record = OrderRecord(
        order_id=order_id,
        market=market.condition_id,
        asset_id=token_id,
        owner=api_key,
        maker_address=maker,
        side=order.side,
        price=limit,
        original_size=filled if market_buy else posted.shares,
        order_type=posted.order_type,
        outcome=market.outcome_of(token_id),
        expiration=order.expiration,
    )
    if posted.order_type == "FOK":
        complete = (
            (order.maker_amount - spent <= len(fills)) if market_buy else (filled == posted.shares)
        )
        if not fills or not complete:
            _remember_killed(exchange, record)
            raise SimError(400, FOK_NOT_FILLED, orderID=order_id)
    if posted.order_type == "FAK" and not fills:
        _remember_killed(exchange, record)
        raise SimError(400, FAK_NOT_FILLED, orderID=order_id)
    if posted.post_only and fills:
        raise SimError(400, "invalid post-only order: order crosses book")

    trade = _settle(exchange, record, fills) if fills else None
    record.size_matched = filled
    exchange.orders[order_id] = record
    remaining = posted.shares - filled
    if posted.is_market or remaining <= 0:
        record.status = "MATCHED" if fills else "CANCELED"
    else:
        book.rest(order.side, limit, order_id, maker, remaining)
        exchange.watch_expiry(record)
        reserve = remaining if order.side == "SELL" else int(limit * remaining)
        exchange.ledger.reserve(maker, asset, reserve)
        exchange.publish_levels(token_id, [(order.side, limit)])
    making, taking = (filled, spent) if order.side == "SELL" else (spent, filled)
    return {
        "success": True,
        "errorMsg": "",
        "orderID": order_id,
        "status": "matched" if fills else "live",
        "makingAmount": units_text(making) if fills else "",
        "takingAmount": units_text(taking) if fills else "",
        "transactionsHashes": [trade.transaction_hash] if trade else [],
        "tradeIDs": [trade.trade_id] if trade else [],
    }


def _remember_killed(exchange: Exchange, record: OrderRecord) -> None:
    record.status = "CANCELED"
    exchange.orders[record.order_id] = record


def _settle(exchange: Exchange, record: OrderRecord, fills: list[matching.Fill]) -> TradeRecord:
    """Move shares and collateral for every fill, record the trade, publish the changes."""
    token_id = record.asset_id
    market = exchange.token_market[token_id]
    book = exchange.books[token_id]
    ledger = exchange.ledger
    matching.apply(book, record.side, fills)
    makers: list[MakerFill] = []
    moves: list[LedgerMove] = []
    trade_id = str(uuid.uuid4())
    for fill in fills:
        moves.append(_move(ledger, record.maker_address, token_id, record.side, fill))
        resting = exchange.orders.get(fill.order_id) if fill.order_id else None
        if resting is not None:
            moves.append(_move(ledger, resting.maker_address, token_id, resting.side, fill))
            _fill_resting(exchange, resting, fill, trade_id)
        makers.append(
            MakerFill(
                fill.order_id, resting.owner if resting else None, fill.owner, fill.price, fill.size
            )
        )
    size = sum(f.size for f in fills)
    last_price = fills[-1].price
    trade = TradeRecord(
        trade_id=trade_id,
        taker_order_id=record.order_id,
        market=market.condition_id,
        asset_id=token_id,
        side=record.side,
        price=last_price,
        size=size,
        outcome=record.outcome,
        owner=record.owner,
        maker_address=record.maker_address,
        transaction_hash="0x" + keccak(text=trade_id).hex(),
        makers=makers,
        fails=exchange.settlement.take_failure(),
        moves=moves,
    )
    exchange.add_trade(trade)
    record.associate_trades.append(trade_id)
    market.last_trade_price[token_id] = last_price
    exchange.feed.publish(
        events.last_trade_price_event(
            market.condition_id, token_id, last_price, record.side, units_text(size)
        ),
        [token_id],
    )
    # Polymarket sends a trade's book change as a fresh ``book`` snapshot, not price_change.
    exchange.publish_book(token_id)
    return trade


def _fill_resting(
    exchange: Exchange, resting: OrderRecord, fill: matching.Fill, trade_id: str
) -> None:
    """The resting (maker) side of a fill between two users."""
    ledger = exchange.ledger
    token_id = resting.asset_id
    if resting.side == "BUY":
        ledger.release(resting.maker_address, "", int(resting.price * fill.size))
    else:
        ledger.release(resting.maker_address, token_id, fill.size)
    resting.size_matched += fill.size
    resting.associate_trades.append(trade_id)
    if resting.size_matched >= resting.original_size:
        resting.status = "MATCHED"


def _move(
    ledger: Ledger, address: str, token_id: str, side: str, fill: matching.Fill
) -> LedgerMove:
    """Apply one side of a fill to the ledger; return the move (to undo a failed settlement)."""
    if side == "SELL":
        cost = ledger.sell(address, token_id, fill.size, fill.collateral)
        return LedgerMove(address, token_id, -fill.size, -cost, fill.collateral)
    ledger.buy(address, token_id, fill.size, fill.collateral)
    return LedgerMove(address, token_id, fill.size, fill.collateral, -fill.collateral)
