"""SQLite through aiosqlite with one thread hop per statement (issue 14).

SQLAlchemy's aiosqlite adapter makes three or four round trips to aiosqlite's thread for
each statement (open a cursor, execute, fetch the rows, close the cursor), each a future
resolved from that thread and a wake-up of the event loop (measured here: a transaction
of three writes 0.85 ms with it, 0.58 ms with this one; a read session 0.49 / 0.29 ms).
This adapter runs the
whole statement (cursor, execute, fetch, close) as one call on aiosqlite's thread, so a
statement costs one hop, and skips the COMMIT and ROLLBACK hops when SQLite has no
transaction open (a read, the pool's reset after a commit). Everything else (connections,
transactions, errors, the pool) is SQLAlchemy's aiosqlite dialect unchanged; the engine
gets it as its DBAPI module (``create_async_engine(..., module=one_hop_dbapi())``).

A rule's durable write before its POST goes further (``write_after_claim``): the whole
transaction (BEGIN IMMEDIATE, the claim's UPDATE, its INSERTs, COMMIT or ROLLBACK) is one
call on the thread, on a connection taken from the engine's pool with no session; and so
is a statement run by itself and committed (``run_alone``: a fire's bookkeeping after its
POST, ``driver_statement.write_at_driver``), its commit in the same call.

It relies on what SQLAlchemy's own adapter relies on: aiosqlite's ``Connection._execute``
(run a function on the connection's thread) and ``Connection._conn`` (the ``sqlite3``
connection, used only on that thread). Both versions are pinned in ``constraints.txt``,
and the whole test suite runs on this adapter.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import SingletonThreadPool, StaticPool
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_, greenlet_spawn

_T = TypeVar("_T")

# description, rows, rowcount, lastrowid
_Outcome = tuple[Any, Sequence[Any], int, int | None]


def _run(connection: aiosqlite.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """One statement, start to end, on the connection's own thread."""
    cursor: sqlite3.Cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose ``execute`` is one call on aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No aiosqlite cursor of its own (opening one is a hop): see ``_run``.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _statement(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await self._connection._execute(
                _run, self._connection, operation, parameters, many
            )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            await_(self._statement(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            await_(self._statement(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _async_soft_close(self) -> None:
        return None  # nothing is open on the thread: the rows are already here

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """Commit and roll back only when a transaction is open (each is a hop): a read-only
    unit of work, and the pool's reset of a connection whose work was committed, cost
    none. ``in_transaction`` is SQLite's own flag, read without a hop."""

    __slots__ = ()
    _cursor_cls = OneHopCursor

    def _in_transaction(self) -> bool:
        raw: sqlite3.Connection | None = self._connection._connection
        return raw is None or raw.in_transaction  # closed: let SQLAlchemy's path decide

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI shim, handing out ``OneHopConnection``s."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)


# A statement for ``write_after_claim``: its SQL and its parameters, in order and processed
# (``DriverStatement.parameters``).
Step = tuple[str, Sequence[Any]]


class Alone(NamedTuple):
    """What ``run_alone``'s statement did: ``rowcount`` (sqlite3's: rows an INSERT, UPDATE or
    DELETE changed, else -1) and ``value``, the first column of its first row or None."""

    rowcount: int
    value: Any


class _StepFailed(Exception):
    """A statement SQLite refused in one of this module's calls on its thread (a transaction
    rolled back)."""

    def __init__(self, step: Step, error: sqlite3.Error) -> None:
        super().__init__(step[0])
        self.step = step
        self.error = error


def _statement_alone(connection: aiosqlite.Connection, step: Step) -> Alone:
    """``run_alone``'s statement, start to end, on the connection's own thread."""
    raw: sqlite3.Connection = connection._conn
    if raw.in_transaction:  # the pool hands out connections with none: a bug
        raise RuntimeError("a transaction is already open on this connection")
    cursor = raw.cursor()
    try:
        try:
            # As for a statement of SQLAlchemy's: sqlite3 opens a transaction before an
            # INSERT, UPDATE or DELETE (a write statement takes SQLite's write lock as it
            # starts, waiting up to the busy timeout), none before a read.
            cursor.execute(*step)
            rows = cursor.fetchall() if cursor.description else ()
            alone = Alone(cursor.rowcount, rows[0][0] if rows else None)
            if raw.in_transaction:
                step = ("COMMIT", ())
                raw.commit()
        except BaseException:
            if raw.in_transaction:
                raw.rollback()
            raise
        return alone
    except sqlite3.Error as error:
        raise _StepFailed(step, error) from error
    finally:
        cursor.close()


class StepCursor:
    """A ``sqlite3`` cursor inside ``transaction``'s work: each statement is remembered, so
    one that SQLite refuses is raised with its SQL and parameters."""

    __slots__ = ("_cursor", "step")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.step: Step = ("BEGIN IMMEDIATE", ())

    def rows(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run one statement; return its rows (none for a statement without any)."""
        self.step = (sql, parameters)
        cursor = self._cursor
        cursor.execute(sql, parameters)
        return cursor.fetchall() if cursor.description else []

    def count(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run one statement; return the number of rows it changed."""
        self.step = (sql, parameters)
        cursor = self._cursor
        cursor.execute(sql, parameters)
        return cursor.rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row (sqlite3's ``executemany``)."""
        self.step = (sql, rows)
        self._cursor.executemany(sql, rows)


def _transaction(
    connection: aiosqlite.Connection, work: Callable[..., _T], args: tuple[Any, ...]
) -> _T:
    """``transaction``'s call, start to end, on the connection's own thread."""
    raw: sqlite3.Connection = connection._conn
    if raw.in_transaction:  # the pool hands out connections with none: a bug
        raise RuntimeError("a transaction is already open on this connection")
    cursor = raw.cursor()
    steps = StepCursor(cursor)
    try:
        # The write lock first (waiting up to the busy timeout), so that no other writer
        # can come between and a read in a claim's guard is as of the claim itself.
        cursor.execute("BEGIN IMMEDIATE")
        try:
            answer = work(steps, *args)
            steps.step = ("COMMIT", ())
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        return answer
    except sqlite3.Error as error:
        raise _StepFailed(steps.step, error) from error
    finally:
        cursor.close()


class _Lost(Exception):
    """The claim's guarded UPDATE matched no row: its transaction is rolled back."""


def _claim_and_write(connection: aiosqlite.Connection, claim: Step, writes: Sequence[Step]) -> bool:
    """``write_after_claim``'s transaction, start to end, on the connection's own thread."""
    try:
        return _transaction(connection, _claim_then_write, (claim, writes))
    except _Lost:
        return False  # lost: nothing of it is written


def _claim_then_write(cursor: StepCursor, claim: Step, writes: Sequence[Step]) -> bool:
    if cursor.count(*claim) < 1:
        raise _Lost()
    for sql, parameters in writes:
        cursor.count(sql, parameters)
    return True


async def transaction(engine: AsyncEngine, work: Callable[..., _T], *args: Any) -> _T:
    """Run ``work(cursor, *args)`` (``cursor`` a ``StepCursor``) in one write transaction
    (BEGIN IMMEDIATE … COMMIT, or ROLLBACK when it raises) as ONE call on aiosqlite's
    thread; return what it returns.

    ``work`` runs on that thread while the event loop runs on: it must only run its
    statements and touch what it was given (anything Python it does holds the GIL the
    loop needs, so prepare the rows before). Connections, errors and cancellation as for
    ``write_after_claim``: a statement SQLite refused raises ``IntegrityError`` or
    ``OperationalError`` with its SQL, after the rollback.
    """
    return await _on_thread(engine, _transaction, work, args)


async def _on_thread(engine: AsyncEngine, work: Callable[..., _T], *args: Any) -> _T:
    """``work(connection, *args)`` as ONE call on aiosqlite's thread, on a connection
    checked out of ``engine``'s pool (its checkout events still run) with no session or
    SQLAlchemy connection around it; handed back after, or dropped if the call was
    cancelled or the connection broke. ``work`` ends its own transaction, and raises a
    statement SQLite refused as ``_StepFailed``: that is ``IntegrityError`` (a constraint
    violation) or ``OperationalError`` (any other) here, as SQLAlchemy would raise it."""
    pooled = await engine.raw_connection()
    adapted = pooled.dbapi_connection
    if not isinstance(adapted, OneHopConnection):
        await greenlet_spawn(pooled.close)
        raise TypeError(f"a one-hop SQLite connection is needed, was {adapted!r}")
    connection: aiosqlite.Connection = adapted._connection
    try:
        async with adapted._execute_mutex:
            answer: _T = await connection._execute(work, connection, *args)
    except _StepFailed as failed:
        await greenlet_spawn(pooled.close)
        sql, parameters = failed.step
        if isinstance(failed.error, sqlite3.IntegrityError):
            raise IntegrityError(sql, parameters, failed.error) from failed.error
        raise OperationalError(sql, parameters, failed.error) from failed.error
    except BaseException as error:  # cancelled mid-call, or a closed connection
        await greenlet_spawn(pooled.invalidate, error if isinstance(error, Exception) else None)
        raise
    await greenlet_spawn(pooled.close)
    return answer


async def write_after_claim(engine: AsyncEngine, claim: Step, writes: Sequence[Step]) -> bool:
    """Run ``claim`` (an UPDATE) and, only if it changed a row, ``writes`` after it, in one
    transaction (BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the claim changed none: then
    nothing is written), as ONE call on aiosqlite's thread; return whether it was written.

    For the SQLite engines ``create_engine`` builds (``is_one_hop``): the connection is
    checked out of the engine's pool (its checkout events still run) with no session or
    SQLAlchemy connection around it, so the whole transaction costs one hop to the thread
    and back, not one per statement plus the commit's. A constraint violation raises
    ``IntegrityError`` as SQLAlchemy would, any other SQLite error ``OperationalError``
    (both after the rollback); a connection whose call was cancelled is dropped from the
    pool (its transaction still ends on the thread, committed or rolled back).
    """
    return await _on_thread(engine, _claim_and_write, claim, writes)


async def run_alone(engine: AsyncEngine, step: Step) -> Alone:
    """Run ONE statement by itself, committed, as ONE call on aiosqlite's thread: its row
    count and the first column of its first row (None without rows), as sqlite3 returns
    them.

    The statement runs as SQLAlchemy would run it on a connection of its own
    (``session.one_statement_connection``): in a transaction sqlite3 opens before a
    write, committed (or rolled back on an error) in the same call, so the whole costs one
    hop to the thread and back instead of the statement's and the commit's, and no
    SQLAlchemy connection. For the engines ``is_one_hop`` accepts; errors, and a call
    cancelled mid-statement, as for ``write_after_claim``.
    """
    return await _on_thread(engine, _statement_alone, step)


def is_one_hop(engine: AsyncEngine) -> bool:
    """Whether ``write_after_claim`` may run on ``engine``: SQLite on this module's adapter,
    with a pool that gives each checkout a connection of its own (a file database; in
    memory, SQLAlchemy shares one connection, whose transaction may be another's)."""
    shared = isinstance(engine.pool, StaticPool | SingletonThreadPool)
    return isinstance(engine.dialect.dbapi, OneHopDBAPI) and not shared
