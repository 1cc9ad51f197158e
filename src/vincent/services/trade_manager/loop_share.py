"""A bounded share of the event loop for work that arrives in runs (the feed's frames).

Frames already received come out of a WebSocket without a pause of its reader, and every
shard's reader may have some when the loop comes round: handled back to back they hold the
loop (and a fire's next step, a due timer) for as long as they take. ``LoopShare`` tells the
readers when, together, they have held it for ``budget_s`` since it last ran anything else;
a reader then hands the loop back after its frame (``asyncio.sleep(0)``) and goes on in the
next pass. The share is one per feed, so the bound holds for all its readers in a pass.

How it knows that the loop ran something else: the first piece of work of a run schedules
a callback (``call_soon``); it runs only once every reader of the run has given the loop
back, and ends the run. No I/O, one clock read per piece of work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# The feed's readers hold the loop at most this long in a row, plus the frame in hand (a
# fire's next step and the loop-lag target, 2 ms at p99, are measured against it).
FEED_LOOP_SHARE_S = 0.001


class LoopShare:
    """Time the runs of some work on the loop; ``spent`` once a run reached ``budget_s``."""

    __slots__ = ("_budget_s", "_clock", "_run_started_s")

    def __init__(self, budget_s: float, clock: Callable[[], float]) -> None:
        if budget_s < 0:
            raise ValueError(f"budget_s must not be negative, was {budget_s}")
        self._budget_s = budget_s
        self._clock = clock
        # Start of the current run (None: the loop has run something else since the last).
        self._run_started_s: float | None = None

    def begin(self, now_s: float) -> None:
        """A piece of work starts at ``now_s`` (the clock's time): it opens a run unless one
        is open, and the run ends once the loop has run the callbacks queued before it."""
        if self._run_started_s is None:
            self._run_started_s = now_s
            asyncio.get_running_loop().call_soon(self._end_run)

    def spent(self) -> bool:
        """Whether the open run has held the loop for the budget (hand it back now)."""
        started = self._run_started_s
        return started is not None and self._clock() - started >= self._budget_s

    def _end_run(self) -> None:
        self._run_started_s = None
