"""An event loop on a thread of its own, for work a busy main loop must not hold up.

The worker's leadership guard runs here (``leadership``): its lock connection is created
and used only on this loop, so a main loop stalled by a burst of fires or a large load
neither delays the guard's checks nor lets the lock session idle out. Coroutines are
submitted from other threads and awaited there through ``asyncio.wrap_future``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LoopThread:
    """A daemon thread running its own event loop until ``stop``.

    Daemon: a process that exits without stopping it (a crash) loses the thread with
    everything else, as it would lose a task of its main loop.
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` as a task of this loop; callable from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this loop and await its result from the caller's loop
        (cancelling the caller cancels it)."""
        return await asyncio.wrap_future(self.submit(coro))

    async def stop(self) -> None:
        """Cancel what still runs on the loop, stop it and wait for the thread to end."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.wait(pending))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            logger.debug("loop_thread.stopped", extra={"thread": self._thread.name})
