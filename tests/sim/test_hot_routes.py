"""``hot_routes``: POST /order and GET /data/trades served as bare ASGI answer exactly as the
Starlette routes they stand in front of (status, headers, body bytes), refusals included."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from polymarket._internal.hmac import build_hmac_signature
from polymarket.models.clob import ApiKeyCreds
from starlette.types import ASGIApp

from tests.sim.conftest import YES, ClientFactory
from tests.sim.test_refusals import signed_payload
from vincent.sim import LocalExchange
from vincent.sim.faults import FaultMiddleware
from vincent.sim.hot_routes import HotRoutes

Request = tuple[str, str, dict[str, str], bytes]


def _l2(creds: ApiKeyCreds, address: str, method: str, path: str, body: str) -> dict[str, str]:
    ts = int(time.time())
    return {
        "POLY_ADDRESS": address,
        "POLY_API_KEY": creds.key,
        "POLY_PASSPHRASE": creds.passphrase,
        "POLY_TIMESTAMP": str(ts),
        "POLY_SIGNATURE": build_hmac_signature(
            secret=creds.secret, timestamp=ts, method=method, path=path, body=body
        ),
    }


def _apps(exchange: LocalExchange) -> tuple[ASGIApp, ASGIApp]:
    """The exchange's app (faults, hot routes, Starlette) and its Starlette app alone."""
    app = exchange.app
    assert isinstance(app, FaultMiddleware) and isinstance(app.app, HotRoutes)
    return app, app.app.app


async def _answer(app: ASGIApp, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
    method, url, headers, body = request
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        response = await http.request(method, url, headers=headers, content=body)
    return response.status_code, sorted(response.headers.items()), response.content


async def _both(exchange: LocalExchange, request: Request) -> tuple[Any, Any]:
    full, starlette = _apps(exchange)
    return await _answer(full, request), await _answer(starlette, request)


async def test_order_refusals_are_answered_as_starlettes_route_does(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    creds = client.credentials
    payload = await signed_payload(client, creds.key)  # 10 shares; none held: refused
    body = json.dumps(payload, separators=(",", ":"))
    good = _l2(creds, account.address, "POST", "/order", body)
    other_owner = json.dumps(payload | {"owner": "someone-else"}, separators=(",", ":"))
    requests: list[Request] = [
        ("POST", "/order", good, body.encode()),  # not enough balance
        ("POST", "/order", good | {"POLY_SIGNATURE": "bad"}, body.encode()),
        ("POST", "/order", good | {"POLY_TIMESTAMP": "1"}, body.encode()),
        ("POST", "/order", {k: v for k, v in good.items() if k != "POLY_API_KEY"}, b""),
        ("POST", "/order", _l2(creds, account.address, "POST", "/order", "{"), b"{"),
        ("POST", "/order", _l2(creds, account.address, "POST", "/order", "[]"), b"[]"),
        (
            "POST",
            "/order",
            _l2(creds, account.address, "POST", "/order", other_owner),
            other_owner.encode(),
        ),
        ("POST", "/order", good, b"\xff\xfe"),  # not UTF-8: a 500, logged
    ]
    for request in requests:
        ours, theirs = await _both(exchange, request)
        assert ours == theirs, request
    assert exchange.state.exchange.trades == []


async def test_trade_lookups_are_answered_as_starlettes_route_does(
    exchange: LocalExchange, make_client: ClientFactory, account: LocalAccount
) -> None:
    client = await make_client(account, account.address)
    creds = client.credentials
    exchange.credit(account.address, token_id=YES, shares=20)
    signed = await client.create_market_order(
        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
    )
    placed = await client.post_order(signed)
    assert placed.status == "matched"  # type: ignore[union-attr]
    trade_id = exchange.state.exchange.trades[0].trade_id
    headers = _l2(creds, account.address, "GET", "/data/trades", "")
    for query in (
        f"?id={trade_id}",
        "",
        f"?id={trade_id}&asset_id={YES}",
        f"?id={trade_id}&asset_id=1",
        f"?id=nope&id={trade_id}",  # the last of a repeated name, as Starlette reads it
        f"?id={trade_id}&id=nope",
        "?market=&asset_id=",
    ):
        ours, theirs = await _both(exchange, ("GET", f"/data/trades{query}", headers, b""))
        assert ours == theirs, query
    found = json.loads(
        (await _answer(_apps(exchange)[0], ("GET", f"/data/trades?id={trade_id}", headers, b"")))[2]
    )
    assert [trade["id"] for trade in found["data"]] == [trade_id]
    for refused in (headers | {"POLY_SIGNATURE": "bad"}, {}):
        ours, theirs = await _both(exchange, ("GET", "/data/trades", refused, b""))
        assert ours == theirs
        assert ours[0] == 401


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_other_methods_on_the_hot_paths_go_to_starlette(
    exchange: LocalExchange, method: str
) -> None:
    full, _ = _apps(exchange)
    for path in ("/order", "/data/trades"):
        status, _, _ = await _answer(full, (method, path, {}, b""))
        assert status in (401, 405)


async def test_price_step_control_calls_are_answered_as_starlettes_routes_do(
    exchange: LocalExchange,
) -> None:
    """``POST /_sim/paths/{token}`` and ``/_sim/prices/{token}`` (served bare since round
    13): the same status, headers and body as ``control_routes``, refusals included."""
    json_type = {"content-type": "application/json"}
    requests: list[Request] = []
    for path in (f"/_sim/paths/{YES}", "/_sim/paths/404"):
        for body in (
            b'{"prices": ["0.47", "0.46"], "interval_s": 0.01, "burst": 1}',
            b'{"prices": ["0.47"], "burst": 0}',  # ValueError: a 400
            b'{"prices": ["0.47"], "speed": 2}',  # TypeError: a 400
            b'{"interval_s": 1}',  # no prices
            b"[]",
            b"{",
            b"",
        ):
            requests.append(("POST", path, json_type, body))
    for body in (
        b'{"best_bid": "0.45", "size": "12.5"}',
        b'{"best_bid": 0.44, "depth": 2, "spread_ticks": 3}',
        b'{"best_bid": "nope"}',  # decimal.InvalidOperation: a 400
        b'{"size": 1}',
        b"7",
    ):
        requests.append(("POST", f"/_sim/prices/{YES}", json_type, body))
        requests.append(("POST", "/_sim/prices/404", json_type, body))
    requests.append(("POST", f"/_sim/prices/{YES}/more", json_type, b'{"best_bid": "0.4"}'))
    requests.append(("POST", "/_sim/paths/", json_type, b'{"prices": ["0.4"]}'))
    for request in requests:
        ours, theirs = await _both(exchange, request)
        assert ours == theirs, request
    await exchange.prices.stop()
    answers = [await _answer(_apps(exchange)[0], request) for request in requests[:2]]
    assert [answer[0] for answer in answers] == [200, 400]
    assert json.loads(answers[0][2]) == {"ok": True}
