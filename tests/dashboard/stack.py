"""A whole Vincent on loopback for browser tests: local exchange + server + worker, in a thread.

The exchange and the server run on their own event loop in a background thread, so a test
drives Chromium with Playwright's sync API from the main thread while everything else runs
for real. Tests talk to the server over HTTP (the agent API), to the exchange over its
control API, and to the database through ``call`` (tenants, policies).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import httpx
import uvicorn
from pydantic import SecretStr

from tests.helpers import TEST_ENCRYPTION_KEY, Tenant, make_tenant
from tests.skill.conftest import MarketIds, new_market_ids, skill_settings
from vincent.app import create_app
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.sim import LocalExchange

T = TypeVar("T")
ADMIN_TOKEN = "owner-dashboard-token"
RULES = "/api/skills/polymarket/rules"
START_TIMEOUT_S = 30.0


class LiveStack:
    """Start with ``start()``, stop with ``stop()``; URLs and helpers in between."""

    def __init__(self, database_url: str, **settings: Any) -> None:
        self.database_url = database_url
        self._overrides = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._main: Future[None] | None = None
        self._ready: Future[None] = Future()
        self.exchange: LocalExchange
        self.session_factory: SessionFactory
        self.base_url = ""
        self.control_url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LiveStack:
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        self._ready.result(timeout=START_TIMEOUT_S)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._main is not None:
            self._main.result(timeout=START_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_S)
        self._loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with LocalExchange.start() as exchange:
                self.exchange = exchange
                self.control_url = exchange.control_url
                engine = create_engine(self.database_url)
                self.session_factory = create_session_factory(engine)
                settings = skill_settings(exchange, self.database_url, timeout_s=3.0).model_copy(
                    update={
                        "vincent_encryption_key": SecretStr(TEST_ENCRYPTION_KEY),
                        "vincent_admin_token": SecretStr(ADMIN_TOKEN),
                        "trade_manager_poll_interval_s": 1.0,
                        "rate_limit_max_requests": 100_000,
                        **self._overrides,
                    }
                )
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
                config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
                server = uvicorn.Server(config)
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                async with asyncio.timeout(START_TIMEOUT_S):
                    while not server.started:
                        if serving.done():
                            await serving
                        await asyncio.sleep(0.01)
                self.base_url = f"http://127.0.0.1:{port}"
                self._ready.set_result(None)
                await self._stop.wait()
                server.should_exit = True
                await serving
                await engine.dispose()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            raise

    def call(self, work: Callable[[], Awaitable[T]], timeout_s: float = 15.0) -> T:
        """Run a coroutine on the stack's loop (exchange and database live there)."""
        return asyncio.run_coroutine_threadsafe(_call(work), self._loop).result(timeout_s)

    # ------------------------------------------------------------------ helpers

    def tenant(self, name: str) -> Tenant:
        async def create() -> Tenant:
            async with self.session_factory() as session:
                tenant = await make_tenant(session, name)
                await session.commit()
                return tenant

        return self.call(create)

    def market(self, best_bid: str = "0.50") -> MarketIds:
        ids = new_market_ids()
        slug = f"will-it-rain-{ids.yes[-4:]}"

        async def create() -> None:
            self.exchange.create_market(
                ids.condition_id, [ids.yes, ids.no], title="Will it rain?", slug=slug
            )
            self.exchange.step_price(ids.yes, best_bid)
            self.exchange.step_price(ids.no, "0.40")

        self.call(create)
        return ids

    def credit(self, tenant: Tenant, token_id: str, shares: str) -> None:
        async def credit() -> None:
            self.exchange.credit(tenant.address, token_id=token_id, shares=shares, avg_price="0.5")

        self.call(credit)

    def move_price(self, token_id: str, best_bid: str) -> None:
        """Move the price through the exchange's HTTP control API, as a person would."""
        response = httpx.post(
            f"{self.control_url}/prices/{token_id}", json={"best_bid": best_bid}, timeout=10
        )
        response.raise_for_status()

    def order_count(self, token_id: str) -> int:
        async def count() -> int:
            return sum(1 for r in self.exchange.order_receipts() if r.token_id == token_id)

        return self.call(count)

    def api(self, tenant: Tenant) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=tenant.headers, timeout=15)

    def create_rule(
        self, tenant: Tenant, ids: MarketIds, rule_type: str, trigger: float, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "ruleType": rule_type,
            "marketId": ids.condition_id,
            "tokenId": ids.yes,
            "triggerPrice": trigger,
            "action": {"type": "SELL_ALL"},
            **extra,
        }
        with self.api(tenant) as client:
            response = client.post(RULES, json=body)
        assert response.status_code == 201, response.text
        rule: dict[str, Any] = response.json()["data"]
        return rule

    def rule(self, tenant: Tenant, rule_id: str) -> dict[str, Any]:
        with self.api(tenant) as client:
            response = client.get(f"{RULES}/{rule_id}")
        assert response.status_code == 200, response.text
        rule: dict[str, Any] = response.json()["data"]
        return rule


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
