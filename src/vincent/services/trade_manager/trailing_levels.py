"""Coalesce trailing-stop raises in memory and persist the latest level per rule in chunks.

The hot path only records a raise (a dict assignment); ``flush`` writes every pending level,
``FLUSH_CHUNK_STOPS`` rules per short transaction: one bulk UPDATE, then one executemany of
``RULE_TRAILING_UPDATED`` + ``RULE_EVALUATED`` for the rules that moved, both run at the
driver with the chunk's ``created_at`` processed once and the payloads already JSON text. A
rule is written at most once per flush interval however fast its price climbs. Between
chunks the flush gives the loop back (and, in the worker, waits while fires are on their
way: ``FireLanes.wait_for_no_fires``), so it never holds the loop, the database's write lock
or a rule's row for longer than one chunk. A failed chunk keeps its levels and those not
written yet; the chunks before it stay written. An activation (a dormant stop woken) is kept
through later raises of the same flush and stored once: ``activated_at`` is set only where
it is still NULL, and only the statement that set it logs ``"activated": true``. The bulk
writes only raise: a level lands only on an ACTIVE trailing stop whose stored trigger is
lower; they never commit (the caller's transaction).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from vincent.db import sqlite_driver
from vincent.db.base import utcnow
from vincent.db.driver_statement import driver_statement
from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.db.sqlite_driver import is_one_hop
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.event_logger import (
    EventRow,
    SerialisedEvent,
    insert_serialised_events,
    log_event,
    serialised_event_rows,
)

# The bound: at most one trailing write per rule per second.
FLUSH_INTERVAL_S = 1.0
# Rules per UPDATE: two bound values each, far below SQLite's 32,766 and asyncpg's 32,767.
CHUNK_ROWS = 500
# Rules per transaction of a flush: the loop's share of one (its rows built, sent and read
# back) stays around a millisecond, as does SQLite's write lock (measured with
# ``bench.trailing_flush``).
FLUSH_CHUNK_STOPS = 64

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TrailingRaise:
    """A trailing level raised in memory and not yet persisted."""

    trigger_price: Decimal
    current_price: Decimal
    trailing_percent: Decimal | None
    source: str = "websocket"  # or "poll"
    trailing_amount: Decimal | None = None
    # The raise that woke a dormant stop (its activation must be stored, once).
    activated: bool = False


def trailing_updated_payload(level: TrailingRaise, *, activated: bool = False) -> dict[str, Any]:
    """RULE_TRAILING_UPDATED data: the new trigger and what raised it (and woke it)."""
    data: dict[str, Any] = {
        "triggerPrice": float(level.trigger_price),
        "currentPrice": float(level.current_price),
    }
    if level.trailing_percent is not None:
        data["trailingPercent"] = float(level.trailing_percent)
    if level.trailing_amount is not None:
        data["trailingAmount"] = float(level.trailing_amount)
    if activated:
        data["activated"] = True
    return data


def trailing_evaluated_payload(level: TrailingRaise) -> dict[str, Any]:
    """RULE_EVALUATED data for a trailing stop that moved (the websocket path adds ``source``)."""
    data: dict[str, Any] = {
        "currentPrice": float(level.current_price),
        "triggerPrice": float(level.trigger_price),
        "shouldTrigger": False,
    }
    if level.source == "websocket":
        data["source"] = "websocket"
    return data


def trailing_events(
    rule_id: str, level: TrailingRaise, *, activated: bool = False
) -> Iterator[EventRow]:
    """The two events of one persisted raise, in the order they are written."""
    yield (
        rule_id,
        TradeRuleEventType.RULE_TRAILING_UPDATED,
        trailing_updated_payload(level, activated=activated),
    )
    yield rule_id, TradeRuleEventType.RULE_EVALUATED, trailing_evaluated_payload(level)


def _json_number(value: float) -> str:
    """A float as ``json.dumps`` writes it (``repr``; NaN and the infinities by name)."""
    return repr(value) if math.isfinite(value) else json.dumps(value)


def trailing_events_json(
    rule_id: str, level: TrailingRaise, *, activated: bool = False
) -> tuple[SerialisedEvent, SerialisedEvent]:
    """``trailing_events`` with the data as the JSON text ``json.dumps`` makes of it (same
    keys, order, spacing and numbers), written directly: the flush serialises two payloads
    per stop that moved, thousands a second."""
    trigger = _json_number(float(level.trigger_price))
    current = _json_number(float(level.current_price))
    updated = f'{{"triggerPrice": {trigger}, "currentPrice": {current}'
    if level.trailing_percent is not None:
        updated += f', "trailingPercent": {_json_number(float(level.trailing_percent))}'
    if level.trailing_amount is not None:
        updated += f', "trailingAmount": {_json_number(float(level.trailing_amount))}'
    updated += ', "activated": true}' if activated else "}"
    evaluated = f'{{"currentPrice": {current}, "triggerPrice": {trigger}, "shouldTrigger": false'
    evaluated += ', "source": "websocket"}' if level.source == "websocket" else "}"
    return (
        (rule_id, TradeRuleEventType.RULE_TRAILING_UPDATED, updated),
        (rule_id, TradeRuleEventType.RULE_EVALUATED, evaluated),
    )


def _merge(older: TrailingRaise | None, newer: TrailingRaise) -> TrailingRaise:
    """The newer level, still carrying an activation the older one recorded."""
    if older is None or not older.activated or newer.activated:
        return newer
    return replace(newer, activated=True)


async def _yield_to_loop() -> None:
    await asyncio.sleep(0)


class TrailingLevels:
    """Pending trailing levels by rule id; the newest raise replaces an older one.

    While a flush runs, the levels it took and has not written yet are still this object's:
    ``take``, ``discard`` and ``clear`` reach them too, so a chunk written later never
    stores a level a claim took, a changed rule dropped or a deposed leader gave up.
    """

    __slots__ = ("_cleared", "_flushing", "_pending", "_unwritten")

    def __init__(self) -> None:
        self._pending: dict[str, TrailingRaise] = {}
        # The running flush's levels not yet in a chunk (empty between flushes).
        self._unwritten: dict[str, TrailingRaise] = {}
        self._cleared = 0  # how many times ``clear`` ran: a flush stops when it changes
        self._flushing = asyncio.Lock()  # one flush at a time (the loop's, the final one)

    def __len__(self) -> int:
        return len(self._pending) + len(self._unwritten)

    def record(self, rule_id: str, level: TrailingRaise) -> None:
        self._pending[rule_id] = _merge(self._pending.get(rule_id), level)

    def take(self, rule_id: str) -> TrailingRaise | None:
        """Remove and return a rule's pending level (its claim persists it instead)."""
        unwritten = self._unwritten.pop(rule_id, None)
        pending = self._pending.pop(rule_id, None)
        return unwritten if pending is None else _merge(unwritten, pending)

    def discard(self, rule_id: str) -> None:
        self._pending.pop(rule_id, None)
        self._unwritten.pop(rule_id, None)

    def clear(self) -> None:
        """Drop every pending level (a deposed leader may not write them)."""
        self._pending.clear()
        self._unwritten.clear()
        self._cleared += 1

    async def flush(
        self,
        session_factory: SessionFactory,
        *,
        before_chunk: Callable[[], Awaitable[None]] = _yield_to_loop,
        on_written: Callable[[dict[str, Decimal]], None] | None = None,
    ) -> dict[str, Decimal]:
        """Persist every pending level; return the levels the database accepted, by rule.

        ``FLUSH_CHUNK_STOPS`` rules per transaction, each after ``before_chunk`` (by
        default one pass of the loop); ``on_written`` gets each committed chunk's accepted
        levels. Only rules whose stored level moved get events. Raises what the database
        raised, after putting back the failed chunk and those not written yet (a newer
        raise recorded meanwhile wins); the chunks committed before it stay written. A
        flush called while another runs waits for it, then writes what is pending.
        """
        async with self._flushing:
            return await self._flush(session_factory, before_chunk, on_written)

    async def _flush(
        self,
        session_factory: SessionFactory,
        before_chunk: Callable[[], Awaitable[None]],
        on_written: Callable[[dict[str, Decimal]], None] | None,
    ) -> dict[str, Decimal]:
        if not self._pending:
            return {}
        self._unwritten, self._pending = self._pending, {}
        cleared = self._cleared
        written: dict[str, Decimal] = {}
        chunk: list[tuple[str, TrailingRaise]] = []
        try:
            while self._unwritten:
                await before_chunk()
                if self._cleared != cleared:
                    return written
                chunk = _take_chunk(self._unwritten, FLUSH_CHUNK_STOPS)
                accepted = await _write_chunk(session_factory, chunk)
                chunk = []
                written.update(accepted)
                if on_written is not None and accepted:
                    on_written(accepted)
        finally:
            if self._cleared == cleared:
                # Keep the levels for the next flush, unless a newer raise arrived meanwhile.
                for rule_id, level in [*chunk, *self._unwritten.items()]:
                    self._pending[rule_id] = _merge(level, self._pending.get(rule_id, level))
            self._unwritten = {}
        return written


def _take_chunk(levels: dict[str, TrailingRaise], size: int) -> list[tuple[str, TrailingRaise]]:
    """Remove and return the first ``size`` levels (all of them when there are fewer)."""
    if len(levels) <= size:
        chunk = list(levels.items())
        levels.clear()
        return chunk
    chunk = []
    for item in levels.items():
        chunk.append(item)
        if len(chunk) == size:
            break
    for rule_id, _ in chunk:
        del levels[rule_id]
    return chunk


async def _write_chunk(
    session_factory: SessionFactory, chunk: Sequence[tuple[str, TrailingRaise]]
) -> dict[str, Decimal]:
    """One transaction on a connection of its own: raise the chunk's stored levels, wake its
    dormant stops, log the events of those that moved or woke; return their accepted levels.

    On a SQLite file without a stop to wake (nearly every chunk), the rows are built here
    and the whole transaction is one call on aiosqlite's thread (``_write_chunk_on_thread``).
    Otherwise it runs as one synchronous function on SQLAlchemy's greenlet (one hop into
    it, not one per statement, begin and commit: each hop costs ~0.1-0.2 ms of the loop).
    """
    engine = session_factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"the session factory must be bound to an AsyncEngine, was {engine!r}")
    if is_one_hop(engine) and not any(level.activated for _, level in chunk):
        return await _write_chunk_on_thread(engine, chunk)
    async with engine.connect() as connection:
        return await connection.run_sync(_write_chunk_now, chunk)


def _write_chunk_now(
    connection: sa.Connection, chunk: Sequence[tuple[str, TrailingRaise]]
) -> dict[str, Decimal]:
    now = utcnow()
    # The first statement is the UPDATE, so on SQLite the write lock is taken at the start
    # and held for a handful of statements, never behind an earlier read.
    with connection.begin():
        moved = _raise_at_driver(connection, chunk, now)
        waking = [rule_id for rule_id, level in chunk if level.activated]
        woken: set[str] = set()
        if waking:
            woken.update(connection.execute(_activate_statement(waking, now)).scalars())
        events: list[SerialisedEvent] = []
        for rule_id, level in chunk:
            if rule_id in moved or rule_id in woken:
                events.extend(trailing_events_json(rule_id, level, activated=rule_id in woken))
        insert_serialised_events(connection, events, now)
    return {
        rule_id: level.trigger_price
        for rule_id, level in chunk
        if rule_id in moved or rule_id in woken
    }


async def _write_chunk_on_thread(
    engine: AsyncEngine, chunk: Sequence[tuple[str, TrailingRaise]]
) -> dict[str, Decimal]:
    """``_write_chunk_now`` for a chunk with no stop to wake, on a SQLite file: the UPDATE's
    parameters and every stop's two event rows are built on the loop (ids, JSON text,
    ``created_at`` processed once); the thread runs the UPDATE, keeps the rows of the rules
    it moved and inserts them, in one transaction: one hop to the thread and back."""
    now = utcnow()
    raise_sql, raise_parameters = _raise_step(engine.dialect, chunk, now)
    events: list[SerialisedEvent] = []
    for rule_id, level in chunk:
        events.extend(trailing_events_json(rule_id, level))
    insert_sql, rows = serialised_event_rows(engine.dialect, events, now)
    moved = await sqlite_driver.transaction(
        engine, _raise_and_log, raise_sql, raise_parameters, insert_sql, rows
    )
    return {rule_id: level.trigger_price for rule_id, level in chunk if rule_id in moved}


def _raise_and_log(
    cursor: sqlite_driver.StepCursor,
    raise_sql: str,
    raise_parameters: Sequence[Any],
    insert_sql: str,
    rows: list[tuple[Any, ...]],
) -> set[str]:
    """On aiosqlite's thread, in the transaction: raise, then log the events (``rows``, the
    rule id second) of the rules that moved; return those rules."""
    moved = {row[0] for row in cursor.rows(raise_sql, raise_parameters)}
    if 2 * len(moved) != len(rows):  # some did not move: keep only the rows of those that did
        rows = [row for row in rows if row[1] in moved]
    if rows:
        cursor.many(insert_sql, rows)
    return moved


def _raise_step(
    dialect: sa.Dialect, chunk: Sequence[tuple[str, TrailingRaise]], now: datetime
) -> tuple[str, tuple[Any, ...]]:
    """``raise_trailing_triggers``' statement for at most ``CHUNK_ROWS`` levels at the driver
    (the same SQL and parameters, ``now`` processed once): its SQL and parameters."""
    rows = statement_rows(len(chunk))
    statement = driver_statement(_raise_statement(rows), dialect)
    values: dict[str, Any] = {"now": now}
    for i, (rule_id, level) in enumerate(chunk):
        values[f"id_{i}"] = rule_id
        values[f"trigger_{i}"] = float(level.trigger_price)
    for i in range(len(chunk), rows):
        values[f"id_{i}"] = values[f"trigger_{i}"] = None  # padding: matches no rule
    return statement.sql, statement.parameters(values)


def _raise_at_driver(
    connection: sa.Connection, chunk: Sequence[tuple[str, TrailingRaise]], now: datetime
) -> set[str]:
    """``_raise_step`` run on ``connection``; return the rules it moved."""
    sql, parameters = _raise_step(connection.dialect, chunk, now)
    result = connection.exec_driver_sql(sql, parameters)
    return set(result.scalars().all())


async def store_level_at_claim(
    session: AsyncSession, rule_id: str, level: TrailingRaise, now: datetime
) -> None:
    """Store a fired stop's pending level in its claim's transaction (before the claim: it
    needs the rule ACTIVE), with one RULE_TRAILING_UPDATED when it moved or woke."""
    moved = await raise_trailing_triggers(session, {rule_id: level.trigger_price}, now)
    woken = await activate_trailing_stops(session, [rule_id], now) if level.activated else set()
    if moved or woken:
        log_event(
            session,
            rule_id,
            TradeRuleEventType.RULE_TRAILING_UPDATED,
            trailing_updated_payload(level, activated=bool(woken)),
        )


# The bulk writes: one statement per chunk of rules; no events, no commit.


def chunked(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Split ``items`` into consecutive runs of at most ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, was {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def statement_rows(rows: int) -> int:
    """The VALUES size that carries ``rows`` levels: a power of two, at most ``CHUNK_ROWS``.

    Few distinct sizes keep every statement in the compiled cache (a miss costs ~10 ms).
    """
    if not 1 <= rows <= CHUNK_ROWS:
        raise ValueError(f"rows must be between 1 and {CHUNK_ROWS}, was {rows}")
    return min(CHUNK_ROWS, 1 << (rows - 1).bit_length())


@functools.lru_cache(maxsize=16)
def _raise_statement(rows: int) -> sa.Update:
    # A VALUES list read through column1/column2 works on both engines: SQLite has no column
    # aliases on a derived table (``AS levels (id, ...)``). The casts give PostgreSQL the types
    # of otherwise untyped parameters.
    values = ", ".join(
        f"(CAST(:id_{i} AS VARCHAR), CAST(:trigger_{i} AS DOUBLE PRECISION))" for i in range(rows)
    )
    levels = (
        sa.text(
            f"SELECT column1 AS id, column2 AS new_trigger FROM (VALUES {values}) AS level_rows"
        )
        .columns(sa.column("id", sa.String), sa.column("new_trigger", sa.Double))
        .subquery("levels")
    )
    # One statement both decides and writes, so a rule canceled or claimed meanwhile is
    # never touched (PostgreSQL re-checks the WHERE after waiting for the row lock).
    return (
        sa.update(TradeRule)
        .where(
            TradeRule.id == levels.c.id,
            TradeRule.status == TradeRuleStatus.ACTIVE,
            TradeRule.rule_type == TradeRuleType.TRAILING_STOP,
            TradeRule.trigger_price < levels.c.new_trigger,
        )
        .values(
            trigger_price=levels.c.new_trigger,
            updated_at=sa.bindparam("now", type_=TradeRule.__table__.c.updated_at.type),
        )
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )


async def raise_trailing_triggers(
    session: AsyncSession, levels: Mapping[str, Decimal], now: datetime
) -> set[str]:
    """Raise each rule's stored trigger to its level where that is higher; return who moved.

    A rule that is no longer ACTIVE, is not a trailing stop, or already has this level or a
    higher one is left as it is. Runs ``ceil(len(levels) / CHUNK_ROWS)`` statements.
    """
    moved: set[str] = set()
    for chunk in chunked(list(levels.items()), CHUNK_ROWS):
        params: dict[str, Any] = {"now": now}
        for i, (rule_id, level) in enumerate(chunk):
            params[f"id_{i}"] = rule_id
            params[f"trigger_{i}"] = float(level)
        rows = statement_rows(len(chunk))
        for i in range(len(chunk), rows):
            # Padding: a NULL id matches no rule.
            params[f"id_{i}"] = params[f"trigger_{i}"] = None
        result = await session.execute(_raise_statement(rows), params)
        moved.update(result.scalars().all())
    return moved


def _activate_statement(rule_ids: Sequence[str], now: datetime) -> sa.Update:
    return (
        sa.update(TradeRule)
        .where(
            TradeRule.id.in_(rule_ids),
            TradeRule.status == TradeRuleStatus.ACTIVE,
            TradeRule.rule_type == TradeRuleType.TRAILING_STOP,
            TradeRule.activation_price.is_not(None),
            TradeRule.activated_at.is_(None),
        )
        .values(activated_at=now, updated_at=now)
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )


async def activate_trailing_stops(
    session: AsyncSession, rule_ids: Sequence[str], now: datetime
) -> set[str]:
    """Mark dormant ACTIVE trailing stops activated; return the ones this call woke.

    ``activated_at`` is written only where it is still NULL, so an activation seen twice
    (a flush retried, a claim after a flush) is stored and reported once.
    """
    woken: set[str] = set()
    for chunk in chunked(list(rule_ids), CHUNK_ROWS):
        result = await session.execute(_activate_statement(chunk, now))
        woken.update(result.scalars().all())
    return woken
