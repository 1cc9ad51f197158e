"""Public CLOB REST routes: version, market info, book and prices.

Reads exchange state only; no auth.
"""

from __future__ import annotations

import time
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vincent.sim.errors import SimError
from vincent.sim.state import query, sim_state


async def ok(request: Request) -> Response:
    return PlainTextResponse("OK")


async def server_time(request: Request) -> Response:
    return PlainTextResponse(str(int(time.time())))


async def version(request: Request) -> Response:
    return JSONResponse({"version": sim_state(request).exchange.version})


async def markets_by_token(request: Request) -> Response:
    token_id = request.path_params["token_id"]
    market = sim_state(request).exchange.market_of(token_id)
    return JSONResponse(market.markets_by_token(token_id))


async def clob_market(request: Request) -> Response:
    market = sim_state(request).exchange.market(request.path_params["condition_id"])
    return JSONResponse(market.clob_market())


async def market_detail(request: Request) -> Response:
    market = sim_state(request).exchange.market(request.path_params["condition_id"])
    return JSONResponse(market.clob_detail())


async def book(request: Request) -> Response:
    return JSONResponse(sim_state(request).exchange.book_rest(query(request, "token_id")))


def _top(request: Request) -> tuple[Decimal | None, Decimal | None]:
    book = sim_state(request).exchange.book(query(request, "token_id"))
    return book.best_bid(), book.best_ask()


async def midpoint(request: Request) -> Response:
    bid, ask = _top(request)
    if bid is None or ask is None:
        raise SimError(404, "No orderbook exists for the requested token id")
    return JSONResponse({"mid": str(((bid + ask) / 2).normalize())})


async def price(request: Request) -> Response:
    side = query(request, "side").upper()
    bid, ask = _top(request)
    # side=BUY answers the best bid, side=SELL the best ask (Polymarket's convention).
    value = bid if side == "BUY" else ask if side == "SELL" else None
    if side not in ("BUY", "SELL"):
        raise SimError(400, f"side must be BUY or SELL, was {side}")
    if value is None:
        raise SimError(404, "No orderbook exists for the requested token id")
    return JSONResponse({"price": str(value)})


async def spread(request: Request) -> Response:
    bid, ask = _top(request)
    if bid is None or ask is None:
        raise SimError(404, "No orderbook exists for the requested token id")
    return JSONResponse({"spread": str(ask - bid)})


async def tick_size(request: Request) -> Response:
    market = sim_state(request).exchange.market_of(query(request, "token_id"))
    return JSONResponse({"minimum_tick_size": float(market.tick_size)})


async def neg_risk(request: Request) -> Response:
    market = sim_state(request).exchange.market_of(query(request, "token_id"))
    return JSONResponse({"neg_risk": market.neg_risk})


async def fee_rate(request: Request) -> Response:
    market = sim_state(request).exchange.market_of(query(request, "token_id"))
    return JSONResponse({"base_fee": int(market.fee_rate * 10_000)})


async def last_trade_price(request: Request) -> Response:
    token_id = query(request, "token_id")
    market = sim_state(request).exchange.market_of(token_id)
    last = market.last_trade_price.get(token_id)
    return JSONResponse({"price": "" if last is None else str(last), "side": ""})


ROUTES = [
    Route("/", ok),
    Route("/time", server_time),
    Route("/version", version),
    Route("/markets-by-token/{token_id}", markets_by_token),
    Route("/clob-markets/{condition_id}", clob_market),
    Route("/markets/{condition_id}", market_detail),
    Route("/book", book),
    Route("/midpoint", midpoint),
    Route("/price", price),
    Route("/spread", spread),
    Route("/tick-size", tick_size),
    Route("/neg-risk", neg_risk),
    Route("/fee-rate", fee_rate),
    Route("/last-trade-price", last_trade_price),
]
