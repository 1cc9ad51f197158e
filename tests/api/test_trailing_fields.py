"""trailingAmount and activationPrice through the API: stored, shown, and validated."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES, stop_loss
from tests.helpers import Tenant


def trailing(**fields: Any) -> dict[str, Any]:
    return stop_loss(ruleType="TRAILING_STOP", triggerPrice=0.3, **fields)


def test_a_trailing_stop_by_amount_with_an_activation_price_is_shown_as_set(
    client: TestClient, alice: Tenant
) -> None:
    response = client.post(
        RULES, json=trailing(trailingAmount=0.05, activationPrice=0.6), headers=alice.headers
    )

    assert response.status_code == 201, response.text
    rule = response.json()["data"]
    assert rule["ruleType"] == "TRAILING_STOP"
    assert rule["trailingPercent"] is None
    assert rule["trailingAmount"] == 0.05
    assert rule["activationPrice"] == 0.6
    assert rule["activatedAt"] is None
    assert rule["ocoGroupId"] is None
    assert client.get(f"{RULES}/{rule['id']}", headers=alice.headers).json()["data"] == rule
    events = client.get(f"{RULES}/events", headers=alice.headers).json()["data"]["events"]
    assert events[0]["data"]["payload"]["trailingAmount"] == 0.05
    assert events[0]["data"]["payload"]["activationPrice"] == 0.6


def test_a_percent_trailing_stop_keeps_its_original_answer(
    client: TestClient, alice: Tenant
) -> None:
    rule = client.post(RULES, json=trailing(trailingPercent=10), headers=alice.headers).json()[
        "data"
    ]

    assert (rule["trailingPercent"], rule["trailingAmount"], rule["activationPrice"]) == (
        10,
        None,
        None,
    )


CASES: list[tuple[str, dict[str, Any], list[str], str, str | None]] = [
    (
        "both trails",
        trailing(trailingPercent=10, trailingAmount=0.05),
        ["trailingAmount"],
        "custom",
        "Send either trailingPercent or trailingAmount for TRAILING_STOP rules, not both",
    ),
    (
        "no trail",
        trailing(activationPrice=0.6),
        ["trailingPercent"],
        "custom",
        "trailingPercent is required for TRAILING_STOP rules",
    ),
    (
        "amount on a stop-loss",
        stop_loss(trailingAmount=0.05),
        ["trailingAmount"],
        "custom",
        "trailingAmount is only supported for TRAILING_STOP rules",
    ),
    (
        "activation on a take-profit",
        stop_loss(ruleType="TAKE_PROFIT", activationPrice=0.6),
        ["activationPrice"],
        "custom",
        "activationPrice is only supported for TRAILING_STOP rules",
    ),
    ("amount zero", trailing(trailingAmount=0), ["trailingAmount"], "too_small", None),
    ("amount one", trailing(trailingAmount=1), ["trailingAmount"], "too_big", None),
    ("amount string", trailing(trailingAmount="0.05"), ["trailingAmount"], "invalid_type", None),
    ("amount null", trailing(trailingAmount=None), ["trailingAmount"], "invalid_type", None),
    (
        "activation one",
        trailing(trailingPercent=5, activationPrice=1),
        ["activationPrice"],
        "too_big",
        None,
    ),
    (
        "activation zero",
        trailing(trailingPercent=5, activationPrice=0),
        ["activationPrice"],
        "too_small",
        None,
    ),
    (
        "oco id too long",
        stop_loss(ocoGroupId="g" * 65),
        ["ocoGroupId"],
        "too_big",
        None,
    ),
    ("oco id empty", stop_loss(ocoGroupId=""), ["ocoGroupId"], "too_small", None),
    ("oco id number", stop_loss(ocoGroupId=7), ["ocoGroupId"], "invalid_type", None),
]


@pytest.mark.parametrize(
    ("body", "path", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_trailing_and_group_fields_are_refused_naming_the_field(
    client: TestClient,
    alice: Tenant,
    body: dict[str, Any],
    path: list[str],
    code: str,
    message: str | None,
) -> None:
    response = client.post(RULES, json=body, headers=alice.headers)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [(issue["path"], issue["code"]) for issue in error["details"]] == [(path, code)]
    if message is not None:
        assert error["details"][0]["message"] == message
    assert client.get(RULES, headers=alice.headers).json()["data"]["rules"] == []
