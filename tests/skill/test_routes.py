"""The skill's HTTP routes and the admin API: real app lifespan, real API keys, real exchange."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.skill.conftest import MarketIds, shares_of, skill_settings
from vincent.app import create_app
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.services.secrets import create_secret
from vincent.sim import LocalExchange

ADMIN_TOKEN = "owner-" + "9" * 40


@dataclass(frozen=True)
class Tenant:
    secret_id: str
    funder: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def new_tenant(session_factory: SessionFactory, keybox: KeyBox, name: str) -> Tenant:
    async with session_factory() as session:
        created = await create_secret(
            session, keybox, name=name, private_key="0x" + secrets.token_hex(32)
        )
        await session.commit()
    return Tenant(created.secret.id, created.secret.funder_address, created.api_key.key)


@pytest.fixture
async def client(
    exchange: LocalExchange, database_url: str, encryption_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = skill_settings(exchange, database_url).model_copy(
        update={
            "trade_manager_enabled": False,
            "vincent_encryption_key": SecretStr(encryption_key),
            "vincent_admin_token": SecretStr(ADMIN_TOKEN),
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


@pytest.fixture
async def bob(session_factory: SessionFactory, keybox: KeyBox) -> Tenant:
    return await new_tenant(session_factory, keybox, "bob")


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def bet(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    return await client.post("/api/skills/polymarket/bet", json=body, headers=tenant.headers)


async def test_bet_sell_executes_with_the_envelope(
    client: httpx.AsyncClient, exchange: LocalExchange, alice: Tenant, market: MarketIds
) -> None:
    exchange.credit(alice.funder, token_id=market.yes, shares="10")

    response = await bet(client, alice, tokenId=market.yes, side="SELL", amount=10)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["status"] == "executed"
    assert data["walletAddress"] == alice.funder
    assert data["orderId"].startswith("0x")
    assert data["orderDetails"]["status"] == "matched"
    assert list(data) == ["orderId", "status", "transactionLogId", "walletAddress", "orderDetails"]
    assert shares_of(exchange, alice.funder, market.yes) == 0


async def test_bet_denied_is_403_and_pending_is_202(
    client: httpx.AsyncClient, exchange: LocalExchange, alice: Tenant, market: MarketIds
) -> None:
    exchange.credit(alice.funder, collateral="100")
    put = await client.put(
        f"/api/admin/secrets/{alice.secret_id}/policies/SPENDING_LIMIT_PER_TX",
        json={"maxUsd": 5, "approvalOverride": False},
        headers=admin(),
    )
    assert put.status_code == 200, put.text

    denied = await bet(client, alice, tokenId=market.yes, side="BUY", amount=6)
    assert denied.status_code == 403
    assert denied.json() == {
        "success": True,
        "data": {
            "status": "denied",
            "transactionLogId": denied.json()["data"]["transactionLogId"],
            "walletAddress": alice.funder,
            "reason": "Transaction value $6.00 exceeds per-tx limit of $5.00",
        },
    }

    await client.put(
        f"/api/admin/secrets/{alice.secret_id}/policies/REQUIRE_APPROVAL",
        json={"enabled": True},
        headers=admin(),
    )
    pending = await bet(client, alice, tokenId=market.yes, side="BUY", amount=2)
    assert pending.status_code == 202
    assert pending.json()["data"]["status"] == "pending_approval"
    assert pending.json()["data"]["reason"] == "All transactions require human approval"


async def test_owner_approves_through_the_admin_api_once(
    client: httpx.AsyncClient, exchange: LocalExchange, alice: Tenant, market: MarketIds
) -> None:
    exchange.credit(alice.funder, collateral="100")
    await client.put(
        f"/api/admin/secrets/{alice.secret_id}/policies/REQUIRE_APPROVAL",
        json={"enabled": True},
        headers=admin(),
    )
    pending = await bet(client, alice, tokenId=market.yes, side="BUY", amount=10)
    listed = await client.get("/api/admin/approvals", headers=admin())
    [approval] = listed.json()["data"]["approvals"]
    assert approval["transactionLogId"] == pending.json()["data"]["transactionLogId"]

    # The agent's own key can never approve.
    refused = await client.post(
        f"/api/admin/approvals/{approval['id']}/approve", headers=alice.headers
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"

    approved = await client.post(f"/api/admin/approvals/{approval['id']}/approve", headers=admin())
    assert approved.status_code == 200, approved.text
    assert approved.json()["data"]["result"]["status"] == "executed"
    again = await client.post(f"/api/admin/approvals/{approval['id']}/approve", headers=admin())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "APPROVAL_NOT_PENDING"


async def test_admin_api_refuses_missing_and_wrong_tokens(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    missing = await client.get("/api/admin/policies")
    wrong = await client.get("/api/admin/policies", headers={"Authorization": "Bearer nope"})
    agent = await client.put(
        f"/api/admin/secrets/{alice.secret_id}/policies/SPENDING_LIMIT_PER_TX",
        json={"maxUsd": 1000000},
        headers=alice.headers,
    )

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert agent.status_code == 403


async def test_bet_validation_and_auth_errors(
    client: httpx.AsyncClient, alice: Tenant, market: MarketIds
) -> None:
    no_key = await client.post("/api/skills/polymarket/bet", json={})
    invalid = await bet(client, alice, tokenId=market.yes, side="HOLD", amount=-1)
    no_position = await bet(client, alice, tokenId=market.yes, side="SELL", amount=5)

    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "UNAUTHORIZED"
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "VALIDATION_ERROR"
    assert {tuple(i["path"]) for i in invalid.json()["error"]["details"]} == {
        ("side",),
        ("amount",),
    }
    assert no_position.status_code == 400
    assert no_position.json()["error"]["code"] == "NO_POSITION"


async def test_market_data_routes(
    client: httpx.AsyncClient, alice: Tenant, market: MarketIds
) -> None:
    book = await client.get(f"/api/skills/polymarket/orderbook/{market.yes}", headers=alice.headers)
    mid = await client.get(f"/api/skills/polymarket/midpoint/{market.yes}", headers=alice.headers)
    info = await client.get(
        f"/api/skills/polymarket/market/{market.condition_id}", headers=alice.headers
    )
    missing = await client.get("/api/skills/polymarket/orderbook/123", headers=alice.headers)

    assert book.status_code == 200
    assert book.json()["data"]["asset_id"] == market.yes
    best_bid = book.json()["data"]["bids"][-1]  # the wire lists the best level last
    assert (Decimal(best_bid["price"]), Decimal(best_bid["size"])) == (Decimal("0.5"), 100)
    assert mid.json()["data"] == {"tokenId": market.yes, "midpoint": "0.51"}
    assert info.json()["data"]["market"]["condition_id"] == market.condition_id
    assert missing.status_code == 404


async def test_holdings_open_orders_trades_and_cancel(
    client: httpx.AsyncClient, exchange: LocalExchange, alice: Tenant, market: MarketIds
) -> None:
    exchange.credit(
        alice.funder, collateral="100", token_id=market.yes, shares="20", avg_price="0.4"
    )
    placed = await bet(client, alice, tokenId=market.yes, side="BUY", amount=8, price=0.4)
    order_id = placed.json()["data"]["orderId"]
    sold = await bet(client, alice, tokenId=market.yes, side="SELL", amount=5)
    assert sold.status_code == 200

    holdings = (await client.get("/api/skills/polymarket/holdings", headers=alice.headers)).json()
    orders = (await client.get("/api/skills/polymarket/open-orders", headers=alice.headers)).json()
    trades = (await client.get("/api/skills/polymarket/trades", headers=alice.headers)).json()

    [holding] = holdings["data"]["holdings"]
    assert holding["tokenId"] == market.yes
    assert holding["shares"] == 15.0
    assert holdings["data"]["walletAddress"] == alice.funder
    assert [o["id"] for o in orders["data"]["openOrders"]] == [order_id]
    assert len(trades["data"]["trades"]) == 1

    canceled = await client.delete(
        f"/api/skills/polymarket/orders/{order_id}", headers=alice.headers
    )
    assert canceled.json()["data"]["canceled"] == [order_id]
    none_left = await client.delete("/api/skills/polymarket/orders", headers=alice.headers)
    assert none_left.json()["data"]["canceled"] == []


async def test_a_tenant_cannot_act_on_another_tenants_wallet(
    client: httpx.AsyncClient,
    exchange: LocalExchange,
    alice: Tenant,
    bob: Tenant,
    market: MarketIds,
) -> None:
    exchange.credit(alice.funder, collateral="100", token_id=market.yes, shares="10")
    placed = await bet(client, alice, tokenId=market.yes, side="BUY", amount=8, price=0.4)
    order_id = placed.json()["data"]["orderId"]

    bob_cancel = await client.delete(
        f"/api/skills/polymarket/orders/{order_id}", headers=bob.headers
    )
    bob_orders = await client.get("/api/skills/polymarket/open-orders", headers=bob.headers)
    bob_holdings = await client.get("/api/skills/polymarket/holdings", headers=bob.headers)
    bob_sell = await bet(client, bob, tokenId=market.yes, side="SELL", amount=10)

    assert bob_cancel.json()["data"]["canceled"] == []
    assert bob_orders.json()["data"]["openOrders"] == []
    assert bob_holdings.json()["data"] == {"walletAddress": bob.funder, "holdings": []}
    assert bob_sell.json()["error"]["code"] == "NO_POSITION"
    alice_orders = await client.get("/api/skills/polymarket/open-orders", headers=alice.headers)
    assert [o["id"] for o in alice_orders.json()["data"]["openOrders"]] == [order_id]
    assert shares_of(exchange, alice.funder, market.yes) == 10


async def test_exchange_failures_come_out_as_typed_statuses(
    client: httpx.AsyncClient, exchange: LocalExchange, alice: Tenant, market: MarketIds
) -> None:
    exchange.fail_next("/data-api/positions", count=3, status=503)
    exchange.credit(alice.funder, token_id=market.yes, shares="10")
    exchange.rate_limit_next("/order", retry_after_s=3, method="POST")

    holdings = await client.get("/api/skills/polymarket/holdings", headers=alice.headers)
    limited = await bet(client, alice, tokenId=market.yes, side="SELL", amount=10)

    assert holdings.status_code == 503
    assert holdings.json()["error"]["code"] == "EXCHANGE_UNAVAILABLE"
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "RATE_LIMITED"


async def test_bet_retried_with_its_idempotency_key_is_one_order(
    client: httpx.AsyncClient, exchange: LocalExchange, alice: Tenant, market: MarketIds
) -> None:
    exchange.credit(alice.funder, token_id=market.yes, shares="20")
    body = {"tokenId": market.yes, "side": "SELL", "amount": 10, "idempotencyKey": "sell-1"}

    first = await bet(client, alice, **body)
    again = await bet(client, alice, **body)

    assert first.status_code == again.status_code == 200
    assert again.json()["data"]["orderId"] == first.json()["data"]["orderId"]
    assert again.json()["data"]["transactionLogId"] == first.json()["data"]["transactionLogId"]
    assert shares_of(exchange, alice.funder, market.yes) == 10
