"""API-only processes announce rule changes; the worker's process hears them (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import make_tenant
from vincent.api.rule_changes import CHANNEL, RuleChangeSubscriber
from vincent.app import create_app
from vincent.db.session import create_engine, create_session_factory
from vincent.services.trade_manager.types import RuleSnapshot

pytestmark = pytest.mark.postgres


class Recorder:
    def __init__(self) -> None:
        self.upserted: list[RuleSnapshot] = []
        self.removed: list[str] = []
        self.changed = asyncio.Event()

    def rule_upserted(self, rule: RuleSnapshot) -> None:
        self.upserted.append(rule)
        self.changed.set()

    def rule_removed(self, rule_id: str, token_id: str) -> None:
        self.removed.append(rule_id)
        self.changed.set()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_changes_made_by_an_api_only_process_reach_the_worker(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        tenant = await make_tenant(session, "notified")
        await session.commit()
    recorder = Recorder()
    subscriber = RuleChangeSubscriber(postgres_url, sessions, recorder)
    await subscriber.start()
    try:
        await asyncio.wait_for(subscriber.listening.wait(), 10)
        app = create_app(api_settings(postgres_url), skill_factory=None)
        with TestClient(app) as client:
            assert app.state.vincent.notify_rule_changes is True
            created = client.post(RULES, json=stop_loss(), headers=tenant.headers)
            rule_id = created.json()["data"]["id"]
            await recorder.until(lambda: len(recorder.upserted) == 1)
            assert recorder.upserted[0].id == rule_id

            patch = {"triggerPrice": 0.35}
            client.patch(f"{RULES}/{rule_id}", json=patch, headers=tenant.headers)
            await recorder.until(lambda: len(recorder.upserted) == 2)
            assert str(recorder.upserted[1].trigger_price) == "0.35"

            assert client.delete(f"{RULES}/{rule_id}", headers=tenant.headers).status_code == 200
            await recorder.until(lambda: recorder.removed == [rule_id])
    finally:
        await subscriber.stop()
        await engine.dispose()


def test_a_process_with_its_own_worker_or_on_sqlite_does_not_notify(database_url: str) -> None:
    app = create_app(api_settings(database_url), skill_factory=None)
    with TestClient(app):
        # SQLite never notifies; PostgreSQL without a worker here does.
        assert app.state.vincent.notify_rule_changes is database_url.startswith("postgres")


async def test_a_create_is_announced_at_commit_and_a_refused_one_never(postgres_url: str) -> None:
    """The create's pg_notify rides in its rule-cap lock statement: it is sent by the
    commit, and a create the cap refuses (rolled back) announces nothing."""
    engine = create_engine(postgres_url)
    async with create_session_factory(engine)() as session:
        tenant = await make_tenant(session, "announced")
        await session.commit()
    await engine.dispose()
    heard: list[str] = []
    arrived = asyncio.Event()

    def on_notification(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)
        arrived.set()

    listener = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await listener.add_listener(CHANNEL, on_notification)
        app = create_app(
            api_settings(postgres_url, trade_manager_max_rules_per_secret=1), skill_factory=None
        )
        with TestClient(app) as client:
            first = client.post(RULES, json=stop_loss(), headers=tenant.headers)
            async with asyncio.timeout(10):
                await arrived.wait()
            assert heard == [first.json()["data"]["id"]]
            refused = client.post(RULES, json=stop_loss(), headers=tenant.headers)
            assert refused.status_code == 400
            # Notifications arrive in commit order: had the refused create announced
            # itself, its id would come before the cancel's.
            arrived.clear()
            rule_id = first.json()["data"]["id"]
            assert client.delete(f"{RULES}/{rule_id}", headers=tenant.headers).status_code == 200
            async with asyncio.timeout(10):
                while len(heard) < 2:
                    arrived.clear()
                    await arrived.wait()
            assert heard == [rule_id, rule_id]
    finally:
        await listener.close()
