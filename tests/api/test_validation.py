"""Validation table: every field, every way it can be wrong. Nothing is written on a 4xx."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES, stop_loss
from tests.helpers import Tenant

MISSING = object()


def _body(**changes: Any) -> dict[str, Any]:
    body = stop_loss()
    for key, value in changes.items():
        if value is MISSING:
            body.pop(key, None)
        else:
            body[key] = value
    return body


CASES: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("missing ruleType", _body(ruleType=MISSING), ["ruleType"], "invalid_value"),
    ("bad ruleType", _body(ruleType="STOP"), ["ruleType"], "invalid_value"),
    ("lowercase ruleType", _body(ruleType="stop_loss"), ["ruleType"], "invalid_value"),
    ("missing marketId", _body(marketId=MISSING), ["marketId"], "invalid_type"),
    ("empty marketId", _body(marketId=""), ["marketId"], "too_small"),
    ("numeric marketId", _body(marketId=12), ["marketId"], "invalid_type"),
    ("missing tokenId", _body(tokenId=MISSING), ["tokenId"], "invalid_type"),
    ("empty tokenId", _body(tokenId=""), ["tokenId"], "too_small"),
    ("side SELL", _body(side="SELL"), ["side"], "invalid_value"),
    ("missing triggerPrice", _body(triggerPrice=MISSING), ["triggerPrice"], "invalid_type"),
    ("string triggerPrice", _body(triggerPrice="0.4"), ["triggerPrice"], "invalid_type"),
    ("zero triggerPrice", _body(triggerPrice=0), ["triggerPrice"], "too_small"),
    ("one triggerPrice", _body(triggerPrice=1), ["triggerPrice"], "too_big"),
    ("big triggerPrice", _body(triggerPrice=1.2), ["triggerPrice"], "too_big"),
    ("negative triggerPrice", _body(triggerPrice=-0.1), ["triggerPrice"], "too_small"),
    ("bool triggerPrice", _body(triggerPrice=True), ["triggerPrice"], "invalid_type"),
    (
        "trailing without percent",
        _body(ruleType="TRAILING_STOP"),
        ["trailingPercent"],
        "custom",
    ),
    ("percent on stop-loss", _body(trailingPercent=5), ["trailingPercent"], "custom"),
    (
        "percent zero",
        _body(ruleType="TRAILING_STOP", trailingPercent=0),
        ["trailingPercent"],
        "too_small",
    ),
    (
        "percent 100",
        _body(ruleType="TRAILING_STOP", trailingPercent=100),
        ["trailingPercent"],
        "too_big",
    ),
    (
        "percent null",
        _body(ruleType="TRAILING_STOP", trailingPercent=None),
        ["trailingPercent"],
        "invalid_type",
    ),
    ("missing action", _body(action=MISSING), ["action"], "invalid_type"),
    ("action string", _body(action="SELL_ALL"), ["action"], "invalid_type"),
    ("action bad type", _body(action={"type": "BUY_MORE"}), ["action"], "invalid_union"),
    (
        "partial without amount",
        _body(action={"type": "SELL_PARTIAL"}),
        ["action", "amount"],
        "invalid_type",
    ),
    (
        "partial zero amount",
        _body(action={"type": "SELL_PARTIAL", "amount": 0}),
        ["action", "amount"],
        "too_small",
    ),
    (
        "unknown key in action",
        _body(action={"type": "SELL_ALL", "extra": 1}),
        ["action"],
        "unrecognized_keys",
    ),
    ("bad triggerSource", _body(triggerSource="ASK"), ["triggerSource"], "invalid_value"),
]


@pytest.mark.parametrize(
    ("body", "path", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_create_bodies(
    client: TestClient, alice: Tenant, body: dict[str, Any], path: list[str], code: str
) -> None:
    response = client.post(RULES, json=body, headers=alice.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"] == "Validation failed"
    assert [(issue["path"], issue["code"]) for issue in error["details"]] == [(path, code)]
    assert client.get(RULES, headers=alice.headers).json()["data"]["rules"] == []


def test_several_issues_are_all_reported(client: TestClient, alice: Tenant) -> None:
    body = _body(marketId="", triggerPrice=2, ruleType="NOPE")
    error = client.post(RULES, json=body, headers=alice.headers).json()["error"]
    assert sorted(issue["path"][0] for issue in error["details"]) == [
        "marketId",
        "ruleType",
        "triggerPrice",
    ]


def test_issue_objects_match_the_original_shape(client: TestClient, alice: Tenant) -> None:
    error = client.post(RULES, json=_body(marketId=MISSING), headers=alice.headers).json()["error"]
    assert error["details"] == [
        {
            "expected": "string",
            "code": "invalid_type",
            "path": ["marketId"],
            "message": "Invalid input: expected string, received undefined",
        }
    ]
    error = client.post(RULES, json=_body(ruleType="X"), headers=alice.headers).json()["error"]
    assert error["details"] == [
        {
            "code": "invalid_value",
            "values": ["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"],
            "path": ["ruleType"],
            "message": 'Invalid option: expected one of "STOP_LOSS"|"TAKE_PROFIT"|"TRAILING_STOP"',
        }
    ]


def test_malformed_json_is_a_400_not_a_500(client: TestClient, alice: Tenant) -> None:
    response = client.post(
        RULES,
        content=b'{"ruleType": "STOP_LOSS",',
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["code"] == "invalid_json"


def test_missing_body_is_reported_at_the_root(client: TestClient, alice: Tenant) -> None:
    response = client.post(RULES, headers=alice.headers)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == []


def test_array_body_is_refused(client: TestClient, alice: Tenant) -> None:
    response = client.post(RULES, json=[stop_loss()], headers=alice.headers)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "invalid_type"


def test_huge_body_is_a_413(client: TestClient, alice: Tenant) -> None:
    body = stop_loss(marketId="x" * 100_000)
    response = client.post(RULES, json=body, headers=alice.headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert client.get(RULES, headers=alice.headers).json()["data"]["rules"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_type"),
        ({"triggerPrice": "0.5"}, "invalid_type"),
        ({"triggerPrice": 0}, "too_small"),
        ({"triggerPrice": 1.5}, "too_big"),
    ],
)
def test_invalid_patch_bodies(
    client: TestClient, alice: Tenant, body: dict[str, Any], code: str
) -> None:
    rule_id = client.post(RULES, json=stop_loss(), headers=alice.headers).json()["data"]["id"]
    response = client.patch(f"{RULES}/{rule_id}", json=body, headers=alice.headers)
    assert response.status_code == 400
    assert [i["code"] for i in response.json()["error"]["details"]] == [code]
    rule = client.get(f"{RULES}/{rule_id}", headers=alice.headers).json()["data"]
    assert rule["triggerPrice"] == 0.4
