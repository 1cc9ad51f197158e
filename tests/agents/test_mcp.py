"""The MCP server through the SDK's own client, over streamable HTTP (/mcp) and over stdio
(`vincent mcp` proxying to the server), against a real server (uvicorn on a free port), the
local exchange and a real database (both engines)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from mcp import Client, StdioServerParameters
from tests.api.conftest import api_settings
from tests.engine.live import is_connected, open_market, worker_settings
from tests.helpers import TEST_ENCRYPTION_KEY, Tenant, create_tenant, make_tenant
from tests.skill.conftest import MarketIds
from vincent.app import create_app
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.services.trade_manager.rule_manager import NewRule, create_rule
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.sim import LocalExchange

TIMEOUT_S = 30.0
TOOLS = {
    "create_rule",
    "create_bracket",
    "list_rules",
    "get_rule",
    "update_rule",
    "cancel_rule",
    "rule_events",
    "positions",
    "status",
    "holdings",
    "orderbook",
    "midpoint",
    "place_bet",
}
Connect = Callable[[Tenant], AbstractAsyncContextManager[Client]]


@dataclass
class Served:
    url: str
    worker: TradeMonitoringWorker
    exchange: LocalExchange
    market: MarketIds
    alice: Tenant
    bob: Tenant
    tmp_path: Path


@pytest.fixture
async def served(
    exchange: LocalExchange, session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[Served]:
    async with session_factory() as session:
        alice = await make_tenant(session, "alice")
        bob = await make_tenant(session, "bob")
        carol = await make_tenant(session, "carol")
        await session.commit()
    market = open_market(exchange, "0.50")
    # Carol's far-away stop keeps the token subscribed (the feed connects for watched tokens).
    keeper = NewRule(
        rule_type=TradeRuleType.STOP_LOSS,
        market_id=market.condition_id,
        token_id=market.yes,
        trigger_price=Decimal("0.05"),
        action=RuleAction(ActionType.SELL_ALL),
    )
    async with session_factory() as session, session.begin():
        await create_rule(session, carol.secret_id, keeper, max_active_rules=10)
    exchange.credit(alice.address, token_id=market.yes, shares="10", avg_price="0.5")
    # Bound before the server starts: a connection waits in the backlog until it serves.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    settings = worker_settings(
        exchange,
        database_url,
        vincent_encryption_key=SecretStr(TEST_ENCRYPTION_KEY),
        host="127.0.0.1",
        port=port,
        worker_status_file=tmp_path / "status.json",
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(TIMEOUT_S), httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            worker: TradeMonitoringWorker = app.state.vincent.worker
            await worker.wait_for(is_connected(worker))
        yield Served(f"http://127.0.0.1:{port}", worker, exchange, market, alice, bob, tmp_path)
    finally:
        server.should_exit = True
        await task
        sock.close()


def _http(served: Served) -> Connect:
    @asynccontextmanager
    async def connect(tenant: Tenant) -> AsyncIterator[Client]:
        http = httpx2.AsyncClient(headers=tenant.headers, timeout=TIMEOUT_S)
        async with http, Client(streamable_http_client(f"{served.url}/mcp", http_client=http)) as c:
            yield c

    return connect


def _stdio(served: Served) -> Connect:
    @asynccontextmanager
    async def connect(tenant: Tenant) -> AsyncIterator[Client]:
        key_file = served.tmp_path / f"{tenant.secret_id}.key"
        key_file.write_text(tenant.api_key + "\n")
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "vincent.cli", "mcp", "--url", served.url, "--api-key-file", str(key_file)],
        )
        async with Client(params, read_timeout_seconds=TIMEOUT_S) as c:
            yield c

    return connect


@pytest.fixture(params=["http", "stdio"])
def connect(request: pytest.FixtureRequest, served: Served) -> Connect:
    chosen = _http(served) if request.param == "http" else _stdio(served)
    chosen.transport = request.param  # type: ignore[attr-defined]
    return chosen


async def _call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def _error(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def _stop_loss(served: Served, trigger: object) -> dict[str, Any]:
    return {
        "ruleType": "STOP_LOSS",
        "marketId": served.market.condition_id,
        "tokenId": served.market.yes,
        "triggerPrice": trigger,
        "action": {"type": "SELL_ALL"},
    }


async def test_stop_created_over_mcp_fires_and_its_events_read_back(
    served: Served, connect: Connect
) -> None:
    async with connect(served.alice) as client, asyncio.timeout(TIMEOUT_S):
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        rule = await _call(client, "create_rule", **_stop_loss(served, 0.45))
        assert rule["status"] == "ACTIVE"
        assert rule["secretId"] == served.alice.secret_id
        assert rule["triggerPrice"] == 0.45

        served.exchange.step_price(served.market.yes, "0.40")
        await served.worker.wait_for_executions(1)

        fired = await _call(client, "get_rule", ruleId=rule["id"])
        events = await _call(client, "rule_events", ruleId=rule["id"])
        listed = await _call(client, "list_rules", status="TRIGGERED")
        resource = await client.read_resource(f"rules://{served.alice.secret_id}")

    assert fired["status"] == "TRIGGERED"
    assert fired["triggerTxHash"]
    kinds = [event["eventType"] for event in events["events"]]
    assert kinds[0] == "RULE_TRIGGERED"
    assert {"RULE_CREATED", "RULE_EVALUATED", "ACTION_EXECUTED"} <= set(kinds)
    assert [r["id"] for r in listed["rules"]] == [rule["id"]]
    assert rule["id"] in resource.contents[0].text  # type: ignore[union-attr]


async def test_errors_carry_the_envelope_code_and_message(served: Served, connect: Connect) -> None:
    async with connect(served.alice) as client, asyncio.timeout(TIMEOUT_S):
        missing = await _error(client, "get_rule", ruleId="c-no-such-rule")
        invalid = await _error(client, "create_rule", **_stop_loss(served, 1.5))
        without_type = {k: v for k, v in _stop_loss(served, 0.2).items() if k != "ruleType"}
        missing_field = await _error(client, "create_rule", **without_type)
        wrong_type = await _error(client, "create_rule", **_stop_loss(served, "0.4"))
        no_rule_id = await _error(client, "get_rule")
        rule = await _call(client, "create_rule", **_stop_loss(served, 0.2))
        moved = await _call(client, "update_rule", ruleId=rule["id"], triggerPrice=0.25)
        canceled = await _call(client, "cancel_rule", ruleId=rule["id"])
        again = await _error(client, "update_rule", ruleId=rule["id"], triggerPrice=0.3)

    assert missing == {"code": "NOT_FOUND", "message": "Rule not found"}
    assert invalid["code"] == "VALIDATION_ERROR"
    assert invalid["message"] == "Validation failed"
    assert invalid["details"][0]["path"] == ["triggerPrice"]
    # Arguments are the REST API's to check: its codes, messages and Zod-style details.
    assert missing_field["code"] == wrong_type["code"] == "VALIDATION_ERROR"
    assert missing_field["details"][0]["path"] == ["ruleType"]
    assert wrong_type["details"][0]["path"] == ["triggerPrice"]
    assert "received string" in wrong_type["details"][0]["message"]
    assert no_rule_id["details"] == [
        {
            "expected": "string",
            "code": "invalid_type",
            "path": ["ruleId"],
            "message": "Invalid input: expected string, received undefined",
        }
    ]
    assert moved["triggerPrice"] == 0.25
    assert canceled["status"] == "CANCELED"
    assert again["code"] == "BAD_REQUEST"


async def test_one_agent_cannot_see_another_agents_rules(served: Served, connect: Connect) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        async with connect(served.alice) as alice:
            rule = await _call(alice, "create_rule", **_stop_loss(served, 0.3))
        async with connect(served.bob) as bob:
            listed = await _call(bob, "list_rules")
            seen = await _error(bob, "get_rule", ruleId=rule["id"])
            canceled = await _error(bob, "cancel_rule", ruleId=rule["id"])
            events = await _call(bob, "rule_events")
            try:
                read = await bob.read_resource(f"rules://{served.alice.secret_id}")
                alices_list = read.contents[0].text  # type: ignore[union-attr]
            except Exception as refused:  # the SDK's error for a refused read
                alices_list = f"refused: {refused}"

    assert listed == {"rules": []}
    assert seen["code"] == canceled["code"] == "NOT_FOUND"
    assert events == {"events": []}
    # Over HTTP the server knows the caller's secret and refuses; over stdio it knows only
    # what the REST API returns for Bob's key: his own (empty) list.
    assert rule["id"] not in alices_list
    if connect.transport == "http":  # type: ignore[attr-defined]
        assert alices_list.startswith("refused: ") and "rules://" in alices_list
    else:
        assert json.loads(alices_list) == {"rules": []}


async def test_market_tools_and_a_bet_through_the_skill(served: Served, connect: Connect) -> None:
    async with connect(served.alice) as client, asyncio.timeout(TIMEOUT_S):
        held = await _call(client, "holdings")
        mid = await _call(client, "midpoint", tokenId=served.market.yes)
        book = await _call(client, "orderbook", tokenId=served.market.yes)
        bet = await _call(client, "place_bet", tokenId=served.market.yes, side="SELL", amount=2)
        status = await _call(client, "status")
        positions = await _call(client, "positions")

    assert [h["tokenId"] for h in held["holdings"]] == [served.market.yes]
    assert mid["tokenId"] == served.market.yes and mid["midpoint"] is not None
    assert book["bids"]
    assert bet["status"] == "executed" and bet["transactionLogId"]
    assert status["running"] is True
    assert "positions" in positions


async def test_a_wrong_key_is_refused_over_http(served: Served) -> None:
    wrong = Tenant("x", "ssk_" + "0" * 64, "x", "0x", "0x")
    async with httpx.AsyncClient() as http:
        raw = await http.post(
            f"{served.url}/mcp",
            headers=wrong.headers,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert raw.status_code == 401
    assert raw.json()["error"] == {"code": "UNAUTHORIZED", "message": "Invalid or revoked API key"}

    with pytest.raises(Exception):  # noqa: B017 (the SDK's own refusal, whatever its type)
        async with asyncio.timeout(TIMEOUT_S), _http(served)(wrong) as client:
            await client.list_tools()


async def test_a_wrong_key_is_refused_over_stdio(served: Served) -> None:
    key_file = served.tmp_path / "wrong.key"
    key_file.write_text("ssk_" + "0" * 64)
    command = [sys.executable, "-m", "vincent.cli", "mcp", "--url", served.url]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--api-key-file",
        str(key_file),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT_S):
        stdout, stderr = await process.communicate()

    assert process.returncode == 1
    assert stdout == b""
    assert b"UNAUTHORIZED: Invalid or revoked API key" in stderr
    assert b"ssk_" not in stderr


def test_mcp_requests_count_against_the_request_limit(database_url: str) -> None:
    # 3 a minute per address, all at once: wrong keys count against the address.
    settings = api_settings(database_url, rate_limit_per_address=3, rate_limit_burst_s=60)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with TestClient(create_app(settings, skill_factory=None)) as client:
        answers = [
            client.post("/mcp", json=listing, headers={"Authorization": "Bearer ssk_x"})
            for _ in range(4)
        ]

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[3].json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"


def test_a_tool_call_counts_once_against_its_key(database_url: str) -> None:
    tenant = create_tenant(database_url, "limited")
    # 3 a minute per key, all at once. A tool's REST call inside the server is not counted
    # again: three tool calls pass (each making one REST call), the fourth is refused.
    settings = api_settings(
        database_url, rate_limit_per_key=3, rate_limit_burst_s=60, api_key_cache_ttl_s=0
    )
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "list_rules", "arguments": {}},
    }
    headers = {
        "Authorization": f"Bearer {tenant.api_key}",
        "Accept": "application/json, text/event-stream",
    }
    with TestClient(create_app(settings, skill_factory=None)) as client:
        answers = [client.post("/mcp", json=call, headers=headers) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    for answer in answers[:3]:
        result = answer.json()["result"]
        assert result["isError"] is False, result
        assert result["structuredContent"]["rules"] == []
    assert answers[3].json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert answers[3].headers["retry-after"]
