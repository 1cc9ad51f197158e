"""Wait for a condition on some state without polling: ``notify`` after each change. No I/O.

``notify`` is synchronous so synchronous code (the price path) can wake waiters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Waiters:
    """Futures waiting for predicates; each change calls ``notify``."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def notify(self) -> None:
        """Wake every waiter whose predicate now holds."""
        for predicate, future in self._waiting:
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; bound it with ``asyncio.timeout``."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiting.append(waiter)
        try:
            await future
        finally:
            self._waiting.remove(waiter)
