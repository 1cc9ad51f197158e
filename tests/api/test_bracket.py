"""POST /rules/bracket and ocoGroupId on POST /rules: shapes, validation, the rule limit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES, stop_loss
from tests.helpers import Tenant

BRACKET = f"{RULES}/bracket"


def bracket(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "marketId": "0x" + "ab" * 32,
        "tokenId": "1234567890",
        "stopLoss": {"triggerPrice": 0.4},
        "takeProfit": {"triggerPrice": 0.7},
        "action": {"type": "SELL_PARTIAL", "amount": 5},
        "triggerSource": "BEST_BID",
    }
    body.update(changes)
    return body


def test_a_bracket_is_two_rules_of_one_group_in_the_usual_shape(
    client: TestClient, alice: Tenant
) -> None:
    response = client.post(BRACKET, json=bracket(), headers=alice.headers)

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert list(data) == ["ocoGroupId", "rules"]
    stop, take = data["rules"]
    assert (stop["ruleType"], stop["triggerPrice"]) == ("STOP_LOSS", 0.4)
    assert (take["ruleType"], take["triggerPrice"]) == ("TAKE_PROFIT", 0.7)
    for rule in (stop, take):
        assert rule["ocoGroupId"] == data["ocoGroupId"]
        assert rule["action"] == {"type": "SELL_PARTIAL", "amount": 5}
        assert rule["triggerSource"] == "BEST_BID"
        assert rule["status"] == "ACTIVE"
        assert client.get(f"{RULES}/{rule['id']}", headers=alice.headers).json()["data"] == rule


def test_a_trailing_stop_leg_without_a_floor_starts_at_the_lowest_trigger(
    client: TestClient, alice: Tenant
) -> None:
    body = bracket(stopLoss={"trailingAmount": 0.05, "activationPrice": 0.55})

    stop, take = client.post(BRACKET, json=body, headers=alice.headers).json()["data"]["rules"]

    assert stop["ruleType"] == "TRAILING_STOP"
    assert (stop["triggerPrice"], stop["trailingAmount"], stop["activationPrice"]) == (
        0.0001,
        0.05,
        0.55,
    )
    assert stop["trailingPercent"] is None
    assert take["ruleType"] == "TAKE_PROFIT"


def test_each_rule_of_a_bracket_counts_toward_the_limit(client: TestClient, alice: Tenant) -> None:
    for _ in range(4):  # the test app allows 5 active rules
        assert client.post(RULES, json=stop_loss(), headers=alice.headers).status_code == 201

    response = client.post(BRACKET, json=bracket(), headers=alice.headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert len(client.get(RULES, headers=alice.headers).json()["data"]["rules"]) == 4


CASES: list[tuple[str, dict[str, Any], list[str], str]] = [
    (
        "take below stop",
        bracket(takeProfit={"triggerPrice": 0.3}),
        ["takeProfit", "triggerPrice"],
        "custom",
    ),
    ("empty stop", bracket(stopLoss={}), ["stopLoss", "triggerPrice"], "custom"),
    (
        "both trails",
        bracket(stopLoss={"trailingPercent": 5, "trailingAmount": 0.05}),
        ["stopLoss", "trailingAmount"],
        "custom",
    ),
    (
        "activation without a trail",
        bracket(stopLoss={"triggerPrice": 0.4, "activationPrice": 0.5}),
        ["stopLoss", "trailingPercent"],
        "custom",
    ),
    ("missing take", bracket(takeProfit=None), ["takeProfit"], "invalid_type"),
    (
        "stop price 1",
        bracket(stopLoss={"triggerPrice": 1}),
        ["stopLoss", "triggerPrice"],
        "too_big",
    ),
    (
        "unknown key in a leg",
        bracket(takeProfit={"triggerPrice": 0.7, "x": 1}),
        ["takeProfit"],
        "unrecognized_keys",
    ),
]


@pytest.mark.parametrize(
    ("body", "path", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_brackets_are_refused_and_write_nothing(
    client: TestClient, alice: Tenant, body: dict[str, Any], path: list[str], code: str
) -> None:
    response = client.post(BRACKET, json=body, headers=alice.headers)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [(issue["path"], issue["code"]) for issue in error["details"]] == [(path, code)]
    assert client.get(RULES, headers=alice.headers).json()["data"]["rules"] == []


def test_rules_join_a_group_of_their_own_token_only(
    client: TestClient, alice: Tenant, bob: Tenant
) -> None:
    first = client.post(RULES, json=stop_loss(ocoGroupId="exit-1"), headers=alice.headers)
    second = client.post(
        RULES,
        json=stop_loss(ruleType="TAKE_PROFIT", triggerPrice=0.8, ocoGroupId="exit-1"),
        headers=alice.headers,
    )
    other_token = client.post(
        RULES, json=stop_loss(tokenId="999", ocoGroupId="exit-1"), headers=alice.headers
    )
    # Bob's "exit-1" is his own group: Alice's rules do not constrain it.
    bobs = client.post(
        RULES, json=stop_loss(tokenId="999", ocoGroupId="exit-1"), headers=bob.headers
    )

    assert first.status_code == second.status_code == bobs.status_code == 201
    assert first.json()["data"]["ocoGroupId"] == second.json()["data"]["ocoGroupId"] == "exit-1"
    assert other_token.status_code == 400
    issue = other_token.json()["error"]["details"][0]
    assert issue["path"] == ["ocoGroupId"]
    assert issue["message"] == (
        "ocoGroupId exit-1 holds rules of token 1234567890: a group is one token's rules, "
        "was tokenId 999"
    )
    assert len(client.get(RULES, headers=alice.headers).json()["data"]["rules"]) == 2
