"""Leadership among monitoring workers on one PostgreSQL database: one leader, hot standbys.

The leader holds a session-level advisory lock on a dedicated connection whose TCP keepalives
and timeouts make the server end it (and so release the lock) within seconds of the leader
dying or being cut off. It checks that connection every ``check_interval_s`` and steps down
the moment the check fails or the connection closes, sooner than the server can release the
lock to anyone else. Each takeover bumps an epoch in ``worker_leadership``; every claim
requires it in its own UPDATE (``lead_epoch`` + ``oco.claim_rule``), so a deposed leader
can never claim.

The lock connection and its guard (``leader_lock.LeaderLock``) live on a thread of their
own with their own event loop (``loop_thread.LoopThread``): a worker whose main loop is
busy for seconds (a burst of fires, a large load) is a busy leader, not a dead one, and
keeps the lock — neither a check nor the session's idle timeout waits for the main loop.
A main loop that is truly hung must still lose it: the main loop beats a heartbeat every
``heartbeat_interval_s`` and the guard releases the lock when no beat came for
``max_stall_s``. ``is_leader`` / ``lead_epoch`` stay plain attribute reads; elections
and depositions reach the main loop through ``call_soon_threadsafe``, in order.
Owns the lock connection only: it never claims, sells or reconciles anything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable

from sqlalchemy.engine import make_url

from vincent.services.trade_manager.leader_lock import (
    LOCK_KEY,
    RELEASED_CHANNEL,
    Election,
    LeaderLock,
    LeadershipConfig,
)
from vincent.services.trade_manager.loop_thread import LoopThread
from vincent.services.trade_manager.types import Clock

__all__ = [
    "LOCK_KEY",
    "RELEASED_CHANNEL",
    "Election",
    "Leadership",
    "LeadershipConfig",
    "asyncpg_dsn",
    "new_worker_id",
]


def new_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class Leadership:
    """Campaigns for the advisory lock and guards it while held, on the lock thread.

    ``open`` (on the main loop) starts the lock thread and the heartbeat, makes one
    attempt (the election when won), then keeps campaigning (standby) or guarding the
    lock (leader) there. ``start`` hands over the callbacks; whatever happened since
    ``open`` is delivered then, in order. ``close`` releases the lock (and tells the
    standbys) if held, and ends the thread.
    """

    def __init__(
        self,
        database_url: str,
        worker_id: str,
        clock: Clock,
        config: LeadershipConfig | None = None,
    ) -> None:
        self.worker_id = worker_id
        self._config = config or LeadershipConfig()
        self._lock = LeaderLock(
            asyncpg_dsn(database_url),
            worker_id,
            clock,
            self._config,
            on_elected=self._deliver_elected,
            on_deposed=self._deliver_deposed,
            since_beat_s=self._since_beat_s,
        )
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._thread: LoopThread | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        # Real time, not ``clock``: it measures whether the main loop runs at all.
        self._ts_beat_s = time.monotonic()
        self._started = False
        self._closed = False
        self._undelivered: list[Callable[[], None]] = []
        self._on_elected: Callable[[Election], None] = lambda _e: None
        self._on_deposed: Callable[[str], None] = lambda _r: None

    @property
    def is_leader(self) -> bool:
        """Holding the lock on a connection not known to be lost."""
        return self._lock.epoch is not None

    @property
    def epoch(self) -> int | None:
        return self._lock.epoch

    def lead_epoch(self) -> int | None:
        """The epoch this worker believes it leads under (None: it does not lead). A claim
        checks it against the database in its own UPDATE (``oco.claim_rule``)."""
        return self._lock.epoch

    async def open(self) -> Election | None:
        """Start the lock thread, try the lock once (the election when won), then keep
        campaigning or guarding there."""
        if self._thread is not None or self._closed:
            raise RuntimeError("leadership already opened")
        self._main_loop = asyncio.get_running_loop()
        self._beat()
        self._thread = LoopThread("vincent-worker-leadership")
        election = await self._thread.call(self._lock.attempt())
        self._thread.submit(self._lock.run())
        return election

    def start(
        self, on_elected: Callable[[Election], None], on_deposed: Callable[[str], None]
    ) -> None:
        """Deliver elections and depositions to these callbacks from now on (and those
        since ``open``), on the main loop."""
        if self._thread is None:
            raise RuntimeError("leadership not opened")
        if self._started:
            raise RuntimeError("leadership already started")
        self._on_elected, self._on_deposed = on_elected, on_deposed
        self._started = True
        undelivered, self._undelivered = self._undelivered, []
        for deliver in undelivered:
            deliver()

    async def close(self) -> None:
        """Stop campaigning; release the lock and notify the standbys if held."""
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await thread.call(self._lock.shutdown())
        finally:
            await thread.stop()

    def _beat(self) -> None:
        """The main loop's heartbeat: proof for the lock thread that the main loop runs."""
        assert self._main_loop is not None
        self._ts_beat_s = time.monotonic()
        self._heartbeat = self._main_loop.call_later(self._config.heartbeat_interval_s, self._beat)

    def _since_beat_s(self) -> float:
        return time.monotonic() - self._ts_beat_s

    # ---------------------------------------------------- from the lock thread to the main loop

    def _deliver_elected(self, election: Election) -> None:
        self._deliver(lambda: self._on_elected(election))

    def _deliver_deposed(self, reason: str) -> None:
        self._deliver(lambda: self._on_deposed(reason))

    def _deliver(self, callback: Callable[[], None]) -> None:
        assert self._main_loop is not None
        with contextlib.suppress(RuntimeError):  # the main loop has closed: nobody listens
            self._main_loop.call_soon_threadsafe(self._run_callback, callback)

    def _run_callback(self, callback: Callable[[], None]) -> None:
        if self._closed:
            return
        if not self._started:
            self._undelivered.append(callback)
            return
        callback()
