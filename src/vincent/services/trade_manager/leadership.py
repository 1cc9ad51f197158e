"""Leadership among monitoring workers on one PostgreSQL database: one leader, hot standbys.

The leader holds a session-level advisory lock on a dedicated connection whose TCP keepalives
and timeouts make the server end it (and so release the lock) within seconds of the leader
dying or being cut off. It checks that connection every ``check_interval_s`` and steps down
the moment the check fails or the connection closes, sooner than the server can release the
lock to anyone else. Each takeover bumps an epoch in ``worker_leadership``; every claim
requires it in its own UPDATE (``lead_epoch`` + ``oco.claim_rule``), so a deposed leader
can never claim.
Owns the lock connection only: it never claims, sells or reconciles anything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from vincent.db.leader_epoch import LEADERSHIP_ROW
from vincent.services.trade_manager.types import Clock

logger = logging.getLogger(__name__)

# 'VINC': below 2**32, so pg_locks shows it as objid with classid 0. Advisory locks are per
# database, so databases on one server never compete.
LOCK_KEY = 0x56494E43
# A leader releasing the lock on purpose says so here: standbys try at once, not in a second.
RELEASED_CHANNEL = "vincent_worker_leader_released"
BUMP_TIMEOUT_S = 10.0

_HOLDS_LOCK = f"""
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 0 AND objid = {LOCK_KEY} AND objsubid = 1
      AND pid = pg_backend_pid() AND granted
)
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
    Standbys try every ``try_interval_s`` (1 s) and at once on a release notification; a
    deposed leader waits ``rejoin_delay_s`` (3 s) first.
    """

    try_interval_s: float = 1.0
    # A deposed leader waits this long before campaigning again: the standbys go first.
    rejoin_delay_s: float = 3.0
    check_interval_s: float = 0.5
    check_timeout_s: float = 1.5
    connect_timeout_s: float = 3.0
    keepalives_idle_s: int = 1
    keepalives_interval_s: int = 1
    keepalives_count: int = 2
    tcp_user_timeout_ms: int = 3000
    idle_session_timeout_ms: int = 3000

    def server_settings(self, *, basic: bool = False) -> dict[str, str]:
        """The lock session's settings; ``basic``: only those every supported server knows
        (``idle_session_timeout`` needs PostgreSQL 14)."""
        settings = {
            "application_name": "vincent-worker-leadership",
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


def new_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class Leadership:
    """Campaigns for the advisory lock and guards it while held.

    ``open`` makes one attempt; ``start`` then runs the loop that retries (standby) or
    checks the connection (leader), calling ``on_elected`` / ``on_deposed`` from the event
    loop. ``close`` releases the lock (and tells the standbys) if held.
    """

    def __init__(
        self,
        database_url: str,
        worker_id: str,
        clock: Clock,
        config: LeadershipConfig | None = None,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self.worker_id = worker_id
        self._clock = clock
        self._config = config or LeadershipConfig()
        self._conn: Any = None
        self._basic_settings = False
        self._epoch: int | None = None
        self._wake = asyncio.Event()
        self._deposed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._on_elected: Callable[[Election], None] = lambda _e: None
        self._on_deposed: Callable[[str], None] = lambda _r: None

    @property
    def is_leader(self) -> bool:
        """Holding the lock on a connection not known to be lost."""
        return self._epoch is not None

    @property
    def epoch(self) -> int | None:
        return self._epoch

    def lead_epoch(self) -> int | None:
        """The epoch this worker believes it leads under (None: it does not lead). A claim
        checks it against the database in its own UPDATE (``oco.claim_rule``)."""
        return self._epoch

    async def open(self) -> Election | None:
        """Connect and try the lock once; the election when won."""
        return await self._attempt()

    def start(
        self, on_elected: Callable[[Election], None], on_deposed: Callable[[str], None]
    ) -> None:
        """Run the campaign/guard loop until ``close``."""
        if self._runner is not None:
            raise RuntimeError("leadership already started")
        self._on_elected, self._on_deposed = on_elected, on_deposed
        self._runner = asyncio.create_task(self._run(), name="worker-leadership")

    async def close(self) -> None:
        """Stop campaigning; release the lock and notify the standbys if held."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait({self._runner})
        conn, was_leader = self._conn, self.is_leader
        self._epoch = None
        self._conn = None
        if conn is None:
            return
        try:
            if was_leader:
                await conn.execute(
                    "SELECT pg_advisory_unlock($1), pg_notify($2, $3)",
                    LOCK_KEY,
                    RELEASED_CHANNEL,
                    self.worker_id,
                    timeout=self._config.check_timeout_s,
                )
                logger.info("worker.leadership_released", extra={"worker_id": self.worker_id})
            await conn.close(timeout=self._config.check_timeout_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            conn.terminate()  # the server ends the session, and the lock with it

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                # A bug here must not leave a leader unguarded: step down, keep campaigning.
                logger.exception("worker.leadership_loop_failed")
                if self.is_leader:
                    self._depose("leadership loop failed")
                await asyncio.sleep(self._config.rejoin_delay_s)

    async def _step(self) -> None:
        """Guard the lock while leading (then pause), or make one more attempt."""
        if self.is_leader:
            await self._guard()
            await asyncio.sleep(self._config.rejoin_delay_s)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._config.try_interval_s):
                await self._wake.wait()
        notified = self._wake.is_set()
        self._wake.clear()
        election = await self._attempt(notified=notified)
        if election is not None:
            self._on_elected(election)

    async def _guard(self) -> None:
        """Check the lock connection until it fails; then step down at once."""
        config = self._config
        while self.is_leader:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.check_interval_s):
                    await self._deposed.wait()
            if not self.is_leader:
                return  # the connection closed under us: already deposed
            try:
                held = await self._conn.fetchval(_HOLDS_LOCK, timeout=config.check_timeout_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                self._depose(f"lock connection check failed: {type(error).__name__}")
                return
            if not held:
                self._depose("advisory lock no longer held")

    async def _attempt(self, *, notified: bool = False) -> Election | None:
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
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            logger.warning(
                "worker.leadership_attempt_failed",
                extra={"worker_id": self.worker_id, "error": type(error).__name__},
            )
            self._drop_connection()
            return None
        self._deposed.clear()
        self._epoch = int(epoch)
        logger.info(
            "worker.leadership_acquired",
            extra={
                "worker_id": self.worker_id,
                "epoch": self._epoch,
                "previous_leader": previous,
                # Woken by the previous leader's release notification, not the retry timer.
                "after_release": notified,
            },
        )
        return Election(self._epoch, previous, ts_acquired_s)

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
            if self.is_leader:
                self._depose("lock connection closed")

    def _released(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()

    def _depose(self, reason: str) -> None:
        # Synchronous on purpose: from here on ``is_leader`` is False, so no claim passes.
        self._epoch = None
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
