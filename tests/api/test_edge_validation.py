"""Bad input at the edge (issue 13 §5): each reproduction is a 400 ``VALIDATION_ERROR``
naming the field, in the envelope, and nothing is stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import Tenant, create_tenant
from vincent.app import create_app


def _refused(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [issue["path"] for issue in error["details"]] == [[field]]
    issue = error["details"][0]
    if issue["code"] in ("invalid_format", "custom"):
        assert field in issue["message"]
    return error


def _no_rules(client: TestClient, tenant: Tenant) -> None:
    assert client.get(RULES, headers=tenant.headers).json()["data"]["rules"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tokenId", "9" * 20_000),
        ("tokenId", "9" * 101),
        ("tokenId", "1/../../version?x=1"),
        ("tokenId", "12 34"),
        ("tokenId", "0x1234"),
        ("marketId", "m" * 10_000),
        ("marketId", "0x" + "ab" * 31),
        ("marketId", "0x" + "zz" * 32),
        ("marketId", "../markets"),
        ("marketId", "a?b"),
        ("marketId", "a#b"),
        ("marketId", "a%2Fb"),
        ("marketId", "two words"),
    ],
)
def test_ids_that_no_market_has_are_refused_and_not_stored(
    client: TestClient, alice: Tenant, field: str, value: str
) -> None:
    response = client.post(RULES, json=stop_loss(**{field: value}), headers=alice.headers)

    error = _refused(response, field)
    assert error["details"][0]["code"] == "invalid_format"
    assert len(error["details"][0]["message"]) < 300  # the value is quoted, cut short
    _no_rules(client, alice)


@pytest.mark.parametrize(
    "market_id", ["0x" + "ab" * 32, "0x" + "AB" * 32, "551234", "will-it-rain-tomorrow"]
)
def test_condition_ids_and_short_market_ids_are_accepted(
    client: TestClient, alice: Tenant, market_id: str
) -> None:
    response = client.post(RULES, json=stop_loss(marketId=market_id), headers=alice.headers)

    assert response.status_code == 201, response.text
    assert response.json()["data"]["marketId"] == market_id


def test_an_expiry_without_a_time_zone_is_taken_as_utc(client: TestClient, alice: Tenant) -> None:
    naive = (datetime.now(UTC) + timedelta(days=2)).replace(tzinfo=None, microsecond=0)

    response = client.post(
        RULES, json=stop_loss(expiresAt=naive.isoformat()), headers=alice.headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["data"]["expiresAt"] == naive.isoformat() + ".000Z"


@pytest.mark.parametrize(
    "expires_at",
    [
        "2020-01-01T00:00:00Z",
        "2020-01-01T00:00:00",
        (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
    ],
    ids=["utc", "naive", "just-now"],
)
def test_an_expiry_in_the_past_is_refused(
    client: TestClient, alice: Tenant, expires_at: str
) -> None:
    response = client.post(RULES, json=stop_loss(expiresAt=expires_at), headers=alice.headers)

    _refused(response, "expiresAt")
    _no_rules(client, alice)


@pytest.mark.parametrize(
    "expires_at", ["9999-12-31T23:59:59-05:00", "not a date", "2026-13-45T00:00:00Z", 1e300]
)
def test_an_unusable_expiry_is_a_400(client: TestClient, alice: Tenant, expires_at: Any) -> None:
    response = client.post(RULES, json=stop_loss(expiresAt=expires_at), headers=alice.headers)

    _refused(response, "expiresAt")
    _no_rules(client, alice)


@pytest.mark.parametrize("amount", ["Infinity", "-Infinity", "NaN", "1e300", "1e10"])
def test_a_partial_sell_of_an_unbounded_amount_is_refused(
    client: TestClient, alice: Tenant, amount: str
) -> None:
    body = json.dumps(stop_loss(action={"type": "SELL_PARTIAL", "amount": 0}))
    body = body.replace('"amount": 0', f'"amount": {amount}')

    response = client.post(
        RULES, content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["path"] == ["action", "amount"]
    _no_rules(client, alice)


@pytest.mark.parametrize("offset", ["99999999999999999999", "1000001", "9" * 5000])
def test_an_events_offset_past_the_bound_is_a_400(
    client: TestClient, alice: Tenant, offset: str
) -> None:
    response = client.get(f"{RULES}/events", params={"offset": offset}, headers=alice.headers)

    _refused(response, "offset")


def test_events_limit_and_offset_within_bounds_still_parse_like_the_original(
    client: TestClient, alice: Tenant
) -> None:
    client.post(RULES, json=stop_loss(), headers=alice.headers)
    for params in ({"limit": "99999999999999999999"}, {"offset": "-5"}, {"limit": "2abc"}):
        response = client.get(f"{RULES}/events", params=params, headers=alice.headers)
        assert response.status_code == 200, (params, response.text)


@pytest.mark.parametrize("rule_id", ["%00", "a%00b", "x" * 101, "a%20b"])
def test_a_rule_id_no_rule_could_have_is_a_400_on_every_rule_route(
    client: TestClient, alice: Tenant, rule_id: str
) -> None:
    url = f"{RULES}/{rule_id}"
    answers = [
        client.get(url, headers=alice.headers),
        client.patch(url, json={"triggerPrice": 0.5}, headers=alice.headers),
        client.delete(url, headers=alice.headers),
    ]

    for response in answers:
        _refused(response, "rule_id")


@pytest.mark.parametrize("rule_id", ["\x00", "a\x00b", "x" * 101])
def test_an_events_rule_filter_no_rule_could_have_is_a_400(
    client: TestClient, alice: Tenant, rule_id: str
) -> None:
    response = client.get(f"{RULES}/events", params={"ruleId": rule_id}, headers=alice.headers)

    _refused(response, "ruleId")


def test_a_nul_in_a_market_id_is_refused(client: TestClient, alice: Tenant) -> None:
    response = client.post(RULES, json=stop_loss(marketId="ab\x00c"), headers=alice.headers)

    _refused(response, "marketId")
    _no_rules(client, alice)


@pytest.mark.parametrize("entry", ["a\x00b", "x" * 101, "two words", ""])
def test_an_allowlist_entry_no_market_could_have_is_a_400(database_url: str, entry: str) -> None:
    owner = "owner-" + "7" * 40
    tenant = create_tenant(database_url, "alice")
    settings = api_settings(database_url, vincent_admin_token=SecretStr(owner))
    with TestClient(create_app(settings, skill_factory=None)) as client:
        response = client.put(
            f"/api/admin/secrets/{tenant.secret_id}/policies/MARKET_ALLOWLIST",
            json={"markets": [entry]},
            headers={"Authorization": f"Bearer {owner}"},
        )
        listed = client.get("/api/admin/policies", headers={"Authorization": f"Bearer {owner}"})

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["details"][0]["path"][0] == "markets"
    assert listed.json()["data"]["policies"] == []
