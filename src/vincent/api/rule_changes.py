"""Rule changes across processes (PostgreSQL): API-only processes NOTIFY, the worker LISTENs.

In one process the API tells the worker of each committed change directly
(``RuleChangeListener``). API-only processes (``serve --api-workers N``) cannot: they add a
``pg_notify`` to the change's transaction, which PostgreSQL delivers at commit, and the
process that runs the worker listens on one dedicated connection, reads the changed rules
and hands them to the worker the same way. A notification lost (listener reconnecting,
worker restarting) is covered by the worker's poll tick, which re-syncs from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import ExecutionMode, TradeRuleStatus
from vincent.services.trade_manager.rule_manager import to_snapshot
from vincent.services.trade_manager.types import RuleChangeListener

logger = logging.getLogger(__name__)

CHANNEL = "vincent_rule_changes"
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0


async def notify_rule_change(session: AsyncSession, rule_id: str) -> None:
    """Queue a notification of ``rule_id`` in the session's transaction (sent at commit)."""
    await session.execute(sa.select(sa.func.pg_notify(CHANNEL, rule_id)))


def _asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def _setter(event: asyncio.Event) -> Any:
    return lambda _conn: event.set()


class RuleChangeSubscriber:
    """LISTEN for rule ids and pass the rules to ``listener`` (the worker), in order."""

    def __init__(
        self,
        database_url: str,
        session_factory: SessionFactory,
        listener: RuleChangeListener,
        *,
        execution_mode: ExecutionMode | None = None,
    ) -> None:
        self._dsn = _asyncpg_dsn(database_url)
        # Only rules of the worker's own mode reach it (None: every rule).
        self._mode = execution_mode
        self._sessions = session_factory
        self._listener = listener
        self._pending: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        self.applied = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="rule-changes-listen"),
            asyncio.create_task(self._apply_loop(), name="rule-changes-apply"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._pending.put_nowait(payload)

    async def _listen_loop(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as error:
                logger.warning("rule_changes_connect_failed", extra={"error": type(error).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            closed = asyncio.Event()
            try:
                conn.add_termination_listener(_setter(closed))
                await conn.add_listener(CHANNEL, self._on_notification)
                self.listening.set()
                delay = RECONNECT_MIN_S
                await closed.wait()
                logger.warning("rule_changes_connection_lost")
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    async def _apply_loop(self) -> None:
        while True:
            ids = {await self._pending.get()}
            while not self._pending.empty():
                ids.add(self._pending.get_nowait())
            try:
                await self._apply(ids)
            except Exception as error:  # the poll tick re-syncs what was missed
                logger.warning("rule_changes_apply_failed", extra={"error": type(error).__name__})

    async def _apply(self, ids: set[str]) -> None:
        async with self._sessions() as session:
            statement = sa.select(TradeRule).where(TradeRule.id.in_(ids))
            if self._mode is not None:
                statement = statement.where(TradeRule.execution_mode == self._mode)
            rules = (await session.scalars(statement)).all()
        for rule in rules:
            # Only the API's own transitions: the worker owns TRIGGERED, FAILED, ...
            if rule.status is TradeRuleStatus.ACTIVE:
                self._listener.rule_upserted(to_snapshot(rule))
            elif rule.status is TradeRuleStatus.CANCELED:
                self._listener.rule_removed(rule.id, rule.token_id)
        self.applied += len(rules)
