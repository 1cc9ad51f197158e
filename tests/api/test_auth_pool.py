"""A burst of requests for one key the process has not cached: authentication must not hold
a pooled connection while the route waits for its own, or the pool runs dry and every
request waits out the pool timeout (a nested-pool deadlock).

A real server (uvicorn on a free port, real lifespan) on both engines, and many more
parallel requests, each on its own HTTP connection, than the pool has connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from tests.api.conftest import RULES, api_settings
from tests.helpers import Tenant, make_tenant
from vincent.app import create_app
from vincent.db.base import utcnow
from vincent.db.models import ApiKey, TradeRule
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.enums import TradeRuleStatus, TradeRuleType
from vincent.services.api_keys import ApiKeyCache
from vincent.services.trade_manager.rule_manager import NewRule, create_rule
from vincent.services.trade_manager.types import ActionType, RuleAction

# Well above the pool: PostgreSQL 10 + 10 overflow, SQLite 5 + 10.
BURST = 60
# Far more than a burst needs, below the pool's 30 s checkout timeout: a deadlock shows as
# requests that never answer, not as a slow pass.
TIMEOUT_S = 25.0


@asynccontextmanager
async def _serve(database_url: str) -> AsyncIterator[tuple[str, ApiKeyCache]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(BURST * 2)
    port = sock.getsockname()[1]
    app = create_app(
        api_settings(database_url, trade_manager_max_rules_per_secret=BURST),
        skill_factory=None,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", backlog=BURST * 2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(TIMEOUT_S), httpx.AsyncClient() as http:
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.01)
            assert (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        yield f"http://127.0.0.1:{port}", app.state.vincent.api_key_cache
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _tenant_with_rules(
    sessions: SessionFactory, *, recently_used: bool
) -> tuple[Tenant, list[str]]:
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session, "burst")
        rule_ids = []
        for n in range(BURST):
            new = NewRule(
                rule_type=TradeRuleType.STOP_LOSS,
                market_id="0x" + "ab" * 32,
                token_id=str(1000 + n),
                trigger_price=Decimal("0.40"),
                action=RuleAction(ActionType.SELL_ALL),
            )
            rule = await create_rule(session, tenant.secret_id, new, max_active_rules=BURST)
            rule_ids.append(rule.id)
        if recently_used:
            # Used a moment ago by another process: resolving it here writes nothing.
            used = sa.update(ApiKey).where(ApiKey.id == tenant.api_key_id)
            await session.execute(used.values(last_used_at=utcnow()))
    return tenant, rule_ids


@pytest.mark.parametrize("recently_used", [True, False], ids=["recently-used", "never-used"])
async def test_a_burst_for_an_uncached_key_never_exhausts_the_pool(
    database_url: str, recently_used: bool
) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        tenant, rule_ids = await _tenant_with_rules(sessions, recently_used=recently_used)
        async with _serve(database_url) as (base_url, cache):
            assert len(cache) == 0  # every request of the burst starts as a cache miss
            limits = httpx.Limits(max_connections=BURST * 2, max_keepalive_connections=0)
            async with httpx.AsyncClient(
                base_url=base_url, headers=tenant.headers, limits=limits, timeout=TIMEOUT_S
            ) as http:
                # DELETE: the route writes in its own session, after authentication.
                responses = await asyncio.gather(
                    *(http.delete(f"{RULES}/{rule_id}") for rule_id in rule_ids),
                    return_exceptions=True,
                )
        outcomes = Counter(
            r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in responses
        )
        assert outcomes == {200: BURST}
        async with sessions() as session:
            states = await session.scalars(
                sa.select(TradeRule.status).where(TradeRule.id.in_(rule_ids))
            )
            assert list(states) == [TradeRuleStatus.CANCELED] * BURST
    finally:
        await engine.dispose()
