"""Warm the skill per (secret, token) before a rule can fire: SDK client and market info.

The first order for a token otherwise pays for client creation and market lookups on the
trigger path. At most ``WARMUP_CONCURRENCY`` warm-ups run at once, so thousands of tokens at
start are warmed in a fraction of the time yet never crowd the exchange while real orders
go out. A failed warm-up is retried when next asked for. Then ``keep_warm`` keeps it so
for as long as the tokens are watched (open connection, market info read again before it
ages out), so a stop that fires hours later still makes no network call but its POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable

from vincent.services.trade_manager.types import RuleSnapshot
from vincent.skills.polymarket.types import TradingSkill

logger = logging.getLogger(__name__)

WARMUP_CONCURRENCY = 4
# ``TradingSkill.keep_warm`` is called this often (its connection ping is due after 20 s).
KEEP_WARM_INTERVAL_S = 10.0


class SkillWarmup:
    """A queue of (secret, token) warm-ups and the loop that runs them."""

    def __init__(
        self,
        skill: TradingSkill,
        on_change: Callable[[], None] = lambda: None,
        *,
        concurrency: int = WARMUP_CONCURRENCY,
    ) -> None:
        self._skill = skill
        self._concurrency = concurrency
        self._on_change = on_change
        self._seen: set[tuple[str, str]] = set()
        self._queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self._running = 0

    def want(self, rules: Iterable[RuleSnapshot]) -> None:
        """Queue a warm-up for each (secret, token) not warmed yet."""
        for rule in rules:
            key = (rule.secret_id, rule.token_id)
            if key not in self._seen:
                self._seen.add(key)
                self._queue.put_nowait(key)

    @property
    def pending(self) -> int:
        """Warm-ups queued or running."""
        return self._queue.qsize() + self._running

    def close(self) -> None:
        """End ``run`` after the warm-ups in progress."""
        for _ in range(self._concurrency):
            self._queue.put_nowait(None)  # one stop for each loop

    async def run(self) -> None:
        """Run queued warm-ups, ``concurrency`` at a time, until ``close``."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._concurrency):
                group.create_task(self._run_one_at_a_time())

    async def _run_one_at_a_time(self) -> None:
        while (key := await self._queue.get()) is not None:
            secret_id, token_id = key
            self._running += 1
            try:
                await self._skill.prepare(secret_id, token_id)
            except Exception as error:
                self._seen.discard(key)
                logger.warning(
                    "skill_prepare_failed",
                    extra={
                        "secret_id": secret_id,
                        "token_id": token_id,
                        "error": type(error).__name__,
                    },
                )
            finally:
                self._running -= 1
                self._on_change()

    async def keep_warm(
        self,
        tokens: Callable[[], Collection[str]],
        stopping: asyncio.Event,
        *,
        interval_s: float = KEEP_WARM_INTERVAL_S,
    ) -> None:
        """Until ``stopping``: every ``interval_s``, ``keep_warm`` the tokens watched then."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await stopping.wait()
            if stopping.is_set():
                return
            try:
                await self._skill.keep_warm(tokens())
            except Exception as error:
                logger.warning("skill_keep_warm_failed", extra={"error": type(error).__name__})
