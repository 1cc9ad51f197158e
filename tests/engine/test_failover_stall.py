"""A busy leader keeps the lock; a hung one loses it; a killed lock connection deposes at once.

The leader's main loop is blocked by a callback that does not yield (``time.sleep``, or a
loop polling with it): a stall, not a wait. The standby campaigns on a thread with its own
event loop, as another process would, so it runs while the leader's main loop is blocked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.conftest import _pg_execute, empty_postgres
from tests.engine.scripted_skill import ScriptedSkill
from tests.engine.test_failover_leadership import Campaign
from vincent.config import Settings
from vincent.db.session import SessionFactory
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.services.trade_manager.leadership import (
    LOCK_KEY,
    Election,
    Leadership,
    LeadershipConfig,
    asyncpg_dsn,
)
from vincent.services.trade_manager.types import SystemClock

pytestmark = pytest.mark.postgres

TIMEOUT_S = 30.0
_HOLDER = f"""
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND objid = {LOCK_KEY} AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: advisory locks are what this tests."""
    empty_postgres(postgres_url)
    return postgres_url


class Standby:
    """A ``Leadership`` campaigning on its own thread and event loop (worker "B")."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self.opened = threading.Event()
        self.elected = threading.Event()
        self.elections: list[Election] = []
        self.ts_elected_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="standby-B")

    async def __aenter__(self) -> Standby:
        self._thread.start()
        assert await asyncio.to_thread(self.opened.wait, TIMEOUT_S)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, TIMEOUT_S)

    def _run(self) -> None:
        asyncio.run(self._campaign())

    async def _campaign(self) -> None:
        leadership = Leadership(self._database_url, "B", SystemClock())
        try:
            assert await leadership.open() is None
            leadership.start(self._elected, lambda _reason: None)
            self.opened.set()
            await asyncio.to_thread(self._stop.wait)
        finally:
            await leadership.close()

    def _elected(self, election: Election) -> None:
        self.ts_elected_s = time.monotonic()
        self.elections.append(election)
        self.elected.set()


async def stall_main_loop(until: Callable[[], bool], limit_s: float) -> float:
    """Block the main loop in one callback until ``until()`` or ``limit_s``; return how
    long it was blocked."""
    loop = asyncio.get_running_loop()
    blocked = loop.create_future()

    def stall() -> None:
        ts_start_s = time.monotonic()
        while not until() and time.monotonic() - ts_start_s < limit_s:
            time.sleep(0.01)  # never yields to the loop
        blocked.set_result(time.monotonic() - ts_start_s)

    loop.call_soon(stall)
    return float(await blocked)


async def lock_holder(database_url: str) -> int | None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        pid = await conn.fetchval(_HOLDER)
        return None if pid is None else int(pid)
    finally:
        await conn.close()


async def test_a_leader_whose_event_loop_is_busy_for_4_s_keeps_the_lock_and_its_epoch(
    database_url: str,
) -> None:
    a = Campaign(database_url, "A")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            first = await a.open()
            async with Standby(database_url) as b:
                holder = await lock_holder(database_url)
                # Longer than the lock session's idle timeout (3 s) and than a check's
                # interval and timeout together (2 s).
                await stall_main_loop(lambda: False, limit_s=4.0)
                assert not b.elected.is_set()
                assert (a.leadership.is_leader, a.leadership.lead_epoch()) == (True, first.epoch)
                assert await lock_holder(database_url) == holder
    finally:
        await a.leadership.close()
    assert a.depositions == []


async def test_a_leader_whose_event_loop_hangs_past_max_stall_s_hands_over_to_the_standby(
    database_url: str,
) -> None:
    # The server would end the idle session only after 10 s: only the heartbeat can
    # depose the leader within the stall.
    config = LeadershipConfig(max_stall_s=1.0, idle_session_timeout_ms=10_000)
    a = Campaign(database_url, "A", config)
    a_led_when_b_was_elected: list[bool] = []

    def b_elected(b: Standby) -> bool:
        if b.elected.is_set() and not a_led_when_b_was_elected:
            a_led_when_b_was_elected.append(a.leadership.is_leader)
        return b.elected.is_set()

    try:
        first = await a.open()
        async with asyncio.timeout(TIMEOUT_S), Standby(database_url) as b:
            blocked_s = await stall_main_loop(lambda: b_elected(b), limit_s=8.0)
            assert b.elected.is_set(), f"no takeover during a {blocked_s:.1f} s stall"
            await a.wait_for(lambda: a.depositions)
            # While B leads, A does not lead again (once B has left, A may: it is alone).
            a_elections_while_b_led = list(a.elections)
    finally:
        await a.leadership.close()

    print(f"\nstandby elected {blocked_s:.2f} s into the stall (max_stall_s 1.0)")
    assert a_led_when_b_was_elected == [False]
    assert a.depositions[0].startswith("event loop stalled for")
    assert (b.elections[0].epoch, b.elections[0].previous_leader_id) == (first.epoch + 1, "A")
    assert a_elections_while_b_led == []


async def test_a_lock_connection_killed_during_a_stall_deposes_the_leader_at_once(
    database_url: str,
) -> None:
    a = Campaign(database_url, "A")
    ts_killed_s: list[float] = []

    def kill_lock_session() -> None:
        asyncio.run(
            _pg_execute(
                database_url, f"SELECT pg_terminate_backend(pid) FROM ({_HOLDER}) AS holder"
            )
        )
        ts_killed_s.append(time.monotonic())

    def deposed() -> bool:
        if not ts_killed_s:  # the first call of the stall: kill from another thread
            killer = threading.Thread(target=kill_lock_session)
            killer.start()
            killer.join()
        return not a.leadership.is_leader

    try:
        first = await a.open()
        async with asyncio.timeout(TIMEOUT_S), Standby(database_url) as b:
            blocked_s = await stall_main_loop(deposed, limit_s=3.0)
            ts_noticed_s = time.monotonic()
            assert not a.leadership.is_leader, f"still leader after a {blocked_s:.1f} s stall"
            await a.wait_for(lambda: a.depositions)
            assert await asyncio.to_thread(b.elected.wait, TIMEOUT_S)
    finally:
        await a.leadership.close()

    print(f"\ndeposed {ts_noticed_s - ts_killed_s[0]:.3f} s after the kill, main loop blocked")
    assert ts_noticed_s - ts_killed_s[0] < 1.0
    assert a.depositions == ["lock connection closed"]
    assert b.elections[0].epoch == first.epoch + 1
    assert b.ts_elected_s >= ts_killed_s[0]


async def test_a_deposed_leader_alone_campaigns_again_without_the_rejoin_delay(
    database_url: str,
) -> None:
    config = LeadershipConfig(rejoin_delay_s=10.0)
    a = Campaign(database_url, "A", config)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            first = await a.open()
            ts_killed_s = time.monotonic()
            await _pg_execute(
                database_url, f"SELECT pg_terminate_backend(pid) FROM ({_HOLDER}) AS holder"
            )
            await a.wait_for(lambda: a.elections)
            rejoined_s = time.monotonic() - ts_killed_s
    finally:
        await a.leadership.close()

    print(f"\nleading again {rejoined_s:.3f} s after its lock connection was killed")
    assert a.depositions == ["lock connection closed"]
    assert a.elections[0].epoch == first.epoch + 1
    assert rejoined_s < config.rejoin_delay_s / 2


async def test_a_whole_worker_hung_past_its_configured_stall_limit_hands_over_to_the_standby(
    database_url: str, session_factory: SessionFactory, skill: ScriptedSkill
) -> None:
    # TRADE_MANAGER_LEADER_MAX_STALL_S reaches a worker's leadership: a worker whose whole
    # event loop is blocked gives the lock up after 1 s. With the default (10 s) the
    # standby would not be elected within the 8 s the loop is held.
    settings = Settings(
        database_url=database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
        trade_manager_leader_max_stall_s=1.0,
    )
    worker = TradeMonitoringWorker(settings, session_factory, skill)
    async with worker:
        assert worker.status().leader is True
        async with asyncio.timeout(TIMEOUT_S), Standby(database_url) as b:
            blocked_s = await stall_main_loop(b.elected.is_set, limit_s=8.0)
            assert b.elected.is_set(), f"no takeover during a {blocked_s:.1f} s stall"
    print(f"\nstandby elected {blocked_s:.2f} s into the worker's stall (limit 1.0 s)")
    # The last heartbeat came up to one interval (0.5 s) before the stall began.
    assert 0.5 <= blocked_s < 8.0
    assert b.elections[0].previous_leader_id == worker.worker_id
