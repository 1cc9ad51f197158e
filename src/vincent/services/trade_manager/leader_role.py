"""The worker's role: whether it may fire now, and its moves between standby and leader.

Alone on SQLite (``single_worker_lock``) the worker always leads. On PostgreSQL
(``leadership``) it starts as leader or hot standby; on election it settles what the old
leader left (reconciliation), reloads trailing levels from the database, then fires; on
losing the lock it stops at once and abandons what is in flight to the new leader. Holds no
rule state of its own: it drives the worker's registry, tick, tasks and dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from vincent.services.trade_manager.leadership import Election, Leadership
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.poll_tick import PollTick
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.single_worker_lock import SingleWorkerLock
from vincent.services.trade_manager.task_owner import TaskOwner
from vincent.services.trade_manager.trailing_levels import TrailingLevels
from vincent.services.trade_manager.types import Clock

logger = logging.getLogger(__name__)


class LeaderRole:
    """Leads or stands by; ``may_fire`` is checked before every batch of claims."""

    def __init__(
        self,
        *,
        worker_id: str,
        leadership: Leadership | None,
        single_lock: SingleWorkerLock | None,
        tasks: TaskOwner,
        tick: PollTick,
        rules: RuleRegistry,
        trailing: TrailingLevels,
        metrics: WorkerMetrics,
        clock: Clock,
        stopping: asyncio.Event,
        fire: Callable[[Iterable[str]], None],
        request_tick: Callable[[], object],
        notify: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self._leadership = leadership
        self._single_lock = single_lock
        self._tasks = tasks
        self._tick = tick
        self._rules = rules
        self._trailing = trailing
        self._metrics = metrics
        self._clock = clock
        self._stopping = stopping
        self._fire = fire
        self._request_tick = request_tick
        self._notify = notify
        self._leading = False
        self._election: Election | None = None
        self._leader_tick: asyncio.Task[bool] | None = None

    def may_fire(self) -> bool:
        """Whether this worker may fire, claim and write now."""
        return self._leading and (self._leadership is None or self._leadership.is_leader)

    async def open(self) -> bool:
        """Take the SQLite lock (raises ``WorkerAlreadyRunning``) or try the leadership
        once; return whether this worker starts as leader (and may fire from now on: the
        caller reconciles before it starts the feed)."""
        if self._single_lock is not None:
            self._single_lock.acquire()
        if self._leadership is not None:
            self._election = await self._leadership.open()
        self._leading = self._leadership is None or self._election is not None
        return self._leading

    def begin(self) -> None:
        """The worker runs: keep campaigning (standby) or guarding the lock (leader)."""
        self._metrics.leader.set(1 if self.may_fire() else 0)
        if self._election is not None:
            self._took_over(self._election)
        if self._leadership is not None:
            # Delivers, in order, what happened since ``open`` (a deposition, say).
            self._leadership.start(self._elected, self._deposed)

    async def close(self) -> None:
        """Stop leading; release the lock (the standbys hear of it) or the SQLite lock."""
        self._leading = False
        self._metrics.leader.set(0)
        if self._leadership is not None:
            await self._leadership.close()
        if self._single_lock is not None:
            self._single_lock.release()

    async def run_tick(self) -> None:
        """The leader's full poll tick, or a standby's read-only index sync."""
        if not self.may_fire():
            await _guarded(self._tick.sync_index(), "standby_sync")
            return
        # Its own task, awaited here, so that losing the leadership can cancel its writes
        # without ending the poll loop.
        tick = asyncio.create_task(self._tick.run(), name="leader-tick")
        self._leader_tick = tick
        try:
            await asyncio.wait({tick})
        finally:
            self._leader_tick = None
        error = None if tick.cancelled() else tick.exception()
        if error is not None:
            raise error  # a bug: ``run`` contains its own failures

    # ------------------------------------------------------------------ transitions

    def _elected(self, election: Election) -> None:
        if not self._tasks.spawn(self._take_over(election), "take-over"):
            logger.info("worker.takeover_skipped_stopping", extra={"worker_id": self.worker_id})

    async def _take_over(self, election: Election) -> None:
        """Settle what the old leader left, restore trailing levels, then fire."""
        assert self._leadership is not None
        # Every claim of the old leader committed before our epoch did (``leads_under``).
        await _guarded(self._tick.reconcile(min_attempt_age_s=0.0), "takeover_reconcile")
        self._rules.forget_persisted()
        await _guarded(self._tick.sync_index(full=True), "takeover_load")
        if self._leadership.epoch != election.epoch or self._stopping.is_set():
            return  # lost it again meanwhile
        self._leading = True
        # Fire what the prices in hand already cross, then price the rest over HTTP.
        self._fire(self._rules.index.tokens())
        self._request_tick()
        self._took_over(election)
        self._notify()

    def _took_over(self, election: Election) -> None:
        takeover_s = round(self._clock.monotonic() - election.ts_acquired_s, 3)
        self._metrics.leader.set(1)
        self._metrics.takeovers.inc()
        logger.info(
            "worker.took_over",
            extra={
                "worker_id": self.worker_id,
                "previous_leader": election.previous_leader_id,
                "epoch": election.epoch,
                "takeover_s": takeover_s,
                "rules": len(self._rules.index),
            },
        )

    def _deposed(self, reason: str) -> None:
        """Lost the lock: stop at once, abandon what is in flight (the new leader settles it)."""
        self._leading = False
        self._metrics.leader.set(0)
        self._trailing.clear()
        cancelled = self._tasks.cancel("execute-") + self._tasks.cancel("take-over")
        if self._leader_tick is not None:
            self._leader_tick.cancel()
        logger.warning(
            "worker.stepped_down",
            extra={"worker_id": self.worker_id, "reason": reason, "abandoned": len(cancelled)},
        )
        self._tasks.spawn(self._return_to_standby(cancelled), "return-to-standby")
        self._notify()

    async def _return_to_standby(self, cancelled: list[asyncio.Task[None]]) -> None:
        if cancelled:
            await asyncio.wait(cancelled)
        for rule_id in self._rules.in_flight:
            self._rules.finish(rule_id)
        self._rules.forget_persisted()
        await _guarded(self._tick.sync_index(full=True), "standby_load")
        self._notify()


async def _guarded(work: Awaitable[None], step: str) -> None:
    try:
        await work
    except Exception as error:
        logger.warning(
            "trade_monitoring_step_failed", extra={"step": step, "error": type(error).__name__}
        )
