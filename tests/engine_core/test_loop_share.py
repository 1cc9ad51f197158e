"""LoopShare: one bound on how long a feed's readers hold the loop in a row."""

from __future__ import annotations

import asyncio

import pytest

from vincent.services.trade_manager.loop_share import LoopShare


async def test_the_run_is_shared_and_ends_once_the_loop_ran_what_was_queued() -> None:
    now = [10.0]
    share = LoopShare(0.001, lambda: now[0])
    assert not share.spent()  # no run open

    share.begin(now[0])
    now[0] += 0.0006
    assert not share.spent()
    share.begin(now[0])  # another reader, same run: the run's start stays
    now[0] += 0.0006
    assert share.spent()

    await asyncio.sleep(0)  # the loop ran what was queued before the run: it ended
    assert not share.spent()
    share.begin(now[0])
    assert not share.spent()


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget_s must not be negative, was -1"):
        LoopShare(-1, lambda: 0.0)
