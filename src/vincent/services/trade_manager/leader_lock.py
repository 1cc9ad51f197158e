"""The leadership's lock session: the advisory lock's connection, campaign and guard.

Runs only on the lock's own thread (``leadership.Leadership`` owns it): the asyncpg
connection is created and used there and nowhere else. Campaigns for the lock (standby) or
checks it every ``check_interval_s`` (leader), and steps down the moment the check fails,
the connection closes, or the main loop's heartbeat is older than ``max_stall_s``. Reports
elections and depositions through the callbacks it is given (which must be thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from vincent.db.leader_epoch import LEADERSHIP_ROW
from vincent.services.trade_manager.types import Clock

logger = logging.getLogger(__name__)

# 'VINC': below 2**32, so pg_locks shows it as objid with classid 0. Advisory locks are per
# database, so databases on one server never compete.
LOCK_KEY = 0x56494E43
# A leader releasing the lock on purpose says so here: standbys try at once, not in a second.
RELEASED_CHANNEL = "vincent_worker_leader_released"
BUMP_TIMEOUT_S = 10.0
# Every worker's lock session is named so: a deposed leader counts the others.
APPLICATION_NAME = "vincent-worker-leadership"

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
_HOLDS_LOCK = f"""
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 0 AND objid = {LOCK_KEY} AND objsubid = 1
      AND pid = pg_backend_pid() AND granted
)
"""
_RELEASE = "SELECT pg_advisory_unlock($1), pg_notify($2, $3)"
_OTHER_WORKERS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
"""
_BUMP_EPOCH = """
WITH previous AS (SELECT leader_id FROM worker_leadership WHERE id = $1)
INSERT INTO worker_leadership (id, epoch, leader_id, acquired_at) VALUES ($1, 1, $2, now())
ON CONFLICT (id) DO UPDATE
    SET epoch = worker_leadership.epoch + 1, leader_id = $2, acquired_at = now()
RETURNING epoch, (SELECT leader_id FROM previous)
"""


@dataclass(frozen=True, slots=True)
class LeadershipConfig:
    """Timing of leader election (seconds unless the name says ``_ms``).

    The leader notices a lost connection within ``check_interval_s + check_timeout_s``
    (2 s); the server ends a silent session after ``idle_session_timeout_ms`` (3 s) or
    unanswered data after ``tcp_user_timeout_ms`` (3 s), and a dead peer after keepalives
    (1 s idle + 2 probes 1 s apart): the old leader has stopped before the lock is free.
    The checks run on the lock's own thread, so a main loop busy for seconds delays none
    of them. Only a main loop that has not run its heartbeat (due every
    ``heartbeat_interval_s``, 0.5 s) for ``max_stall_s`` (10 s) gives the lock up: far
    above the 1 to 3 s stalls seen under load, short enough that a hung process does not
    leave the rules unguarded for long. Standbys try every ``try_interval_s`` (1 s) and
    at once on a release notification; a deposed leader waits ``rejoin_delay_s`` (3 s)
    first when other workers campaign, and not at all when it is alone.
    """

    try_interval_s: float = 1.0
    # A deposed leader waits this long before campaigning again, if others campaign.
    rejoin_delay_s: float = 3.0
    check_interval_s: float = 0.5
    check_timeout_s: float = 1.5
    heartbeat_interval_s: float = 0.5
    max_stall_s: float = 10.0
    connect_timeout_s: float = 3.0
    keepalives_idle_s: int = 1
    keepalives_interval_s: int = 1
    keepalives_count: int = 2
    tcp_user_timeout_ms: int = 3000
    idle_session_timeout_ms: int = 3000

    def __post_init__(self) -> None:
        if self.max_stall_s <= self.heartbeat_interval_s:
            raise ValueError(
                "max_stall_s must be above heartbeat_interval_s "
                f"({self.heartbeat_interval_s} s), was {self.max_stall_s}"
            )

    def server_settings(self, *, basic: bool = False) -> dict[str, str]:
        """The lock session's settings; ``basic``: only those every supported server knows
        (``idle_session_timeout`` needs PostgreSQL 14)."""
        settings = {
            "application_name": APPLICATION_NAME,
            "tcp_keepalives_idle": str(self.keepalives_idle_s),
            "tcp_keepalives_interval": str(self.keepalives_interval_s),
            "tcp_keepalives_count": str(self.keepalives_count),
            "tcp_user_timeout": str(self.tcp_user_timeout_ms),
        }
        if not basic:
            settings["idle_session_timeout"] = str(self.idle_session_timeout_ms)
        return settings


@dataclass(frozen=True, slots=True)
class Election:
    """This worker just became leader."""

    epoch: int
    previous_leader_id: str | None
    ts_acquired_s: float  # monotonic, when the lock was taken


class LeaderLock:
    """The lock session of one worker; every method runs on the lock thread.

    ``epoch`` is written here and read from the main loop (one attribute write: the main
    loop sees the old or the new value, never a torn one). ``since_beat_s`` tells how
    long ago the main loop last beat.
    """

    def __init__(
        self,
        dsn: str,
        worker_id: str,
        clock: Clock,
        config: LeadershipConfig,
        *,
        on_elected: Callable[[Election], None],
        on_deposed: Callable[[str], None],
        since_beat_s: Callable[[], float],
    ) -> None:
        self._dsn = dsn
        self.worker_id = worker_id
        self._clock = clock
        self._config = config
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._since_beat_s = since_beat_s
        self.epoch: int | None = None
        self._conn: Any = None
        self._basic_settings = False
        self._wake = asyncio.Event()
        self._deposed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._try_now = False  # a deposed leader alone campaigns without waiting

    async def run(self) -> None:
        """Campaign or guard until cancelled."""
        self._runner = asyncio.current_task()
        while True:
            try:
                await self._step()
            except Exception:
                # A bug here must not leave a leader unguarded: step down, keep campaigning.
                logger.exception("worker.leadership_loop_failed")
                if self.epoch is not None:
                    self._depose("leadership loop failed")
                await asyncio.sleep(self._config.rejoin_delay_s)

    async def shutdown(self) -> None:
        """Stop ``run``; release the lock and notify the standbys if held."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait({self._runner})
        conn, was_leader = self._conn, self.epoch is not None
        self.epoch = None
        self._conn = None
        if conn is None:
            return
        try:
            if was_leader:
                await self._release(conn)
                logger.info("worker.leadership_released", extra={"worker_id": self.worker_id})
            await conn.close(timeout=self._config.check_timeout_s)
        except _DB_ERRORS:
            conn.terminate()  # the server ends the session, and the lock with it

    async def attempt(self, *, notified: bool = False) -> Election | None:
        """Try the lock once; the election when won."""
        try:
            conn = await self._connection()
            if not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", LOCK_KEY, timeout=self._config.check_timeout_s
            ):
                return None
            ts_acquired_s = self._clock.monotonic()
            # Waits for the old leader's claims in flight (their FOR SHARE locks).
            epoch, previous = await conn.fetchrow(
                _BUMP_EPOCH, LEADERSHIP_ROW, self.worker_id, timeout=BUMP_TIMEOUT_S
            )
        except _DB_ERRORS as error:
            logger.warning(
                "worker.leadership_attempt_failed",
                extra={"worker_id": self.worker_id, "error": type(error).__name__},
            )
            self._drop_connection()
            return None
        self._deposed.clear()
        self.epoch = int(epoch)
        logger.info(
            "worker.leadership_acquired",
            extra={
                "worker_id": self.worker_id,
                "epoch": self.epoch,
                "previous_leader": previous,
                # Woken by the previous leader's release notification, not the retry timer.
                "after_release": notified,
            },
        )
        return Election(self.epoch, previous, ts_acquired_s)

    # ------------------------------------------------------------------ loop

    async def _step(self) -> None:
        """Guard the lock while leading (then pause), or make one more attempt."""
        if self.epoch is not None:
            await self._guard()
            self._try_now = await self._pause_before_rejoining()
            return
        if not self._try_now:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.try_interval_s):
                    await self._wake.wait()
        self._try_now = False
        notified = self._wake.is_set()
        self._wake.clear()
        if self._since_beat_s() > self._config.max_stall_s:
            return  # a hung main loop could not lead: no campaign until it runs again
        election = await self.attempt(notified=notified)
        if election is not None:
            self._on_elected(election)

    async def _guard(self) -> None:
        """Check the connection and the main loop's heartbeat until either fails; then
        step down at once."""
        config = self._config
        while self.epoch is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.check_interval_s):
                    await self._deposed.wait()
            if self.epoch is None:
                return  # the connection closed under us: already deposed
            since_beat_s = self._since_beat_s()
            if since_beat_s > config.max_stall_s:
                self.epoch = None  # first: from here on no claim passes
                # Released, not left to the server: the standbys hear of it at once.
                with contextlib.suppress(*_DB_ERRORS):
                    await self._release(self._conn)
                self._depose(f"event loop stalled for {since_beat_s:.1f} s")
                return
            try:
                held = await self._conn.fetchval(_HOLDS_LOCK, timeout=config.check_timeout_s)
            except _DB_ERRORS as error:
                self._depose(f"lock connection check failed: {type(error).__name__}")
                return
            if not held:
                self._depose("advisory lock no longer held")

    async def _pause_before_rejoining(self) -> bool:
        """A deposed leader lets the standbys go first: it waits ``rejoin_delay_s`` before
        campaigning again, because whatever deposed it (a cut-off network, a starved
        host) may still hold, and a standby in good health leads better. The wait buys
        nothing when no other worker campaigns (no other lock session of this database
        in ``pg_stat_activity``): then it campaigns at once, so a worker alone is not
        leaderless for the delay (nor for ``try_interval_s``: True, try now). When the
        count cannot be read it waits."""
        try:
            conn = await self._connection()
            others = await conn.fetchval(
                _OTHER_WORKERS, APPLICATION_NAME, timeout=self._config.check_timeout_s
            )
        except _DB_ERRORS:
            others = None
        if others == 0:
            logger.info("worker.leadership_rejoin_alone", extra={"worker_id": self.worker_id})
            return True
        await asyncio.sleep(self._config.rejoin_delay_s)
        return False

    async def _release(self, conn: Any) -> None:
        await conn.execute(
            _RELEASE,
            LOCK_KEY,
            RELEASED_CHANNEL,
            self.worker_id,
            timeout=self._config.check_timeout_s,
        )

    async def _connection(self) -> Any:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._config.connect_timeout_s,
                server_settings=self._config.server_settings(basic=self._basic_settings),
            )
        except asyncpg.UndefinedObjectError:
            if self._basic_settings:
                raise
            # An older server: keepalives and the user timeout still bound a dead leader.
            logger.warning("worker.leadership_without_idle_session_timeout")
            self._basic_settings = True
            return await self._connection()
        conn.add_termination_listener(self._connection_closed)
        await conn.add_listener(RELEASED_CHANNEL, self._released)
        self._conn = conn
        return conn

    def _connection_closed(self, conn: Any) -> None:
        if conn is self._conn:
            self._conn = None
            if self.epoch is not None:
                self._depose("lock connection closed")

    def _released(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()

    def _depose(self, reason: str) -> None:
        # Synchronous on purpose: from here on ``epoch`` is None, so no claim passes.
        self.epoch = None
        self._deposed.set()
        self._drop_connection()
        logger.warning(
            "worker.leadership_lost", extra={"worker_id": self.worker_id, "reason": reason}
        )
        self._on_deposed(reason)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
