"""Fires first, bookkeeping after: the lanes of the worker's executions.

A fire holds a slot of the fire lane from its start until the exchange answered its POST
(``PriceDispatcher``). Within it, the work toward the POST (sizing, signing, the durable
write) takes a slot of the narrower pre-POST lane, given back once the order is stored
(``BetRequest.stored``): the fires of a burst reach the exchange one after the other,
the first as fast as a fire alone, instead of all of them sharing the CPU and arriving
late together. Recording what the order came to (settlement follow, audit and rule
updates) takes a slot of the record lane, and waits for it while any fire is queued or on
its way to its POST, for at most ``max_defer_s``. In a burst of 1,000 crossed stops every
order goes out before the first outcome is written; a rule whose outcome waits stays
TRIGGERED with its attempt on record, as it would across a crash. The trailing flush waits
the same way before each of its chunks (``wait_for_no_fires``), on connections of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

# Outcomes recorded at once (each holds a database session for a few statements).
MAX_CONCURRENT_RECORDINGS = 4
# How long a recording may be held back by fires still on their way to the exchange.
MAX_RECORD_DEFER_S = 5.0
# Fires working toward their POST at once: two, so one signs while the other's durable
# write waits on the database.
MAX_CONCURRENT_BEFORE_POST = 2


class FireLanes:
    """Counts fires not yet answered; lets recordings through when there are none."""

    def __init__(
        self,
        *,
        record_slots: int = MAX_CONCURRENT_RECORDINGS,
        max_defer_s: float = MAX_RECORD_DEFER_S,
        before_post_slots: int = MAX_CONCURRENT_BEFORE_POST,
    ) -> None:
        self._record_slots = asyncio.Semaphore(record_slots)
        self._before_post = asyncio.Semaphore(before_post_slots)
        self._max_defer_s = max_defer_s
        self._fires = 0
        self._no_fires = asyncio.Event()
        self._no_fires.set()

    @property
    def fires(self) -> int:
        """Fires queued or on their way to their POST."""
        return self._fires

    def fire_queued(self, count: int = 1) -> None:
        self._fires += count
        self._no_fires.clear()

    def fire_answered(self) -> None:
        """The fire's POST was answered, or it ended without one. Once per fire queued."""
        self._fires -= 1
        if self._fires <= 0:
            self._fires = 0
            self._no_fires.set()

    async def before_post(self) -> Callable[[], None]:
        """Wait for a slot of the pre-POST lane; returns its release, to be called once the
        order is stored (or the fire gives up before): later calls do nothing."""
        await self._before_post.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._before_post.release()

        return release

    async def wait_for_no_fires(self, max_wait_s: float) -> None:
        """Return once no fire is queued or on its way to its POST, or after ``max_wait_s``
        (at once, without yielding, when there is none)."""
        if not self._no_fires.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max_wait_s):
                    await self._no_fires.wait()

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[None]:
        """A slot of the record lane, once no fire is waiting (or ``max_defer_s`` passed)."""
        await self.wait_for_no_fires(self._max_defer_s)
        async with self._record_slots:
            yield
