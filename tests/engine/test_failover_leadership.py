"""Leadership on PostgreSQL in one process: one lock holder, the epoch fence, handover."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.conftest import _pg_execute, empty_postgres
from vincent.db.leader_epoch import current_epoch_for_share
from vincent.db.session import SessionFactory
from vincent.services.trade_manager.leadership import (
    LOCK_KEY,
    Election,
    Leadership,
    LeadershipConfig,
)
from vincent.services.trade_manager.types import SystemClock

pytestmark = pytest.mark.postgres

TIMEOUT_S = 20.0


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: advisory locks are what this tests."""
    empty_postgres(postgres_url)
    return postgres_url


class Campaign:
    """A ``Leadership`` and what its callbacks reported."""

    def __init__(
        self, database_url: str, name: str, config: LeadershipConfig | None = None
    ) -> None:
        self.leadership = Leadership(database_url, name, SystemClock(), config)
        self.elections: list[Election] = []
        self.depositions: list[str] = []
        self.changed = asyncio.Event()

    def start(self) -> None:
        self.leadership.start(self._elected, self._deposed)

    async def open(self) -> Election:
        """Win the lock (nobody else holds it), then guard it."""
        election = await self.leadership.open()
        assert election is not None
        self.start()
        return election

    def _elected(self, election: Election) -> None:
        self.elections.append(election)
        self.changed.set()

    def _deposed(self, reason: str) -> None:
        self.depositions.append(reason)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    async def fence(self, session_factory: SessionFactory) -> bool:
        async with session_factory() as session, session.begin():
            # What a claim's UPDATE requires: the epoch it believes in is the current one.
            epoch = self.leadership.lead_epoch()
            return epoch is not None and await current_epoch_for_share(session) == epoch


async def test_one_leader_and_a_killed_lock_connection_hands_over_with_a_new_epoch(
    database_url: str, session_factory: SessionFactory
) -> None:
    a, b = Campaign(database_url, "A"), Campaign(database_url, "B")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            first = await a.leadership.open()
            assert first is not None and first.previous_leader_id is None
            assert await b.leadership.open() is None
            a.start()
            b.start()
            assert (await a.fence(session_factory), await b.fence(session_factory)) == (
                True,
                False,
            )

            await _pg_execute(
                database_url,
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                f"WHERE locktype = 'advisory' AND objid = {LOCK_KEY} AND granted "
                # This test's database only: other tests on the server hold the same key.
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            await a.wait_for(lambda: a.depositions)
            assert a.leadership.is_leader is False
            await b.wait_for(lambda: b.elections)
    finally:
        await a.leadership.close()
        await b.leadership.close()

    second = b.elections[0]
    assert (second.epoch, second.previous_leader_id) == (first.epoch + 1, "A")
    assert a.depositions == ["lock connection closed"]
    assert await a.fence(session_factory) is False


async def test_a_leader_that_closes_releases_at_once_to_a_notified_standby(
    database_url: str, session_factory: SessionFactory
) -> None:
    a, b = Campaign(database_url, "A"), Campaign(database_url, "B")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            assert await a.leadership.open() is not None
            assert await b.leadership.open() is None
            b.start()
            await a.leadership.close()
            await b.wait_for(lambda: b.elections)
            assert await b.fence(session_factory) is True
    finally:
        await a.leadership.close()
        await b.leadership.close()
    assert a.depositions == []
