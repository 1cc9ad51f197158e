"""Data API (positions), Gamma (markets) and relayer (wallet deployed) routes.

Read-only views of exchange state in Polymarket's shapes; mounted under /data-api,
/gamma and /relayer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vincent.sim.book import UNIT
from vincent.sim.errors import SimError
from vincent.sim.exchange import Exchange
from vincent.sim.markets import Market
from vincent.sim.state import query, sim_state


def current_price(exchange: Exchange, market: Market, token_id: str) -> Decimal:
    """Resolved: 1 or 0. Else the midpoint, else the last trade, else 0.5."""
    if market.closed:
        return Decimal(1 if market.winning_token_id == token_id else 0)
    book = exchange.books[token_id]
    bid, ask = book.best_bid(), book.best_ask()
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return market.last_trade_price.get(token_id, Decimal("0.5"))


def position(
    exchange: Exchange, user: str, market: Market, token_id: str, size: int, cost: int
) -> dict[str, Any]:
    shares = Decimal(size) / UNIT
    initial = Decimal(cost) / UNIT
    price = current_price(exchange, market, token_id)
    current = shares * price
    index = market.token_ids.index(token_id)
    return {
        "proxyWallet": user,
        "asset": token_id,
        "conditionId": market.condition_id,
        "size": float(shares),
        "avgPrice": float(initial / shares) if shares else 0.0,
        "initialValue": float(initial),
        "currentValue": float(current),
        "cashPnl": float(current - initial),
        "percentPnl": float((current - initial) / initial * 100) if initial else 0.0,
        "totalBought": float(shares),
        "realizedPnl": 0.0,
        "percentRealizedPnl": 0.0,
        "curPrice": float(price),
        "redeemable": market.closed,
        "mergeable": False,
        "title": market.title,
        "slug": market.slug,
        "icon": "",
        "eventSlug": market.slug,
        "outcome": market.outcomes[index],
        "outcomeIndex": index,
        "oppositeOutcome": market.outcomes[1 - index],
        "oppositeAsset": market.token_ids[1 - index],
        "endDate": market.end_date[:10],
        "negativeRisk": market.neg_risk,
    }


async def positions(request: Request) -> Response:
    exchange = sim_state(request).exchange
    user = query(request, "user")
    try:
        threshold = Decimal(request.query_params.get("sizeThreshold", "1"))
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", "100"))
    except (ArithmeticError, ValueError) as error:
        raise SimError(400, f"invalid query parameter: {error}") from error
    wanted = _multi(request, "market")
    items = []
    for token_id, holding in exchange.ledger.holdings(user).items():
        market = exchange.token_market.get(token_id)
        if market is None or holding.size <= 0 or Decimal(holding.size) / UNIT < threshold:
            continue
        if wanted and market.condition_id not in wanted:
            continue
        items.append(position(exchange, user, market, token_id, holding.size, holding.cost))
    return JSONResponse(items[offset : offset + limit])


async def gamma_markets(request: Request) -> Response:
    exchange = sim_state(request).exchange
    condition_ids = {c.lower() for c in _multi(request, "condition_ids")}
    token_ids = _multi(request, "clob_token_ids")
    slugs = _multi(request, "slug")
    items = []
    for market in exchange.markets.values():
        if condition_ids and market.condition_id.lower() not in condition_ids:
            continue
        if token_ids and not token_ids & set(market.token_ids):
            continue
        if slugs and market.slug not in slugs:
            continue
        prices = (
            current_price(exchange, market, market.token_ids[0]),
            current_price(exchange, market, market.token_ids[1]),
        )
        items.append(market.gamma(prices))
    return JSONResponse(items)


async def deployed(request: Request) -> Response:
    query(request, "address")
    return JSONResponse({"deployed": True})


def _multi(request: Request, name: str) -> set[str]:
    values: set[str] = set()
    for raw in request.query_params.getlist(name):
        values.update(v for v in raw.split(",") if v)
    return values


DATA_ROUTES = [Route("/positions", positions)]
GAMMA_ROUTES = [Route("/markets", gamma_markets)]
RELAYER_ROUTES = [Route("/deployed", deployed)]
