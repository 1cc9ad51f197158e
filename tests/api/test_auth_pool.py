"""A burst of requests for one key the process has not cached: authentication must not hold
a pooled connection while the route waits for its own, or the pool runs dry and every
request waits out the pool timeout (a nested-pool deadlock). Nor may it hold a database
turn (``API_DB_CONCURRENCY``) while the route waits for another.

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
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.api.conftest import RULES, api_settings
from tests.helpers import Tenant, make_tenant
from vincent.api import state as state_module
from vincent.api.state import AppState, gated_session
from vincent.app import create_app
from vincent.db.base import utcnow
from vincent.db.models import ApiKey, TradeRule
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.enums import TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.rule_manager import NewRule, create_rule
from vincent.services.trade_manager.types import ActionType, RuleAction

# Well above the pool: 10 + 10 overflow on both engines.
BURST = 60
# Far more than a burst needs, below the pool's 30 s checkout timeout: a deadlock shows as
# requests that never answer, not as a slow pass.
TIMEOUT_S = 25.0


@asynccontextmanager
async def _serve(database_url: str, **overrides: Any) -> AsyncIterator[tuple[str, AppState]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(BURST * 2)
    port = sock.getsockname()[1]
    app = create_app(
        api_settings(database_url, trade_manager_max_rules_per_secret=BURST, **overrides),
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
        yield f"http://127.0.0.1:{port}", app.state.vincent
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


@pytest.mark.parametrize(
    ("recently_used", "overrides"),
    [
        (True, {}),
        (False, {}),
        # One turn, and every request looks its key up (no cache): a lookup that kept its
        # turn while the route waited for one would leave every request waiting.
        (False, {"api_db_concurrency": 1, "api_key_cache_ttl_s": 0}),
    ],
    ids=["recently-used", "never-used", "one-database-turn-no-key-cache"],
)
async def test_a_burst_for_an_uncached_key_never_exhausts_the_pool(
    database_url: str, recently_used: bool, overrides: dict[str, Any]
) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        tenant, rule_ids = await _tenant_with_rules(sessions, recently_used=recently_used)
        async with _serve(database_url, **overrides) as (base_url, state):
            assert len(state.api_key_cache) == 0  # every request starts as a cache miss
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


class _RecordingTurns(asyncio.Semaphore):
    """The process's database turns, telling when a request asks for one."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.asked = asyncio.Event()

    async def acquire(self) -> bool:
        self.asked.set()
        return await super().acquire()


async def test_a_request_waits_while_every_database_turn_is_taken(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        tenant, _rule_ids = await _tenant_with_rules(sessions, recently_used=True)
        async with _serve(database_url, api_db_concurrency=1) as (base_url, state):
            assert state.db_turns is not None
            turns = state.db_turns = _RecordingTurns(1)
            await turns.acquire()  # the one turn, taken
            turns.asked.clear()
            async with httpx.AsyncClient(
                base_url=base_url, headers=tenant.headers, timeout=TIMEOUT_S
            ) as http:
                answer = asyncio.create_task(http.get(RULES))
                async with asyncio.timeout(TIMEOUT_S):
                    await turns.asked.wait()  # the request has asked for a turn ...
                assert not answer.done()  # ... and waits for it
                turns.release()
                response = await answer
        assert response.status_code == 200
        assert len(response.json()["data"]["rules"]) == BURST
    finally:
        await engine.dispose()


async def test_the_pool_keeps_a_connection_per_database_turn(database_url: str) -> None:
    async with _serve(database_url) as (_base_url, state):
        engine = state.session_factory.kw["bind"]
        assert engine.pool.size() == 10  # API_DB_CONCURRENCY 8 + 2, never below the default
    async with _serve(database_url, api_db_concurrency=30) as (_base_url, state):
        engine = state.session_factory.kw["bind"]
        assert engine.pool.size() == 32


async def test_a_database_turn_not_free_in_time_fails_as_a_pool_wait_did(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "DB_TURN_TIMEOUT_S", 0.05)
    async with _serve(database_url, api_db_concurrency=1) as (_base_url, state):
        assert state.db_turns is not None
        await state.db_turns.acquire()
        with pytest.raises(PoolTimeout, match="API_DB_CONCURRENCY=1"):
            async with gated_session(state, state.session_factory):
                pass
        state.db_turns.release()
        async with gated_session(state, state.session_factory) as session:
            assert (await session.execute(sa.text("SELECT 1"))).scalar() == 1
        assert not state.db_turns.locked()  # the turn came back with the session
