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
