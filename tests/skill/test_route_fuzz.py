"""Generated requests at every route (issue 13 §5): whatever the body, query string or path,
the answer is never a 5xx, every error is the Vincent envelope, and a refused request
stores nothing. Real app lifespan, real API keys, the local exchange, both databases."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.skill.conftest import MarketIds, skill_settings
from tests.skill.test_routes import ADMIN_TOKEN, Tenant, new_tenant
from vincent.app import create_app
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.base import Base
from vincent.db.session import SessionFactory
from vincent.sim import LocalExchange

# Per route and database: every route gets its share, whatever the others draw.
EXAMPLES = 15
# Codes of orders that passed every check at the edge and were refused by the exchange.
EXCHANGE_REFUSALS = {"INSUFFICIENT_BALANCE", "NO_LIQUIDITY", "INVALID_ORDER", "MARKET_CLOSED"}
# Columns that a successful read may touch: an API key's last use.
# Not what a request stores: a key's last use, and the CLOB API credentials the SDK derives
# for a wallet on its first order (cached on the secret, whatever the exchange answered).
_VOLATILE = {"last_used_at", "encrypted_api_credentials"}

# Routes that answer 501 NOT_IMPLEMENTED by design.
NOT_IMPLEMENTED_HERE = {("POST", "/api/secrets/relink")}


def _routes() -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document, plus the authenticated catch-all."""
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        vincent_encryption_key=SecretStr(Fernet.generate_key().decode()),
    )
    paths: dict[str, dict[str, Any]] = create_app(settings, skill_factory=None).openapi()["paths"]
    found = [(method.upper(), path) for path, item in paths.items() for method in item]
    return sorted([*found, ("GET", "/api/skills/polymarket/{path}")])


ROUTES = _routes()


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.from_regex(r"[0-9]{1,120}", fullmatch=True)
    | st.from_regex(r"0x[0-9a-fA-F]{62,66}", fullmatch=True)
    | st.sampled_from(
        ["2020-01-01T00:00:00", "2099-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "BUY"]
    )
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
FIELDS = [
    "ruleType",
    "marketId",
    "tokenId",
    "side",
    "triggerPrice",
    "trailingPercent",
    "action",
    "triggerSource",
    "expiresAt",
    "amount",
    "price",
    "orderType",
    "worstPrice",
    "idempotencyKey",
    "maxUsd",
    "thresholdUsd",
    "markets",
    "enabled",
]
# Values the issue reproduced as 5xx or as stored nonsense, drawn often so that a bounded
# number of examples meets them.
NASTY = st.sampled_from(
    [
        float("inf"),
        float("nan"),
        1e300,
        -0.0,
        "9" * 20_000,
        "1/../../version?x=1",
        "m" * 10_000,
        "2020-01-01T00:00:00",
        "2099-01-01T00:00:00",
        "a\x00b",
        {"type": "SELL_PARTIAL", "amount": float("inf")},
    ]
)
FIELD_VALUES = (
    JSON_VALUES
    | NASTY
    | st.sampled_from(["STOP_LOSS", "TRAILING_STOP", "SELL", "FOK", 0.4, 5, {"type": "SELL_ALL"}])
)


@st.composite
def bodies(draw: st.DrawFn, market: MarketIds) -> bytes | None:
    kind = draw(st.sampled_from(["none", "fields", "fields", "any", "bytes"]))
    if kind == "none":
        return None
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "any":
        return json.dumps(draw(JSON_VALUES)).encode()
    base: dict[str, Any] = {
        "ruleType": "STOP_LOSS",
        "marketId": market.condition_id,
        "tokenId": market.yes,
        "triggerPrice": 0.4,
        "action": {"type": "SELL_ALL"},
        "side": "BUY",
        "amount": 1,
    }
    body = {k: v for k, v in base.items() if draw(st.booleans())}
    body.update(draw(st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=4)))
    return json.dumps(body).encode()


def segments(known: list[str]) -> st.SearchStrategy[str]:
    return (
        st.sampled_from(known)
        | st.sampled_from(["9" * 5000, "1?x=1", "a#b", "%2e%2e", "\x00", "a\x00b"])
        | st.text(min_size=1, max_size=120)
        | st.from_regex(r"[0-9]{1,130}", fullmatch=True)
        | st.from_regex(r"0x[0-9a-f]{60,66}", fullmatch=True)
    )


QUERY_KEYS = st.sampled_from(
    ["limit", "offset", "status", "ruleId", "market", "secret_id", "zzz"]
) | st.text(max_size=8)
QUERY_VALUES = (
    st.sampled_from(["99999999999999999999", "9" * 5000, "-1", "1e3", "0x" + "a" * 64, "\x00"])
    | st.text(max_size=40)
    | st.from_regex(r"-?[0-9]{1,40}", fullmatch=True)
    | st.sampled_from(["ACTIVE", "ALL", "PENDING", "nope"])
)


async def _snapshot(session_factory: SessionFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (volatile columns left out), in a stable order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with session_factory() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in _VOLATILE]
            rows = (await session.execute(sa.select(*columns))).all()
            found[table.name] = sorted((tuple(map(repr, row)) for row in rows), key=repr)
    return found


@pytest.fixture
async def app(exchange: LocalExchange, database_url: str, encryption_key: str) -> FastAPI:
    built = create_app(
        skill_settings(exchange, database_url).model_copy(
            update={
                "trade_manager_enabled": False,
                "vincent_encryption_key": SecretStr(encryption_key),
                "vincent_admin_token": SecretStr(ADMIN_TOKEN),
                "rate_limit_max_requests": 0,
            }
        )
    )
    return built


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://vincent") as client:
            yield client


@pytest.fixture
async def alice(session_factory: SessionFactory, keybox: KeyBox) -> Tenant:
    return await new_tenant(session_factory, keybox, "alice")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@given(data=st.data())
async def test_no_generated_request_is_a_5xx_or_stores_anything_it_refuses(
    data: st.DataObject,
    route: tuple[str, str],
    app: FastAPI,
    http: httpx.AsyncClient,
    alice: Tenant,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    method, template = route
    known = [market.yes, market.condition_id, alice.secret_id, "SPENDING_LIMIT_DAILY"]
    path = template
    for name in re.findall(r"{(\w+)(?::path)?}", template):
        value = data.draw(segments(known), label=name)
        path = re.sub(r"{" + name + r"(?::path)?}", quote(value, safe=""), path)
    query = data.draw(st.dictionaries(QUERY_KEYS, QUERY_VALUES, max_size=3), label="query")
    body = data.draw(bodies(market), label="body")
    # Mostly a valid key: refusals past authentication are where bad input can do harm.
    keys = [alice.api_key, alice.api_key, ADMIN_TOKEN, ADMIN_TOKEN, None, "ssk_" + "0" * 64]
    auth = data.draw(st.sampled_from(keys), label="key")
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    before = await _snapshot(session_factory)

    response = await http.request(
        method, path + ("?" + urlencode(query) if query else ""), content=body, headers=headers
    )

    if (method, path) in NOT_IMPLEMENTED_HERE:
        # Deliberately a 501 that says so (issue 17): never a crash.
        assert response.status_code == 501, (method, path, response.text)
        assert response.json()["error"]["code"] == "NOT_IMPLEMENTED"
        return
    assert response.status_code < 500, (method, path, query, body, response.text)
    if response.status_code >= 400:
        payload = response.json()
        assert payload["success"] is False
        assert isinstance(payload["error"]["code"], str) and payload["error"]["code"]
        assert isinstance(payload["error"]["message"], str)
        after = await _snapshot(session_factory)
        if payload["error"]["code"] in EXCHANGE_REFUSALS:
            # A well-formed order the exchange refused is audited (a FAILED row), no more.
            new_logs = set(after.pop("transaction_logs")) - set(before.pop("transaction_logs"))
            failed = [r for r in new_logs if any("TransactionStatus.FAILED" in c for c in r)]
            assert len(failed) == len(new_logs), new_logs
        assert after == before, (method, path, body)
    elif (method, template) == ("POST", "/api/skills/polymarket/rules"):
        rule = response.json()["data"]
        assert re.fullmatch(r"[0-9]{1,100}", rule["tokenId"]), rule["tokenId"][:50]
        assert re.fullmatch(r"[^/?#%\s]{1,100}", rule["marketId"]), rule["marketId"][:50]
