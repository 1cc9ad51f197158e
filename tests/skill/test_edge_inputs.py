"""Bad input on the skill's routes (issue 13 §5): a 400 naming the field, never a 500, never
an order, and nothing pasted into an upstream URL unchecked. Real exchange on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tests.skill.conftest import MarketIds, skill_settings
from tests.skill.test_routes import Tenant, new_tenant
from vincent.app import create_app
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.sim import LocalExchange
from vincent.skills.polymarket.errors import ExchangeUnavailable
from vincent.skills.polymarket.http import (
    InvalidPathSegment,
    JsonGetter,
    RetryPolicy,
    path_segment,
)
from vincent.skills.polymarket.market_data import MarketData

BASE = "/api/skills/polymarket"


@pytest.fixture
async def client(
    exchange: LocalExchange, database_url: str, encryption_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = skill_settings(exchange, database_url).model_copy(
        update={
            "trade_manager_enabled": False,
            "vincent_encryption_key": SecretStr(encryption_key),
            "rate_limit_max_requests": 0,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vincent") as http:
            yield http


@pytest.fixture
async def alice(session_factory: SessionFactory, keybox: KeyBox) -> Tenant:
    return await new_tenant(session_factory, keybox, "alice")


async def _audit_rows(session_factory: SessionFactory) -> int:
    async with session_factory() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(TransactionLog)))


def _field_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [issue["path"] for issue in error["details"]] == [[field]]


@pytest.mark.parametrize("amount", ["Infinity", "-Infinity", "NaN", "1e300", "1e10"])
async def test_a_bet_of_an_unbounded_amount_is_a_400_and_no_order(
    client: httpx.AsyncClient,
    alice: Tenant,
    market: MarketIds,
    session_factory: SessionFactory,
    amount: str,
) -> None:
    body = f'{{"tokenId": "{market.yes}", "side": "BUY", "amount": {amount}}}'

    response = await client.post(
        f"{BASE}/bet", content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )

    _field_refused(response, "amount")
    assert await _audit_rows(session_factory) == 0


@pytest.mark.parametrize("token_id", ["9" * 20_000, "1/../../version?x=1", "abc", "1 2"])
async def test_a_bet_on_a_malformed_token_is_a_400_and_no_order(
    client: httpx.AsyncClient, alice: Tenant, session_factory: SessionFactory, token_id: str
) -> None:
    body = {"tokenId": token_id, "side": "BUY", "amount": 5}

    response = await client.post(f"{BASE}/bet", json=body, headers=alice.headers)

    _field_refused(response, "tokenId")
    assert await _audit_rows(session_factory) == 0


async def test_an_idempotency_key_with_control_characters_is_a_400_and_no_order(
    client: httpx.AsyncClient, alice: Tenant, market: MarketIds, session_factory: SessionFactory
) -> None:
    body = {"tokenId": market.yes, "side": "BUY", "amount": 5, "idempotencyKey": "a\x00b"}

    response = await client.post(f"{BASE}/bet", json=body, headers=alice.headers)

    _field_refused(response, "idempotencyKey")
    assert await _audit_rows(session_factory) == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/orderbook/1%3Fx%3D1", "token_id"),
        ("/midpoint/" + "9" * 5000, "token_id"),
        ("/midpoint/12ab", "token_id"),
        ("/market/0x%23" + "a" * 63, "condition_id"),
        ("/market/0x1234", "condition_id"),
        ("/open-orders?market=..%2Fx", "market"),
        ("/trades?market=" + "a" * 500, "market"),
        ("/orders/a%3Fb", "order_id"),
    ],
)
async def test_path_and_query_values_bound_for_upstream_urls_are_checked(
    client: httpx.AsyncClient, alice: Tenant, path: str, field: str
) -> None:
    method = "DELETE" if path.startswith("/orders") else "GET"

    response = await client.request(method, BASE + path, headers=alice.headers)

    _field_refused(response, field)


async def test_well_formed_ids_still_reach_the_exchange(
    client: httpx.AsyncClient, alice: Tenant, market: MarketIds
) -> None:
    book = await client.get(f"{BASE}/orderbook/{market.yes}", headers=alice.headers)
    info = await client.get(f"{BASE}/market/{market.condition_id}", headers=alice.headers)
    orders = await client.get(
        f"{BASE}/open-orders", params={"market": market.condition_id}, headers=alice.headers
    )

    assert [r.status_code for r in (book, info, orders)] == [200, 200, 200]


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [("123", "123"), ("1/../version?x=1#y", "1%2F..%2Fversion%3Fx%3D1%23y"), ("a b%", "a%20b%25")],
)
def test_a_path_segment_is_encoded_so_it_stays_one_segment(raw: str, encoded: str) -> None:
    assert path_segment(raw) == encoded


@pytest.mark.parametrize("raw", ["", ".", "..", "1" * 201])
def test_a_path_segment_that_no_id_could_be_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPathSegment):
        path_segment(raw)


async def test_the_token_to_market_cache_forgets_its_oldest_entries(
    exchange: LocalExchange,
) -> None:
    markets = [("0x" + f"{n + 1:064x}", str(10**70 + n)) for n in range(3)]
    for condition_id, token_id in markets:
        exchange.create_market(condition_id, [token_id, str(10**71 + int(token_id))])
    async with httpx.AsyncClient() as http:
        data = MarketData(
            JsonGetter(http, exchange.clob_url, retry=RetryPolicy(attempts=1)),
            JsonGetter(http, exchange.gamma_url),
            cache_size=2,
        )
        for condition_id, token_id in markets:
            assert await data.condition_id_for(token_id) == condition_id
        for _, token_id in markets:
            exchange.fail_next(f"/markets-by-token/{token_id}")

        newest = await data.condition_id_for(markets[2][1])  # remembered: no request
        with pytest.raises(ExchangeUnavailable):
            await data.condition_id_for(markets[0][1])  # forgotten: asked again

    assert newest == markets[2][0]
