"""Two tenants: neither can see, change, cancel or list the other's rules, events, positions."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import RULES, stop_loss
from tests.helpers import Tenant


def _rule_of(client: TestClient, tenant: Tenant) -> str:
    rule_id: str = client.post(RULES, json=stop_loss(), headers=tenant.headers).json()["data"]["id"]
    return rule_id


def _not_found(response: object) -> None:
    assert response.status_code == 404  # type: ignore[attr-defined]
    assert response.json()["error"] == {"code": "NOT_FOUND", "message": "Rule not found"}  # type: ignore[attr-defined]


def test_cannot_get_anothers_rule(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    _not_found(client.get(f"{RULES}/{_rule_of(client, alice)}", headers=bob.headers))


def test_cannot_patch_anothers_rule(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    rule_id = _rule_of(client, alice)
    _not_found(client.patch(f"{RULES}/{rule_id}", json={"triggerPrice": 0.1}, headers=bob.headers))
    assert (
        client.get(f"{RULES}/{rule_id}", headers=alice.headers).json()["data"]["triggerPrice"]
        == 0.4
    )


def test_cannot_cancel_anothers_rule(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    rule_id = _rule_of(client, alice)
    _not_found(client.delete(f"{RULES}/{rule_id}", headers=bob.headers))
    assert (
        client.get(f"{RULES}/{rule_id}", headers=alice.headers).json()["data"]["status"] == "ACTIVE"
    )


def test_lists_are_scoped(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    mine = _rule_of(client, alice)
    theirs = _rule_of(client, bob)
    assert [r["id"] for r in client.get(RULES, headers=alice.headers).json()["data"]["rules"]] == [
        mine
    ]
    assert [r["id"] for r in client.get(RULES, headers=bob.headers).json()["data"]["rules"]] == [
        theirs
    ]


def test_events_are_scoped(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    mine = _rule_of(client, alice)
    _rule_of(client, bob)
    events = client.get(RULES + "/events", headers=alice.headers).json()["data"]["events"]
    assert {e["ruleId"] for e in events} == {mine}
    _not_found(client.get(RULES + "/events", params={"ruleId": mine}, headers=bob.headers))


def test_positions_are_scoped(
    client: TestClient, alice: Tenant, bob: Tenant, database_url: str
) -> None:
    from datetime import UTC, datetime

    from tests.helpers import run_in_db
    from vincent.db.models import TradeMonitoredPosition

    async def seed(session: object) -> None:
        session.add(  # type: ignore[attr-defined]
            TradeMonitoredPosition(
                secret_id=alice.secret_id,
                market_id="0xm",
                token_id="1",
                side="BUY",
                quantity=10.0,
                current_price=0.5,
                last_updated_at=datetime.now(UTC),
            )
        )

    run_in_db(database_url, seed)  # type: ignore[arg-type]
    assert (
        len(client.get(RULES + "/positions", headers=alice.headers).json()["data"]["positions"])
        == 1
    )
    assert client.get(RULES + "/positions", headers=bob.headers).json()["data"]["positions"] == []


def test_status_counts_are_scoped(client: TestClient, alice: Tenant, bob: Tenant) -> None:
    _rule_of(client, alice)
    assert (
        client.get(RULES + "/status", headers=bob.headers).json()["data"]["yourActiveRulesCount"]
        == 0
    )
