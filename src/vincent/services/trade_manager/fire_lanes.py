"""Fires first, bookkeeping after: the two lanes of the worker's executions.

A fire holds a slot of the fire lane from its start until the exchange answered its POST
(``PriceDispatcher``); recording what the order came to (settlement follow, audit and rule
updates) takes a slot of the record lane, and waits for it while any fire is queued or on
its way to its POST, for at most ``max_defer_s``. In a burst of 1,000 crossed stops every
order goes out before the first outcome is written; a rule whose outcome waits stays
TRIGGERED with its attempt on record, as it would across a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

# Outcomes recorded at once (each holds a database session for a few statements).
MAX_CONCURRENT_RECORDINGS = 4
# How long a recording may be held back by fires still on their way to the exchange.
MAX_RECORD_DEFER_S = 5.0


class FireLanes:
    """Counts fires not yet answered; lets recordings through when there are none."""

    def __init__(
        self,
        *,
        record_slots: int = MAX_CONCURRENT_RECORDINGS,
        max_defer_s: float = MAX_RECORD_DEFER_S,
    ) -> None:
        self._record_slots = asyncio.Semaphore(record_slots)
        self._max_defer_s = max_defer_s
        self._fires = 0
        self._no_fires = asyncio.Event()
        self._no_fires.set()

    @property
    def fires(self) -> int:
        """Fires queued or on their way to their POST."""
        return self._fires

    def fire_queued(self) -> None:
        self._fires += 1
        self._no_fires.clear()

    def fire_answered(self) -> None:
        """The fire's POST was answered, or it ended without one. Once per ``fire_queued``."""
        self._fires -= 1
        if self._fires <= 0:
            self._fires = 0
            self._no_fires.set()

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[None]:
        """A slot of the record lane, once no fire is waiting (or ``max_defer_s`` passed)."""
        if not self._no_fires.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._max_defer_s):
                    await self._no_fires.wait()
        async with self._record_slots:
            yield
