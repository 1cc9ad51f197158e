"""An app on a real database (both engines), entered through its real lifespan."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.helpers import TEST_ENCRYPTION_KEY, Tenant, create_tenant
from vincent.app import create_app
from vincent.config import Settings

# Nothing listens here: a Gamma lookup fails at once and the slug stays null.
CLOSED_PORT_URL = "http://127.0.0.1:9"


def api_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "vincent_encryption_key": SecretStr(TEST_ENCRYPTION_KEY),
        "trade_manager_enabled": False,
        "polymarket_gamma_url": CLOSED_PORT_URL,
        "polymarket_clob_url": CLOSED_PORT_URL,
        "polymarket_data_api_url": CLOSED_PORT_URL,
        "polymarket_relayer_url": CLOSED_PORT_URL,
        "polymarket_ws_url": "ws://127.0.0.1:9/ws/market",
        "max_body_bytes": 64 * 1024,
        # Never a status file a worker on this machine might be writing.
        "worker_status_file": Path(tempfile.gettempdir()) / f"vincent-test-{uuid.uuid4()}.json",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = api_settings(database_url, trade_manager_max_rules_per_secret=5)
    app = create_app(settings, skill_factory=None)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def alice(database_url: str) -> Tenant:
    return create_tenant(database_url, "alice")


@pytest.fixture
def bob(database_url: str) -> Tenant:
    return create_tenant(database_url, "bob")


def stop_loss(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ruleType": "STOP_LOSS",
        "marketId": "0x" + "ab" * 32,
        "tokenId": "1234567890",
        "triggerPrice": 0.4,
        "action": {"type": "SELL_ALL"},
    }
    body.update(overrides)
    return body


RULES = "/api/skills/polymarket/rules"
