"""API-key authentication: every failure is a 401 in the Vincent envelope."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES
from tests.helpers import Tenant, run_in_db
from vincent.services.api_keys import revoke_api_key


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


def test_revoked_key_is_refused(client: TestClient, alice: Tenant, database_url: str) -> None:
    assert client.get(RULES, headers=alice.headers).status_code == 200
    run_in_db(database_url, lambda s: revoke_api_key(s, alice.api_key_id))
    assert _error(client.get(RULES, headers=alice.headers)) == (
        401,
        "UNAUTHORIZED",
        "Invalid or revoked API key",
    )


def test_unknown_subpath_needs_auth_first(client: TestClient, alice: Tenant) -> None:
    assert client.get("/api/skills/polymarket/nope").status_code == 401
    response = client.get("/api/skills/polymarket/nope", headers=alice.headers)
    assert _error(response)[:2] == (404, "NOT_FOUND")


def test_error_bodies_carry_the_trace_id(client: TestClient) -> None:
    response = client.get(RULES)
    assert response.json()["traceId"] == response.headers["x-trace-id"]
