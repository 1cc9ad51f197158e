"""The trade-rules API: happy paths, status transitions and the wire shapes of the original."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import Tenant, run_in_db
from vincent.app import create_app
from vincent.services.trade_manager import rule_manager

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RULE_KEYS = [
    "id",
    "secretId",
    "ruleType",
    "marketId",
    "marketSlug",
    "tokenId",
    "side",
    "triggerPrice",
    "trailingPercent",
    "action",
    "status",
    "triggeredAt",
    "triggerTxHash",
    "errorMessage",
    "createdAt",
    "updatedAt",
    "triggerSource",
    "expiresAt",
    "executionMode",
    "trailingAmount",
    "activationPrice",
    "activatedAt",
    "ocoGroupId",
]


def create(client: TestClient, tenant: Tenant, **overrides: object) -> dict[str, object]:
    response = client.post(RULES, json=stop_loss(**overrides), headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()["data"]
    return data


def test_create_returns_the_rule_in_the_original_shape(client: TestClient, alice: Tenant) -> None:
    response = client.post(RULES, json=stop_loss(), headers=alice.headers)
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    rule = body["data"]
    assert list(rule) == RULE_KEYS
    assert rule["secretId"] == alice.secret_id
    assert rule["ruleType"] == "STOP_LOSS"
    assert rule["side"] == "BUY"
    assert rule["triggerPrice"] == 0.4
    assert rule["trailingPercent"] is None
    assert rule["action"] == {"type": "SELL_ALL"}
    assert rule["status"] == "ACTIVE"
    assert rule["marketSlug"] is None  # Gamma unreachable: null, request still succeeds
    assert rule["triggeredAt"] is None
    assert rule["triggerSource"] == "MIDPOINT"
    assert rule["executionMode"] == "live"
    assert len(rule["id"]) == 25 and rule["id"].startswith("c")
    assert ISO_MS_Z.match(rule["createdAt"]) and ISO_MS_Z.match(rule["updatedAt"])


def test_create_logs_rule_created_with_the_validated_payload(
    client: TestClient, alice: Tenant
) -> None:
    rule = create(
        client,
        alice,
        ruleType="TRAILING_STOP",
        trailingPercent=5,
        action={"type": "SELL_PARTIAL", "amount": 3.5},
        unknownKey="stripped",
    )
    assert rule["action"] == {"type": "SELL_PARTIAL", "amount": 3.5}
    assert rule["trailingPercent"] == 5
    events = client.get(RULES + "/events", headers=alice.headers).json()["data"]["events"]
    assert [e["eventType"] for e in events] == ["RULE_CREATED"]
    assert list(events[0]) == ["id", "ruleId", "eventType", "data", "createdAt"]
    assert events[0]["data"] == {
        "payload": {
            "ruleType": "TRAILING_STOP",
            "marketId": "0x" + "ab" * 32,
            "tokenId": "1234567890",
            "side": "BUY",
            "triggerPrice": 0.4,
            "trailingPercent": 5,
            "action": {"type": "SELL_PARTIAL", "amount": 3.5},
        }
    }


def test_active_rule_limit_is_enforced(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    for _ in range(5):
        create(client, alice)
    response = client.post(RULES, json=stop_loss(), headers=alice.headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "BAD_REQUEST",
        "message": "Maximum active rules limit reached (5). "
        "Cancel existing rules before creating new ones.",
    }
    # Only ACTIVE rules count, and only the caller's.
    create(client, bob)
    first = client.get(RULES, headers=alice.headers).json()["data"]["rules"][0]
    assert client.delete(f"{RULES}/{first['id']}", headers=alice.headers).status_code == 200
    create(client, alice)


def test_a_refused_create_writes_no_event(client: TestClient, alice: Tenant) -> None:
    """The rule and its RULE_CREATED event are written together or not at all (on
    PostgreSQL one statement writes both; the cap decides for both)."""
    ids = {create(client, alice)["id"] for _ in range(5)}
    refused = client.post(RULES, json=stop_loss(), headers=alice.headers)
    assert refused.status_code == 400
    events = client.get(f"{RULES}/events", headers=alice.headers).json()["data"]["events"]
    assert sorted(e["ruleId"] for e in events) == sorted(ids)
    assert {e["eventType"] for e in events} == {"RULE_CREATED"}
    assert len(client.get(RULES, headers=alice.headers).json()["data"]["rules"]) == 5


def test_reads_render_every_field_as_the_create_did(client: TestClient, alice: Tenant) -> None:
    """Get, list and the create's answer agree field for field (the reads render plain
    rows, the create an ORM object)."""
    created = create(
        client,
        alice,
        ruleType="TRAILING_STOP",
        trailingPercent=5,
        action={"type": "SELL_PARTIAL", "amount": 2.5},
        expiresAt="2099-01-02T03:04:05.678Z",
    )
    got = client.get(f"{RULES}/{created['id']}", headers=alice.headers).json()["data"]
    listed = client.get(RULES, headers=alice.headers).json()["data"]["rules"]
    assert got == created
    assert listed == [created]
    assert list(got) == list(created)  # key order too


def test_list_is_newest_first_and_filters_by_status(client: TestClient, alice: Tenant) -> None:
    ids = [create(client, alice, triggerPrice=p)["id"] for p in (0.1, 0.2, 0.3)]
    client.delete(f"{RULES}/{ids[0]}", headers=alice.headers)
    rules = client.get(RULES, headers=alice.headers).json()["data"]["rules"]
    assert [r["id"] for r in rules] == list(reversed(ids))
    active = client.get(RULES, params={"status": " active "}, headers=alice.headers)
    assert [r["id"] for r in active.json()["data"]["rules"]] == [ids[2], ids[1]]
    canceled = client.get(RULES, params={"status": "CANCELED"}, headers=alice.headers)
    assert [r["id"] for r in canceled.json()["data"]["rules"]] == [ids[0]]
    empty = client.get(RULES + "?status=", headers=alice.headers)
    assert len(empty.json()["data"]["rules"]) == 3


def test_unknown_status_filter_is_a_400(client: TestClient, alice: Tenant) -> None:
    response = client.get(RULES, params={"status": "bogus"}, headers=alice.headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "BAD_REQUEST",
        "message": "Invalid status filter: bogus",
    }


def test_get_patch_and_delete(client: TestClient, alice: Tenant) -> None:
    rule_id = create(client, alice)["id"]
    got = client.get(f"{RULES}/{rule_id}", headers=alice.headers).json()["data"]
    assert got["id"] == rule_id
    patched = client.patch(f"{RULES}/{rule_id}", json={"triggerPrice": 0.35}, headers=alice.headers)
    assert patched.status_code == 200
    assert patched.json()["data"]["triggerPrice"] == 0.35
    canceled = client.delete(f"{RULES}/{rule_id}", headers=alice.headers)
    assert canceled.json()["data"]["status"] == "CANCELED"
    again = client.patch(f"{RULES}/{rule_id}", json={"triggerPrice": 0.3}, headers=alice.headers)
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "Only active rules can be updated"
    twice = client.delete(f"{RULES}/{rule_id}", headers=alice.headers)
    assert twice.status_code == 400
    assert twice.json()["error"]["message"] == (
        "Only active, failed, or pending approval rules can be canceled"
    )
    events = client.get(RULES + "/events", params={"ruleId": rule_id}, headers=alice.headers)
    kinds = [e["eventType"] for e in events.json()["data"]["events"]]
    assert kinds == ["RULE_CANCELED", "RULE_CREATED"]


def test_failed_and_pending_rules_can_be_canceled_triggered_cannot(
    client: TestClient, alice: Tenant, database_url: str
) -> None:
    failed, pending, triggered = (create(client, alice)["id"] for _ in range(3))

    async def move(session: object) -> None:
        assert await rule_manager.mark_rule_failed(session, str(failed), "boom")  # type: ignore[arg-type]
        for rule_id in (pending, triggered):
            assert await rule_manager.mark_rule_triggered(session, str(rule_id))  # type: ignore[arg-type]
        assert await rule_manager.mark_rule_pending_approval(session, str(pending), None)  # type: ignore[arg-type]

    run_in_db(database_url, move)  # type: ignore[arg-type]
    assert client.delete(f"{RULES}/{failed}", headers=alice.headers).status_code == 200
    assert client.delete(f"{RULES}/{pending}", headers=alice.headers).status_code == 200
    assert client.delete(f"{RULES}/{triggered}", headers=alice.headers).status_code == 400
    listed = client.get(RULES, params={"status": "triggered"}, headers=alice.headers)
    assert [r["id"] for r in listed.json()["data"]["rules"]] == [triggered]


def test_events_limit_and_offset(client: TestClient, alice: Tenant) -> None:
    for _ in range(4):
        create(client, alice)
    events = RULES + "/events"
    assert (
        len(
            client.get(events, params={"limit": "2"}, headers=alice.headers).json()["data"][
                "events"
            ]
        )
        == 2
    )
    page = client.get(events, params={"limit": "2", "offset": "3"}, headers=alice.headers)
    assert len(page.json()["data"]["events"]) == 1
    junk = client.get(events, params={"limit": "abc", "offset": "x"}, headers=alice.headers)
    assert len(junk.json()["data"]["events"]) == 4
    clamped = client.get(events, params={"limit": "0"}, headers=alice.headers)
    assert len(clamped.json()["data"]["events"]) == 1


def test_status_reports_only_the_callers_count(
    client: TestClient, alice: Tenant, bob: Tenant
) -> None:
    create(client, alice)
    create(client, alice)
    create(client, bob)
    data = client.get(RULES + "/status", headers=alice.headers).json()["data"]
    assert data["yourActiveRulesCount"] == 2
    assert data["running"] is False  # no worker in this app
    assert data["webSocketConnected"] is False
    assert data["consecutiveFailures"] == 0
    assert "lastSyncTime" not in data and "circuitBreakerUntil" not in data


def test_positions_empty_for_a_new_tenant(client: TestClient, alice: Tenant) -> None:
    response = client.get(RULES + "/positions", headers=alice.headers)
    assert response.json() == {"success": True, "data": {"positions": []}}


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["success"] is True
    assert body["data"]["status"] == "ok"
    assert body["data"]["version"]


class _SlugSkill:
    """Just enough skill for the create route: counts Gamma slug lookups."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def lookup_market_slug(self, condition_id: str) -> str | None:
        self.lookups.append(condition_id)
        return None if condition_id.endswith("00") else f"slug-{condition_id[-4:]}"

    async def aclose(self) -> None:
        return None


def test_market_slugs_are_looked_up_once_per_market(database_url: str, alice: Tenant) -> None:
    skill = _SlugSkill()
    settings = api_settings(database_url)
    app = create_app(settings, skill_factory=lambda *_: skill)  # type: ignore[arg-type,return-value]
    known, unknown = "0x" + "ab" * 32, "0x" + "ab" * 31 + "00"
    with TestClient(app) as client:
        slugs = [create(client, alice, marketId=m)["marketSlug"] for m in (known, known, unknown)]
        assert create(client, alice, marketId=unknown)["marketSlug"] is None
    assert slugs == ["slug-abab", "slug-abab", None]
    assert skill.lookups == [known, unknown]
