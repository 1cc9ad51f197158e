"""Authenticated CLOB REST routes: API keys (L1), orders, cancels, order and trade lookups (L2).

Thin: verifies auth, parses, and hands over to ``placing`` / ``Exchange``. ``POST /order``
and ``GET /data/trades`` are plain functions of the request's parts (``accept_order``,
``trades_of``), which ``hot_routes`` serves as bare ASGI; their Starlette routes remain for
what it leaves (HEAD).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vincent.sim import placing, signatures, wallets
from vincent.sim.book import units_text
from vincent.sim.errors import SimError
from vincent.sim.orders import parse_post
from vincent.sim.records import TradeRecord
from vincent.sim.state import SimState, require_l2, sim_state
from vincent.sim.timing import OrderReceipt

_END_CURSOR = "LTE="


async def create_api_key(request: Request) -> Response:
    keys = sim_state(request).keys
    address, nonce = keys.l1_address(request.headers)
    return JSONResponse(keys.create(address, nonce).wire())


async def derive_api_key(request: Request) -> Response:
    keys = sim_state(request).keys
    address, nonce = keys.l1_address(request.headers)
    return JSONResponse(keys.derive(address, nonce).wire())


async def list_api_keys(request: Request) -> Response:
    creds = await require_l2(request)
    return JSONResponse({"apiKeys": sim_state(request).keys.keys_of(creds.address)})


async def post_order(request: Request) -> Response:
    state: SimState = request.app.state.sim
    ts_receive_ns = state.timing.now_ns()
    raw = await request.body()
    return JSONResponse(accept_order(state, request.headers, raw, ts_receive_ns))


def accept_order(
    state: SimState, headers: Mapping[str, str], raw: bytes, ts_receive_ns: int
) -> dict[str, Any]:
    """``POST /order`` after HTTP: L2 check, parse, verify, record the receipt, place.

    Also served as bare ASGI (``hot_routes``). Refusals raise ``SimError``; the answer is
    the order's JSON body.
    """
    placing.advance(state.exchange, time.monotonic())
    creds = state.keys.l2(headers, "POST", "/order", raw.decode(), time.time())
    posted = parse_post(_json(raw))
    if posted.owner != creds.key:
        raise SimError(400, "the order owner has to be the owner of the API KEY")
    order_id = placing.verify(state.exchange, posted, creds.address)
    state.timing.record_order(
        OrderReceipt(
            ts_receive_ns,
            order_id,
            posted.order.token_id,
            posted.order.side,
            units_text(posted.shares),
            posted.order_type,
        )
    )
    return placing.place(state.exchange, posted, order_id, creds.key)


async def post_orders(request: Request) -> Response:
    state = sim_state(request)
    creds = await require_l2(request)
    results: list[dict[str, Any]] = []
    for body in _json(await request.body()):
        try:
            posted = parse_post(body)
            order_id = placing.verify(state.exchange, posted, creds.address)
            results.append(placing.place(state.exchange, posted, order_id, creds.key))
        except SimError as error:
            results.append(
                {
                    "success": False,
                    "errorMsg": error.message,
                    "orderID": error.extra.get("orderID", ""),
                    "status": "",
                    "makingAmount": "",
                    "takingAmount": "",
                    "transactionsHashes": [],
                    "tradeIDs": [],
                }
            )
    return JSONResponse(results)


async def get_order(request: Request) -> Response:
    creds = await require_l2(request)
    order = sim_state(request).exchange.orders.get(request.path_params["order_id"])
    if order is None or order.owner != creds.key:
        return JSONResponse(None)
    return JSONResponse(order.wire())


async def list_orders(request: Request) -> Response:
    creds = await require_l2(request)
    params = request.query_params
    items = [
        o.wire()
        for o in sim_state(request).exchange.orders.values()
        if o.owner == creds.key
        and o.status == "LIVE"
        and params.get("id", o.order_id) == o.order_id
        and params.get("market", o.market) == o.market
        and params.get("asset_id", o.asset_id) == o.asset_id
    ]
    return JSONResponse(
        {"data": items, "next_cursor": _END_CURSOR, "limit": len(items), "count": len(items)}
    )


async def list_trades(request: Request) -> Response:
    state: SimState = request.app.state.sim
    return JSONResponse(trades_of(state, request.headers, request.query_params))


def trades_of(
    state: SimState, headers: Mapping[str, str], params: Mapping[str, str]
) -> dict[str, Any]:
    """``GET /data/trades`` after HTTP: L2 check, then the key's trades (as taker or
    maker), filtered by ``id``, ``asset_id`` and ``market``. Also served as bare ASGI
    (``hot_routes``)."""
    exchange = state.exchange
    placing.advance(exchange, time.monotonic())
    creds = state.keys.l2(headers, "GET", "/data/trades", "", time.time())
    trade_id = params.get("id")
    asset_id = params.get("asset_id")
    market = params.get("market")
    if trade_id is None:
        candidates: Iterable[TradeRecord] = exchange.trades
    else:
        # Trade ids are unique: the one trade with that id, if any.
        found = exchange.trades_by_id.get(trade_id)
        candidates = () if found is None else (found,)
    items: list[dict[str, Any]] = []
    for trade in candidates:
        if asset_id is not None and asset_id != trade.asset_id:
            continue
        if market is not None and market != trade.market:
            continue
        if trade.owner == creds.key:
            items.append(trade.wire("TAKER"))
        elif any(m.owner == creds.key for m in trade.makers):
            items.append(trade.wire("MAKER"))
    return {"data": items, "next_cursor": _END_CURSOR, "limit": len(items), "count": len(items)}


async def cancel_order(request: Request) -> Response:
    creds = await require_l2(request)
    body = _json(await request.body())
    order_id = body.get("orderID") if isinstance(body, dict) else None
    if not isinstance(order_id, str):
        raise SimError(400, "Invalid order payload")
    return JSONResponse(sim_state(request).exchange.cancel([order_id], creds.key))


async def cancel_orders(request: Request) -> Response:
    creds = await require_l2(request)
    body = _json(await request.body())
    if not isinstance(body, list):
        raise SimError(400, "Invalid order payload")
    return JSONResponse(sim_state(request).exchange.cancel([str(i) for i in body], creds.key))


async def cancel_all(request: Request) -> Response:
    creds = await require_l2(request)
    exchange = sim_state(request).exchange
    return JSONResponse(exchange.cancel(exchange.live_order_ids(creds.key), creds.key))


async def cancel_market_orders(request: Request) -> Response:
    creds = await require_l2(request)
    exchange = sim_state(request).exchange
    body = _json(await request.body()) or {}
    market, asset = body.get("market"), body.get("asset_id")
    ids = [
        o.order_id
        for o in exchange.orders.values()
        if o.owner == creds.key
        and o.status == "LIVE"
        and market in (None, "", o.market)
        and asset in (None, "", o.asset_id)
    ]
    return JSONResponse(exchange.cancel(ids, creds.key))


# What /balance-allowance answers as the allowance: unlimited (approvals are not modelled).
_MAX_ALLOWANCE = str(2**256 - 1)


def _wallet_of(known: set[str], eoa: str, signature_type: int) -> str:
    """The maker address an API key trades for with ``signature_type`` (0 EOA ... 3)."""
    if signature_type == 1:
        return wallets.proxy_wallet(eoa)
    if signature_type == 2:
        return wallets.safe_wallet(eoa)
    if signature_type == 3:
        beacon, legacy = wallets.deposit_wallets(eoa)
        return legacy if legacy.lower() in known else beacon
    return eoa


def _balance_target(request: Request, eoa: str) -> tuple[str, str]:
    params = request.query_params
    asset_type = params.get("asset_type", "COLLATERAL")
    try:
        signature_type = int(params.get("signature_type", "0"))
    except ValueError as error:
        raise SimError(400, "invalid signature_type") from error
    exchange = sim_state(request).exchange
    maker = _wallet_of(exchange.stale_balances | exchange.ledger.addresses(), eoa, signature_type)
    asset = "" if asset_type == "COLLATERAL" else params.get("token_id", "")
    return maker, asset


async def balance_allowance(request: Request) -> Response:
    """The balance an order may spend (what open orders reserve is taken off)."""
    creds = await require_l2(request)
    maker, asset = _balance_target(request, creds.address)
    exchange = sim_state(request).exchange
    stale = asset != "" and maker.lower() in exchange.stale_balances
    balance = 0 if stale else exchange.ledger.available(maker, asset)
    spenders = (signatures.EXCHANGE_V2, signatures.EXCHANGE_V2_NEG_RISK, signatures.EXCHANGE_V3)
    allowances = dict.fromkeys(spenders, _MAX_ALLOWANCE)
    return JSONResponse({"balance": str(max(balance, 0)), "allowances": allowances})


async def update_balance_allowance(request: Request) -> Response:
    """Refresh the exchange's balance cache for the key's wallet."""
    creds = await require_l2(request)
    maker, _ = _balance_target(request, creds.address)
    sim_state(request).exchange.stale_balances.discard(maker.lower())
    return JSONResponse("")


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise SimError(400, "Invalid order payload") from error


ROUTES = [
    Route("/auth/api-key", create_api_key, methods=["POST"]),
    Route("/auth/derive-api-key", derive_api_key, methods=["GET"]),
    Route("/auth/api-keys", list_api_keys, methods=["GET"]),
    Route("/order", post_order, methods=["POST"]),
    Route("/orders", post_orders, methods=["POST"]),
    Route("/order", cancel_order, methods=["DELETE"]),
    Route("/orders", cancel_orders, methods=["DELETE"]),
    Route("/cancel-all", cancel_all, methods=["DELETE"]),
    Route("/cancel-market-orders", cancel_market_orders, methods=["DELETE"]),
    Route("/data/order/{order_id}", get_order, methods=["GET"]),
    Route("/data/orders", list_orders, methods=["GET"]),
    Route("/data/trades", list_trades, methods=["GET"]),
    Route("/balance-allowance", balance_allowance, methods=["GET"]),
    Route("/balance-allowance/update", update_balance_allowance, methods=["GET"]),
]
