"""API-key authentication: every failure is a 401 in the Vincent envelope."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES, api_settings
from tests.helpers import Tenant, run_in_db
from vincent.app import create_app
from vincent.enums import SecretType
from vincent.services.api_keys import ApiKeyCache, AuthenticatedSecret, revoke_api_key


def _error(response: object) -> tuple[int, str, str]:
    body = response.json()  # type: ignore[attr-defined]
    assert body["success"] is False
    return response.status_code, body["error"]["code"], body["error"]["message"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing Authorization header"),
        (
            {"Authorization": "Bearer"},
            "Invalid Authorization header format. Expected: Bearer <api_key>",
        ),
        (
            {"Authorization": "Token abc def"},
            "Invalid Authorization header format. Expected: Bearer <api_key>",
        ),
        (
            {"Authorization": "Basic abc"},
            "Invalid Authorization header format. Expected: Bearer <api_key>",
        ),
        ({"Authorization": "Bearer ssk_" + "0" * 64}, "Invalid or revoked API key"),
        ({"Authorization": "Bearer notakey"}, "Invalid or revoked API key"),
    ],
)
def test_bad_credentials_are_refused(
    client: TestClient, alice: Tenant, headers: dict[str, str], message: str
) -> None:
    assert _error(client.get(RULES, headers=headers)) == (401, "UNAUTHORIZED", message)


def test_scheme_word_is_case_insensitive(client: TestClient, alice: Tenant) -> None:
    response = client.get(RULES, headers={"Authorization": f"bEaReR {alice.api_key}"})
    assert response.status_code == 200


def test_revoked_key_is_refused_at_once_without_the_cache(database_url: str, alice: Tenant) -> None:
    settings = api_settings(database_url, api_key_cache_ttl_s=0)
    with TestClient(create_app(settings, skill_factory=None)) as client:
        assert client.get(RULES, headers=alice.headers).status_code == 200
        run_in_db(database_url, lambda s: revoke_api_key(s, alice.api_key_id))
        assert _error(client.get(RULES, headers=alice.headers)) == (
            401,
            "UNAUTHORIZED",
            "Invalid or revoked API key",
        )


def test_revoked_key_is_refused_within_the_cache_ttl(database_url: str, alice: Tenant) -> None:
    """Revoked elsewhere (the CLI): refused once the cached entry expires, never later."""
    ttl_s = 0.5
    # The loop below asks as fast as it can: no request limit to run into.
    settings = api_settings(database_url, api_key_cache_ttl_s=ttl_s, rate_limit_max_requests=0)
    with TestClient(create_app(settings, skill_factory=None)) as client:
        assert client.get(RULES, headers=alice.headers).status_code == 200
        run_in_db(database_url, lambda s: revoke_api_key(s, alice.api_key_id))
        revoked_at = time.monotonic()
        deadline = revoked_at + ttl_s + 5
        while (response := client.get(RULES, headers=alice.headers)).status_code == 200:
            assert time.monotonic() < deadline, "revoked key still accepted"
        assert time.monotonic() - revoked_at <= ttl_s + 2.0  # TTL, plus slack for a busy CI
        assert _error(response) == (401, "UNAUTHORIZED", "Invalid or revoked API key")


def _secret(key_id: str) -> AuthenticatedSecret:
    return AuthenticatedSecret(key_id, SecretType.POLYMARKET_WALLET, "n", "0x1", "0x1", 0, key_id)


def test_key_cache_expires_entries_after_its_ttl() -> None:
    now = [100.0]
    cache = ApiKeyCache(ttl_s=2.0, clock=lambda: now[0])
    cache.put("digest", _secret("k1"))
    now[0] += 1.999
    assert cache.get("digest") == _secret("k1")
    now[0] += 0.001
    assert cache.get("digest") is None
    assert len(cache) == 0


def test_key_cache_is_bounded_and_off_at_zero_ttl() -> None:
    cache = ApiKeyCache(ttl_s=2.0, max_entries=2)
    for name in ("a", "b", "c"):
        cache.put(name, _secret(name))
    assert len(cache) == 2
    assert cache.get("a") is None
    assert cache.get("c") == _secret("c")
    off = ApiKeyCache(ttl_s=0)
    off.put("a", _secret("a"))
    assert off.get("a") is None


def test_unknown_keys_are_not_cached(client: TestClient, alice: Tenant) -> None:
    assert client.get(RULES, headers={"Authorization": "Bearer ssk_" + "1" * 64}).status_code == 401
    assert len(client.app.state.vincent.api_key_cache) == 0  # type: ignore[attr-defined]
    assert client.get(RULES, headers=alice.headers).status_code == 200
    assert len(client.app.state.vincent.api_key_cache) == 1  # type: ignore[attr-defined]


def test_unknown_subpath_needs_auth_first(client: TestClient, alice: Tenant) -> None:
    assert client.get("/api/skills/polymarket/nope").status_code == 401
    response = client.get("/api/skills/polymarket/nope", headers=alice.headers)
    assert _error(response)[:2] == (404, "NOT_FOUND")


def test_error_bodies_carry_the_trace_id(client: TestClient) -> None:
    response = client.get(RULES)
    assert response.json()["traceId"] == response.headers["x-trace-id"]


async def test_key_cache_makes_one_lookup_for_concurrent_misses() -> None:
    cache = ApiKeyCache(ttl_s=2.0)
    release = asyncio.Event()
    calls: list[str] = []

    async def lookup() -> AuthenticatedSecret | None:
        calls.append("k1")
        await release.wait()
        return _secret("k1")

    waiters = [asyncio.create_task(cache.load("digest", lookup)) for _ in range(20)]
    await asyncio.sleep(0)  # every waiter has missed and joined the running lookup
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()  # a request whose client went away does not stop the others
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == [_secret("k1")] * 19
    assert calls == ["k1"]
    assert cache.get("digest") == _secret("k1")


async def test_key_cache_shares_a_failed_lookup_and_tries_again_after() -> None:
    cache = ApiKeyCache(ttl_s=2.0)
    release = asyncio.Event()

    async def failing() -> AuthenticatedSecret | None:
        await release.wait()
        raise ConnectionError("database down")

    async def found() -> AuthenticatedSecret | None:
        return _secret("k1")

    waiters = [asyncio.create_task(cache.load("digest", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError] * 3
    assert len(cache) == 0
    assert await cache.load("digest", found) == _secret("k1")
