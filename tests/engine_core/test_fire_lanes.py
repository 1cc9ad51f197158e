"""FireLanes: recordings wait while fires are on their way, never longer than the limit."""

from __future__ import annotations

import asyncio

from vincent.services.trade_manager.fire_lanes import FireLanes

TIMEOUT_S = 5.0


async def test_a_recording_waits_until_no_fire_is_waiting() -> None:
    lanes = FireLanes(record_slots=2, max_defer_s=60)
    lanes.fire_queued()
    lanes.fire_queued()
    entered = asyncio.Event()

    async def record() -> None:
        async with lanes.recording():
            entered.set()

    task = asyncio.create_task(record())
    await asyncio.sleep(0)
    lanes.fire_answered()
    await asyncio.sleep(0)
    assert not entered.is_set() and lanes.fires == 1
    lanes.fire_answered()
    async with asyncio.timeout(TIMEOUT_S):
        await task
    assert entered.is_set() and lanes.fires == 0


async def test_a_recording_is_held_back_no_longer_than_the_limit() -> None:
    lanes = FireLanes(record_slots=1, max_defer_s=0.05)
    lanes.fire_queued()  # a fire that never answers
    async with asyncio.timeout(TIMEOUT_S), lanes.recording():
        assert lanes.fires == 1


async def test_recordings_share_the_record_slots() -> None:
    lanes = FireLanes(record_slots=2, max_defer_s=60)
    inside = 0
    most = 0
    gate = asyncio.Event()
    two_inside = asyncio.Event()

    async def record() -> None:
        nonlocal inside, most
        async with lanes.recording():
            inside += 1
            most = max(most, inside)
            if inside == 2:
                two_inside.set()
            await gate.wait()
            inside -= 1

    tasks = [asyncio.create_task(record()) for _ in range(5)]
    async with asyncio.timeout(TIMEOUT_S):
        await two_inside.wait()
        gate.set()
        await asyncio.gather(*tasks)
    assert most == 2


def test_an_extra_answer_never_drives_the_count_below_zero() -> None:
    lanes = FireLanes()
    lanes.fire_answered()
    assert lanes.fires == 0


async def test_the_pre_post_lane_lets_the_next_fire_in_once_an_order_is_stored() -> None:
    lanes = FireLanes(before_post_slots=1)
    first = await lanes.before_post()
    second_in = asyncio.Event()

    async def second() -> None:
        release = await lanes.before_post()
        second_in.set()
        release()

    task = asyncio.create_task(second())
    await asyncio.sleep(0)
    assert not second_in.is_set()  # the first fire is still on its way to its POST
    first()  # stored
    first()  # and the fire's own end: no second release (the lane stays at one slot)
    async with asyncio.timeout(TIMEOUT_S):
        await task
    third = await lanes.before_post()
    fourth = asyncio.create_task(lanes.before_post())
    await asyncio.sleep(0)
    assert not fourth.done()
    third()
    async with asyncio.timeout(TIMEOUT_S):
        (await fourth)()


async def test_waiting_for_no_fires_returns_once_the_last_is_answered() -> None:
    lanes = FireLanes()
    await lanes.wait_for_no_fires(60)  # none: at once
    lanes.fire_queued()
    waiter = asyncio.create_task(lanes.wait_for_no_fires(60))
    await asyncio.sleep(0)
    assert not waiter.done()
    lanes.fire_answered()
    async with asyncio.timeout(TIMEOUT_S):
        await waiter


async def test_waiting_for_no_fires_gives_up_after_the_limit() -> None:
    lanes = FireLanes()
    lanes.fire_queued()  # a fire that never answers
    async with asyncio.timeout(TIMEOUT_S):
        await lanes.wait_for_no_fires(0.05)
    assert lanes.fires == 1
