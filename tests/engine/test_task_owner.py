"""Task ownership: deferred spawns, bounded close, and bugs that surface at close."""

from __future__ import annotations

import asyncio

import pytest

from vincent.services.trade_manager.task_owner import TaskOwner


async def test_jobs_spawned_before_open_run_once_the_group_exists() -> None:
    owner = TaskOwner("test")
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    assert owner.spawn(job(), "early")
    await owner.open([])
    async with asyncio.timeout(5):
        await ran.wait()
    await owner.close(5)

    late = job()
    assert owner.spawn(late, "late") is False


async def test_close_cancels_what_outlives_the_timeout() -> None:
    owner = TaskOwner("test")
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await owner.open([(hangs(), "hangs")])
    assert owner.pending == 1
    await owner.close(0.05)
    assert cancelled.is_set()
    assert owner.pending == 0


async def test_a_bug_in_a_job_is_raised_at_close() -> None:
    owner = TaskOwner("test")

    async def bug() -> None:
        raise RuntimeError("broken invariant")

    await owner.open([(bug(), "bug")])
    with pytest.raises(ExceptionGroup) as raised:
        await owner.close(5)
    assert [str(e) for e in raised.value.exceptions] == ["broken invariant"]
