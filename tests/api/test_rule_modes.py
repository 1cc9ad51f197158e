"""A rule carries the execution mode of the process that created it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import Tenant
from vincent.app import create_app
from vincent.config import ExecutionMode


@pytest.mark.parametrize("mode", [ExecutionMode.PAPER, ExecutionMode.LIVE])
def test_a_rule_records_the_mode_it_was_created_in(
    database_url: str, alice: Tenant, mode: ExecutionMode
) -> None:
    app = create_app(api_settings(database_url, execution_mode=mode), skill_factory=None)
    with TestClient(app) as client:
        created = client.post(RULES, json=stop_loss(), headers=alice.headers)
        listed = client.get(RULES, headers=alice.headers)
        status = client.get(f"{RULES}/status", headers=alice.headers)

    assert created.status_code == 201, created.text
    assert created.json()["data"]["executionMode"] == mode.value
    assert [r["executionMode"] for r in listed.json()["data"]["rules"]] == [mode.value]
    assert status.json()["data"]["executionMode"] == mode.value
    assert status.json()["data"]["yourOtherModeRulesCount"] == 0
