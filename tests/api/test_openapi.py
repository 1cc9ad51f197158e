"""The OpenAPI document served at /openapi.json (rendered at /docs) is valid OpenAPI 3."""

from __future__ import annotations

from fastapi.testclient import TestClient
from openapi_spec_validator import validate


def test_openapi_document_is_valid_and_documents_the_rules_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    validate(spec)
    paths = spec["paths"]
    for path in (
        "/api/skills/polymarket/rules",
        "/api/skills/polymarket/rules/{rule_id}",
        "/api/skills/polymarket/rules/events",
        "/api/skills/polymarket/rules/positions",
        "/api/skills/polymarket/rules/status",
        "/health",
    ):
        assert path in paths, path
    create = paths["/api/skills/polymarket/rules"]["post"]
    assert {"201", "400", "401"} <= set(create["responses"])
    assert client.get("/docs").status_code == 200


def test_openapi_documents_the_bracket_route_and_the_new_rule_fields(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    bracket = spec["paths"]["/api/skills/polymarket/rules/bracket"]["post"]
    assert {"201", "400", "401"} <= set(bracket["responses"])
    rule = spec["components"]["schemas"]["RuleOut"]["properties"]
    for field in ("ocoGroupId", "activationPrice", "activatedAt", "trailingAmount"):
        assert rule[field]["description"], field
    create = spec["components"]["schemas"]["CreateRuleBody"]["properties"]
    assert {"trailingAmount", "activationPrice", "ocoGroupId"} <= set(create)
