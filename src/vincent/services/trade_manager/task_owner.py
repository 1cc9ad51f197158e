"""Own a set of tasks: one ``TaskGroup`` inside a runner task, started and stopped explicitly.

Every task the worker runs is created here, never fire-and-forget: loops at ``open``, and
tasks spawned later from synchronous callbacks (executions, re-arms) through ``spawn``.
Spawns requested before ``open`` wait until the group exists. No domain logic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

logger = logging.getLogger(__name__)

Job = Coroutine[Any, Any, None]


class TaskOwner:
    """Runs jobs in one task group; ``close`` waits for them (bounded), then cancels."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._group: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._deferred: list[tuple[Job, str]] = []
        self._accepting = True
        self._live: set[asyncio.Task[None]] = set()

    async def open(self, loops: Iterable[tuple[Job, str]]) -> None:
        """Start the group with ``loops`` plus any deferred spawns. Raises on a second open."""
        if self._runner is not None:
            raise RuntimeError(f"{self._name} task group already opened")
        started = asyncio.Event()
        self._runner = asyncio.create_task(self._run(list(loops), started), name=self._name)
        self._runner.add_done_callback(self._runner_done)
        await started.wait()

    def spawn(self, job: Job, name: str) -> bool:
        """Run ``job`` in the group; False (and the job discarded) once closing."""
        if not self._accepting:
            job.close()
            return False
        if self._group is None:
            self._deferred.append((job, name))
            return True
        self._track(self._group.create_task(job, name=name))
        return True

    @property
    def pending(self) -> int:
        """How many jobs are still running."""
        return len(self._live)

    def cancel(self, name_prefix: str) -> list[asyncio.Task[None]]:
        """Cancel the running jobs whose name starts with ``name_prefix``; return them.

        Deferred jobs with that prefix are dropped. The group goes on: a job cancelled
        from outside does not end it.
        """
        kept = []
        for job, name in self._deferred:
            if name.startswith(name_prefix):
                job.close()
            else:
                kept.append((job, name))
        self._deferred = kept
        cancelled = [t for t in self._live if t.get_name().startswith(name_prefix)]
        for task in cancelled:
            task.cancel()
        return cancelled

    def _track(self, task: asyncio.Task[None]) -> None:
        self._live.add(task)
        task.add_done_callback(self._live.discard)

    async def close(self, timeout_s: float) -> None:
        """Stop accepting jobs and wait for the group (its loops must be told to end first).

        After ``timeout_s`` the rest is cancelled and awaited; a bug that escaped a job is
        re-raised here.
        """
        self._accepting = False
        for job, _ in self._deferred:
            job.close()
        self._deferred.clear()
        runner = self._runner
        if runner is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(runner)
        except TimeoutError:
            logger.error(
                "task_owner.close_timeout",
                extra={"owner": self._name, "pending": sorted(t.get_name() for t in self._live)},
            )
            runner.cancel()
            await asyncio.wait({runner})

    def _runner_done(self, runner: asyncio.Task[None]) -> None:
        # A bug that escaped a job ended the whole group: say so now, not only at close.
        if not runner.cancelled() and runner.exception() is not None:
            logger.error(
                "task_owner.group_failed", exc_info=runner.exception(), extra={"owner": self._name}
            )

    async def _run(self, loops: list[tuple[Job, str]], started: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for job, name in [*loops, *self._deferred]:
                    self._track(group.create_task(job, name=name))
                self._deferred.clear()
                started.set()
        finally:
            self._group = None
            started.set()
