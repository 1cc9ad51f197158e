"""``vincent demo``: the whole system offline in one read.

Starts the local exchange and the server (on loopback, scratch SQLite database), creates a
tenant holding 100 shares, brackets the position with a stop-loss and a take-profit over
the real HTTP API (``POST /rules/bracket``: one cancels the other), moves the price down on
the exchange, and prints what the trade manager did: the rule that fired, the sell the
exchange received, the rule's events, and the take-profit canceled by the stop's fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account import Account
from pydantic import SecretStr

from vincent.app import create_app
from vincent.config import Settings
from vincent.crypto import KeyBox, generate_encryption_key
from vincent.db.migrate import upgrade_async
from vincent.db.session import create_engine, create_session_factory
from vincent.services.secrets import create_secret
from vincent.sim import LocalExchange

CONDITION_ID = "0x" + "d3" * 32
YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
RULES = "/api/skills/polymarket/rules"

Say = Callable[[str], None]


@contextlib.asynccontextmanager
async def _serve(settings: Settings) -> AsyncIterator[str]:
    """Run the API (with its worker) on a free loopback port; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _tenant(database_url: str, keybox: KeyBox) -> tuple[str, str, str]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            created = await create_secret(
                session, keybox, name="demo-agent", private_key=Account.create().key.hex()
            )
            await session.commit()
    finally:
        await engine.dispose()
    return created.secret.id, created.secret.funder_address, created.api_key.key


def _settled(rule: dict[str, Any]) -> bool:
    """Sold (TRIGGERED with an order id), or stopped for good (FAILED, waiting for approval)."""
    if rule["status"] == "TRIGGERED":
        return rule["triggerTxHash"] is not None
    return rule["status"] in {"FAILED", "PENDING_APPROVAL", "CANCELED"}


async def _wait_until_settled(
    client: httpx.AsyncClient, rule_id: str, timeout_s: float
) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            rule: dict[str, Any] = (await client.get(f"{RULES}/{rule_id}")).json()["data"]
            if _settled(rule):
                return rule
            await asyncio.sleep(0.05)


async def run_demo(say: Say = print, *, watch_s: float = 0.0) -> dict[str, Any]:
    """Run the scenario; return the final figures (used by the test of the demo).

    ``watch_s``: pause that long before the price falls and again at the end, so the
    scenario can be watched on the dashboard.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vincent-demo-") as folder:
        database_url = f"sqlite+aiosqlite:///{Path(folder) / 'demo.db'}"
        await upgrade_async(database_url)
        encryption_key = generate_encryption_key()
        async with LocalExchange.start() as exchange:
            say(f"1. Local Polymarket exchange (CLOB V2) on {exchange.clob_url}")
            exchange.create_market(
                CONDITION_ID,
                (YES_TOKEN, NO_TOKEN),
                title="Will the demo stop-loss fire?",
                slug="will-the-demo-stop-loss-fire",
            )
            exchange.step_price(YES_TOKEN, "0.60", size=500)
            say("   market 'Will the demo stop-loss fire?': YES bid 0.60 / ask 0.61")

            keybox = KeyBox(encryption_key)
            secret_id, wallet, api_key = await _tenant(database_url, keybox)
            exchange.credit(wallet, collateral=0, token_id=YES_TOKEN, shares=100, avg_price="0.55")
            say(f"2. Tenant {secret_id} (wallet {wallet}) holds 100 YES shares bought at 0.55")

            settings = Settings(
                database_url=database_url,
                vincent_encryption_key=SecretStr(encryption_key),
                polymarket_clob_url=exchange.clob_url,
                polymarket_ws_url=exchange.ws_url,
                polymarket_data_api_url=exchange.data_api_url,
                polymarket_gamma_url=exchange.gamma_url,
                polymarket_relayer_url=exchange.relayer_url,
                trade_manager_poll_interval_s=2.0,
            )
            async with (
                _serve(settings) as base_url,
                httpx.AsyncClient(
                    base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
                ) as client,
            ):
                say(f"3. Vincent server with the monitoring worker on {base_url}")
                say(f"   dashboard: {base_url}/dashboard (sign in with the demo key {api_key})")
                body = {
                    "marketId": CONDITION_ID,
                    "tokenId": YES_TOKEN,
                    "stopLoss": {"triggerPrice": 0.5},
                    "takeProfit": {"triggerPrice": 0.8},
                    "action": {"type": "SELL_ALL"},
                }
                response = await client.post(f"{RULES}/bracket", json=body)
                created = response.json()["data"]
                say(
                    f"   POST {RULES}/bracket -> {response.status_code}, "
                    f"ocoGroupId {created['ocoGroupId']}"
                )
                bracket = {}
                for rule in created["rules"]:
                    bracket[rule["ruleType"]] = rule
                    say(
                        f"   {rule['ruleType']} at {rule['triggerPrice']}: {rule['status']} "
                        f"(id {rule['id']}, slug {rule['marketSlug']})"
                    )

                if watch_s > 0:
                    say(f"   (the price falls in {watch_s:.0f} s: watch it on the dashboard)")
                    await asyncio.sleep(watch_s)
                say("4. The price falls on the exchange: bid 0.58, 0.55, 0.52, 0.49, 0.47")
                await exchange.start_path(
                    YES_TOKEN, ["0.58", "0.55", "0.52", "0.49", "0.47"], interval_s=0.05
                )
                stop = await _wait_until_settled(client, bracket["STOP_LOSS"]["id"], 20)
                say(
                    f"5. Stop-loss {stop['status']}: order {stop['triggerTxHash']} "
                    f"at {stop['triggeredAt']}"
                )
                receipts = exchange.order_receipts()
                for receipt in receipts:
                    say(
                        f"   the exchange received a signed {receipt.side} of {receipt.size} "
                        f"shares ({receipt.order_type}), order {receipt.order_id}"
                    )
                balances = exchange.balances(wallet)
                say(
                    f"   wallet now: {balances['shares'].get(YES_TOKEN, '0')} YES shares, "
                    f"{balances['collateral']} pUSD"
                )
                events = await client.get(RULES + "/events", params={"ruleId": stop["id"]})
                say("6. Events of the stop-loss (oldest first):")
                for event in reversed(events.json()["data"]["events"]):
                    say(f"   {event['createdAt']} {event['eventType']:<22} {event['data']}")
                take = bracket["TAKE_PROFIT"]["id"]
                canceled = await _wait_until_settled(client, take, 20)
                events = await client.get(RULES + "/events", params={"ruleId": take})
                reason = next(
                    e["data"]
                    for e in events.json()["data"]["events"]
                    if e["eventType"] == "RULE_CANCELED"
                )
                say(
                    f"7. The stop-loss's fill canceled the take-profit (one cancels the other): "
                    f"{canceled['status']} {reason}"
                )
                status = (await client.get(RULES + "/status")).json()["data"]
                say(f"   worker status: {status}")
                if watch_s > 0:
                    say(f"   (the server stops in {watch_s:.0f} s)")
                    await asyncio.sleep(watch_s)
    elapsed = time.monotonic() - started
    say(f"Done in {elapsed:.1f} s.")
    return {
        "stop_status": stop["status"],
        "stop_id": stop["id"],
        "order_id": stop["triggerTxHash"],
        "orders_received": len(receipts),
        "shares_left": balances["shares"].get(YES_TOKEN, "0"),
        "take_profit_status": canceled["status"],
        "take_profit_canceled_by": reason.get("firedRuleId"),
        "market_slug": bracket["STOP_LOSS"]["marketSlug"],
        "elapsed_s": elapsed,
    }
