"""MCP overhead: one agent's sequential calls, REST vs MCP over streamable HTTP vs stdio.

    python -m bench.mcp [--db sqlite|postgres] [--calls 300]

Starts ``vincent serve`` (worker off, request limit off) on a scratch database, creates an
agent with ``POST /api/secrets`` and 20 rules, then times ``--calls`` reads of one rule three
ways: ``GET /rules/{id}`` over HTTP, the ``get_rule`` tool through the SDK's client at
``/mcp``, and the same tool through ``vincent mcp`` on stdio. Prints p50/p95 latency (ms)
and calls per second for each; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp.client.streamable_http import streamable_http_client

from bench.common import free_port, percentile, scratch_database, server_process
from mcp import Client, StdioServerParameters
from vincent.crypto import generate_encryption_key

RULES = "/api/skills/polymarket/rules"


async def _timed(calls: int, call: Callable[[], Awaitable[None]]) -> dict[str, float]:
    for _ in range(10):  # warm-up
        await call()
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(calls):
        begin = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - begin) * 1000)
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "calls_per_s": round(calls / elapsed, 1),
    }


async def _tool_call(client: Client, rule_id: str) -> None:
    result = await client.call_tool("get_rule", {"ruleId": rule_id})
    assert not result.is_error, result.content


async def run(database_url: str, calls: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "VINCENT_ENCRYPTION_KEY": generate_encryption_key(),
        "TRADE_MANAGER_ENABLED": "false",
        "RATE_LIMIT_MAX_REQUESTS": "0",
    }
    async with server_process(env, port), httpx.AsyncClient(base_url=url, timeout=30) as http:
        created = await http.post("/api/secrets", json={"type": "POLYMARKET_WALLET"})
        key = created.json()["data"]["apiKey"]["key"]
        headers = {"Authorization": f"Bearer {key}"}
        rule_ids = []
        for index in range(20):
            body = {
                "ruleType": "STOP_LOSS",
                "marketId": f"0x{index:064x}",
                "tokenId": str(index + 1),
                "triggerPrice": 0.4,
                "action": {"type": "SELL_ALL"},
            }
            answer = await http.post(RULES, json=body, headers=headers)
            rule_ids.append(answer.json()["data"]["id"])
        rule_id = rule_ids[0]

        async def rest() -> None:
            response = await http.get(f"{RULES}/{rule_id}", headers=headers)
            assert response.status_code == 200

        results = {"rest": await _timed(calls, rest)}

        mcp_http = httpx2.AsyncClient(headers=headers, timeout=30)
        transport = streamable_http_client(f"{url}/mcp", http_client=mcp_http)
        async with mcp_http, Client(transport) as client:
            results["mcp_http"] = await _timed(calls, lambda: _tool_call(client, rule_id))

        with tempfile.TemporaryDirectory() as folder:
            key_file = Path(folder) / "key"
            key_file.write_text(key)
            params = StdioServerParameters(
                command=sys.executable,
                args=[
                    "-m",
                    "vincent.cli",
                    "mcp",
                    "--url",
                    url,
                    "--api-key-file",
                    str(key_file),
                ],
            )
            async with Client(params) as client:
                results["mcp_stdio"] = await _timed(calls, lambda: _tool_call(client, rule_id))
    return {"calls": calls, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with scratch_database(args.db) as database_url:
        report = {"db": args.db, **asyncio.run(run(database_url, args.calls))}
    for name in ("rest", "mcp_http", "mcp_stdio"):
        figures = report[name]
        print(
            f"{name:10} p50 {figures['p50_ms']:7.2f} ms  p95 {figures['p95_ms']:7.2f} ms  "
            f"{figures['calls_per_s']:7.1f} calls/s"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
