"""POST /api/secrets as the original: an agent creates its tenant, trades with the key it
got, and its human claims it with the one-time token (`vincent secrets claim`)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import TEST_ENCRYPTION_KEY, run_in_db
from vincent.app import create_app
from vincent.cli import app as cli_app
from vincent.crypto import KeyBox
from vincent.db.models import ApiKey, Secret, TradeRuleEvent, TransactionLog
from vincent.db.session import SessionFactory
from vincent.errors import NotFound
from vincent.services.secrets import claim_secret, create_agent_secret, new_claim_token

SECRETS = "/api/secrets"
LIMIT_MESSAGE = "Too many secret creation requests. Try again later."


@pytest.fixture
def client(database_url: str) -> Any:
    # Behind a trusted proxy on loopback: the address is the X-Forwarded-For hop it adds.
    app = create_app(
        api_settings(database_url, public_url="https://vincent.example", trust_proxy=True)
    )
    with TestClient(app, client=("127.0.0.1", 50000)) as test_client:
        yield test_client


def _create(client: TestClient, address: str = "203.0.113.7", **body: Any) -> Any:
    payload = {"type": "POLYMARKET_WALLET", **body}
    return client.post(SECRETS, json=payload, headers={"X-Forwarded-For": address})


def _secrets(database_url: str) -> list[Secret]:
    async def work(session: AsyncSession) -> list[Secret]:
        return list((await session.scalars(sa.select(Secret))).all())

    return run_in_db(database_url, work)


def _claim_cli(database_url: str, argument: str) -> Any:
    env = {"DATABASE_URL": database_url, "VINCENT_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY}
    return CliRunner().invoke(cli_app, ["secrets", "claim", argument], env=env)


def test_create_then_trade_with_the_key_then_claim(client: TestClient, database_url: str) -> None:
    response = _create(client, memo="my trading agent")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"secret", "apiKey", "claimUrl"}
    secret = data["secret"]
    assert secret["type"] == "POLYMARKET_WALLET"
    assert secret["memo"] == "my trading agent"
    assert secret["claimed"] is False
    assert secret["claimedAt"] is None
    assert secret["createdAt"].endswith("Z")
    assert secret["walletType"] == "EOA"
    assert secret["signatureType"] == 0
    assert secret["walletAddress"].startswith("0x") and len(secret["walletAddress"]) == 42
    assert data["apiKey"]["key"].startswith("ssk_") and len(data["apiKey"]["key"]) == 68
    prefix = f"https://vincent.example/claim/{secret['id']}?token="
    assert data["claimUrl"].startswith(prefix)
    token = data["claimUrl"][len(prefix) :]

    # The key works on the trade-rule API at once, for this secret only.
    headers = {"Authorization": f"Bearer {data['apiKey']['key']}"}
    created = client.post(RULES, json=stop_loss(), headers=headers)
    assert created.status_code == 201
    assert created.json()["data"]["secretId"] == secret["id"]
    listed = client.get(RULES, headers=headers).json()["data"]["rules"]
    assert [r["id"] for r in listed] == [created.json()["data"]["id"]]

    # The owner claims it with the URL (or the bare token), once.
    claimed = _claim_cli(database_url, data["claimUrl"])
    assert claimed.exit_code == 0, claimed.stderr
    printed = json.loads(claimed.stdout)
    assert printed["secretId"] == secret["id"]
    assert printed["claimed"] is True
    [row] = _secrets(database_url)
    assert row.claimed_at is not None
    assert row.claim_token_hash is None

    again = _claim_cli(database_url, token)
    assert again.exit_code == 1
    assert "Invalid or already used claim token" in again.stderr
    # Claimed, the secret still trades.
    assert client.get(RULES, headers=headers).status_code == 200


def test_five_creations_per_address_per_window(client: TestClient, database_url: str) -> None:
    for _ in range(5):
        assert _create(client, "198.51.100.1").status_code == 201

    refused = _create(client, "198.51.100.1")

    assert refused.status_code == 429
    assert refused.json()["success"] is False
    assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert refused.json()["error"]["message"] == LIMIT_MESSAGE
    assert len(_secrets(database_url)) == 5
    # Another client address has its own budget.
    assert _create(client, "198.51.100.2").status_code == 201


def test_switched_off_refuses_and_writes_nothing(database_url: str) -> None:
    app = create_app(api_settings(database_url, allow_agent_secrets=False))
    with TestClient(app) as client:
        response = _create(client)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert "ALLOW_AGENT_SECRETS=false" in response.json()["error"]["message"]
    assert _secrets(database_url) == []


def test_other_secret_types_are_refused(client: TestClient, database_url: str) -> None:
    response = client.post(SECRETS, json={"type": "EVM_WALLET"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["path"] == ["type"]
    assert _secrets(database_url) == []


def test_relink_says_it_is_not_available(client: TestClient) -> None:
    response = client.post(f"{SECRETS}/relink", json={"relinkToken": "x"})

    assert response.status_code == 501
    error = response.json()["error"]
    assert error["code"] == "NOT_IMPLEMENTED"
    assert "vincent keys create" in error["message"]


def test_private_key_never_in_a_response_log_or_event(
    client: TestClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = _create(client, memo="leak check")
        data = response.json()["data"]
        headers = {"Authorization": f"Bearer {data['apiKey']['key']}"}
        rule = client.post(RULES, json=stop_loss(), headers=headers)
        events = client.get(f"{RULES}/events", headers=headers)
        bet = client.post(
            "/api/skills/polymarket/bet",
            json={"tokenId": "1", "side": "BUY", "amount": 1},
            headers=headers,
        )

    [secret] = _secrets(database_url)
    private_key = KeyBox(TEST_ENCRYPTION_KEY).decrypt(secret.encrypted_private_key)
    bare = private_key.lower().removeprefix("0x")
    assert len(bare) == 64
    assert bare not in secret.encrypted_private_key.lower()

    async def stored(session: AsyncSession) -> str:
        rows: list[Any] = [
            *(await session.scalars(sa.select(TradeRuleEvent))).all(),
            *(await session.scalars(sa.select(TransactionLog))).all(),
            *(await session.scalars(sa.select(ApiKey))).all(),
        ]
        return repr([{c.key: getattr(r, c.key) for c in r.__table__.columns} for r in rows])

    texts = [
        response.text,
        rule.text,
        events.text,
        bet.text,
        run_in_db(database_url, stored),
        *(repr(vars(record)) for record in caplog.records),
    ]
    assert rule.status_code == 201 and events.json()["data"]["events"]
    assert any("agent secret created" in t for t in texts)
    for text in texts:
        assert bare not in text.lower()


async def test_two_claims_with_one_token_one_wins(session_factory: SessionFactory) -> None:
    keybox = KeyBox(TEST_ENCRYPTION_KEY)
    async with session_factory() as session:
        created = await create_agent_secret(session, keybox, memo=None)
        await session.commit()

    async def claim() -> str:
        async with session_factory() as session:
            try:
                secret = await claim_secret(session, created.claim_token)
            except NotFound:
                return "refused"
            await session.commit()
            return secret.id

    results = await asyncio.gather(claim(), claim())

    assert sorted(results) == sorted([created.secret.id, "refused"])


def test_openapi_documents_the_secret_routes_and_mcp(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    create = spec["paths"]["/api/secrets"]["post"]
    assert {"201", "400", "403", "429"} <= set(create["responses"])
    assert "501" in spec["paths"]["/api/secrets/relink"]["post"]["responses"]
    assert "/mcp" in spec["info"]["description"]


def test_unclaimed_secret_trades_but_its_key_cannot_change_policies_or_approvals(
    database_url: str,
) -> None:
    settings = api_settings(database_url, vincent_admin_token=SecretStr("owner-token"))
    with TestClient(create_app(settings)) as client:
        data = _create(client).json()["data"]
        agent = {"Authorization": f"Bearer {data['apiKey']['key']}"}
        policy = f"/api/admin/secrets/{data['secret']['id']}/policies/REQUIRE_APPROVAL"

        by_agent = client.put(policy, json={"enabled": True}, headers=agent)
        approvals = client.get("/api/admin/approvals", headers=agent)
        rule = client.post(RULES, json=stop_loss(), headers=agent)
        by_owner = client.put(
            policy, json={"enabled": True}, headers={"Authorization": "Bearer owner-token"}
        )

    assert by_agent.status_code == approvals.status_code == 403
    assert by_agent.json()["error"]["message"] == "Agent API keys cannot use the admin API"
    assert rule.status_code == 201
    assert by_owner.status_code == 200
    [row] = _secrets(database_url)
    assert row.claimed_at is None


def test_a_claim_token_never_starts_with_a_dash() -> None:
    # `vincent secrets claim TOKEN` reads a leading "-" as an option: 1 plain token in 64.
    tokens = [new_claim_token() for _ in range(2_000)]
    assert not [token for token in tokens if token.startswith("-")]
    assert len(set(tokens)) == len(tokens)
    assert all(len(token) == 43 for token in tokens)  # 32 bytes, URL-safe base64
