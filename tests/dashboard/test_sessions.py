"""Dashboard sign-in, sessions and request checks over HTTP (no browser), on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import Tenant, create_tenant, run_in_db
from vincent.app import create_app
from vincent.dashboard.sessions import COOKIE_NAME
from vincent.services.api_keys import revoke_api_key

ADMIN = "owner-token-for-sessions"
# Browsers send Secure cookies only over https (or to localhost): so does the test client.
BASE_URL = "https://testserver"


def _client(database_url: str, **overrides: Any) -> TestClient:
    settings = api_settings(
        database_url, vincent_admin_token=SecretStr(ADMIN), api_key_cache_ttl_s=0, **overrides
    )
    return TestClient(create_app(settings, skill_factory=None), base_url=BASE_URL)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with _client(database_url) as test_client:
        yield test_client


@pytest.fixture
def alice(database_url: str) -> Tenant:
    return create_tenant(database_url, "alice")


def _sign_in(client: TestClient, credential: str) -> Any:
    return client.post("/dashboard/login", data={"credential": credential}, follow_redirects=False)


def _csrf(client: TestClient) -> str:
    page = client.get("/dashboard/rules").text
    marker = 'name="csrf-token" content="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_sign_in_sets_a_secure_http_only_strict_cookie(client: TestClient, alice: Tenant) -> None:
    response = _sign_in(client, alice.api_key)

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/rules"
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/dashboard"):
        assert attribute in cookie
    assert alice.api_key not in cookie
    assert "alice" in client.get("/dashboard/rules").text


def test_wrong_credentials_get_no_cookie(client: TestClient) -> None:
    for credential in ("ssk_" + "1" * 64, "not-the-admin-token", ""):
        response = _sign_in(client, credential)
        assert response.status_code == 401
        assert "set-cookie" not in response.headers


def test_without_a_session_pages_redirect_and_the_rest_answers_401(client: TestClient) -> None:
    page = client.get("/dashboard/rules", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/dashboard/login")
    for method, path in (
        ("GET", "/dashboard/stream"),
        ("GET", "/dashboard/charts/123"),
        ("POST", "/dashboard/rules/x/cancel"),
        ("POST", "/dashboard/approvals/x/approve"),
    ):
        response = client.request(method, path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_a_tampered_cookie_is_no_session(client: TestClient, alice: Tenant) -> None:
    _sign_in(client, alice.api_key)
    value = client.cookies[COOKIE_NAME]
    client.cookies.clear()

    def status_with(cookie: str) -> int:
        headers = {"cookie": f"{COOKIE_NAME}={cookie}"}
        return client.get("/dashboard/rules", headers=headers, follow_redirects=False).status_code

    assert status_with(value) == 200
    assert status_with(value[:-6] + "AAAAAA") == 303
    assert status_with(alice.api_key) == 303  # the bare key is no session either


def test_a_revoked_key_ends_its_session(
    database_url: str, client: TestClient, alice: Tenant
) -> None:
    _sign_in(client, alice.api_key)
    assert client.get("/dashboard/rules", follow_redirects=False).status_code == 200
    run_in_db(database_url, lambda session: revoke_api_key(session, alice.api_key_id))
    assert client.get("/dashboard/rules", follow_redirects=False).status_code == 303


def test_actions_need_the_csrf_token_and_the_same_origin(client: TestClient, alice: Tenant) -> None:
    rule = client.post(RULES, json=stop_loss(), headers=alice.headers).json()["data"]
    _sign_in(client, alice.api_key)
    cancel = f"/dashboard/rules/{rule['id']}/cancel"

    assert client.post(cancel).status_code == 403
    assert client.post(cancel, headers={"x-csrf-token": "guess"}).status_code == 403
    token = _csrf(client)
    foreign = client.post(cancel, headers={"x-csrf-token": token, "origin": "https://evil.test"})
    assert foreign.status_code == 403
    assert (
        client.get(f"{RULES}/{rule['id']}", headers=alice.headers).json()["data"]["status"]
        == "ACTIVE"
    )

    done = client.post(cancel, headers={"x-csrf-token": token, "origin": BASE_URL})
    assert done.status_code == 200
    assert "CANCELED" in done.json()["data"]["html"]


def test_trigger_moves_use_the_api_validation(client: TestClient, alice: Tenant) -> None:
    rule = client.post(RULES, json=stop_loss(), headers=alice.headers).json()["data"]
    _sign_in(client, alice.api_key)
    headers = {"x-csrf-token": _csrf(client)}
    move = f"/dashboard/rules/{rule['id']}/trigger"

    for bad in ({"triggerPrice": 1.2}, {"triggerPrice": "0.3"}, {}):
        response = client.post(move, json=bad, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.post(move, json={"triggerPrice": 0.35}, headers=headers).status_code == 200
    assert (
        client.get(f"{RULES}/{rule['id']}", headers=alice.headers).json()["data"]["triggerPrice"]
        == 0.35
    )


def test_an_agent_cannot_reach_another_agents_rules(
    database_url: str, client: TestClient, alice: Tenant
) -> None:
    bob = create_tenant(database_url, "bob")
    bobs = client.post(RULES, json=stop_loss(tokenId="999"), headers=bob.headers).json()["data"]
    _sign_in(client, alice.api_key)
    headers = {"x-csrf-token": _csrf(client)}

    assert bobs["id"] not in client.get("/dashboard/rules").text
    assert client.get(f"/dashboard/rules/{bobs['id']}").status_code == 404
    assert client.get(f"/dashboard/rules/{bobs['id']}/timeline").status_code == 404
    assert client.get("/dashboard/charts/999").status_code == 404
    assert client.post(f"/dashboard/rules/{bobs['id']}/cancel", headers=headers).status_code == 404
    assert client.get("/dashboard/owner").status_code == 403
    assert client.post("/dashboard/approvals/x/approve", headers=headers).status_code == 403


def test_the_owner_sees_every_secret(database_url: str, client: TestClient, alice: Tenant) -> None:
    bob = create_tenant(database_url, "bob")
    ids = [
        client.post(RULES, json=stop_loss(), headers=tenant.headers).json()["data"]["id"]
        for tenant in (alice, bob)
    ]
    _sign_in(client, ADMIN)
    page = client.get("/dashboard/rules").text
    assert all(rule_id in page for rule_id in ids)
    assert "Pending approvals" in client.get("/dashboard/owner").text


def test_the_dashboard_counts_against_the_request_limit(database_url: str) -> None:
    # 3 a minute, all 3 at once (a burst of 60 s' worth).
    with _client(database_url, rate_limit_per_address=3, rate_limit_burst_s=60) as client:
        statuses = [client.get("/dashboard/login").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_pages_forbid_framing_and_foreign_scripts(client: TestClient) -> None:
    response = client.get("/dashboard/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_rules_are_listed_newest_first_and_filtered_by_status(
    client: TestClient, alice: Tenant
) -> None:
    ids = [
        client.post(RULES, json=stop_loss(triggerPrice=price), headers=alice.headers).json()[
            "data"
        ]["id"]
        for price in (0.1, 0.2, 0.3)
    ]
    client.delete(f"{RULES}/{ids[1]}", headers=alice.headers)
    _sign_in(client, alice.api_key)

    page = client.get("/dashboard/rules").text
    assert [page.index(f'id="rule-{rule_id}"') for rule_id in reversed(ids)] == sorted(
        page.index(f'id="rule-{rule_id}"') for rule_id in ids
    )
    active = client.get("/dashboard/rules", params={"status": "active"}).text
    assert f"rule-{ids[1]}" not in active and f"rule-{ids[0]}" in active
    canceled = client.get("/dashboard/rules", params={"status": "CANCELED"}).text
    assert f"rule-{ids[1]}" in canceled and f"rule-{ids[0]}" not in canceled
    assert client.get("/dashboard/rules", params={"status": "nope"}).status_code == 400


def test_the_dashboards_static_files_never_use_up_the_request_limit(database_url: str) -> None:
    with _client(database_url, rate_limit_per_address=3, rate_limit_burst_s=60) as client:
        statics = [
            client.get(f"/dashboard/static/{name}").status_code
            for name in ("dashboard.css", "dashboard.js", "chart.js") * 3
        ]
        pages = [client.get("/dashboard/login").status_code for _ in range(4)]
    assert statics == [200] * 9
    assert pages == [200, 200, 200, 429]
