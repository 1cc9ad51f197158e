"""A Core statement compiled once per dialect and run at the driver, for bulk writes.

SQLAlchemy's own ``execute`` pays, per row of an executemany, its parameter work: the
parameter dict copied, each typed value through its bind processor (a ``created_at`` the
same for the whole batch through two datetime processors, a JSON payload through
``json.dumps``). For the trailing flush's thousands of rows a second that is more than the
database's own work. A ``DriverStatement`` is the statement's SQL as the dialect renders it
(placeholders, casts), the names of its parameters in their positional order, and each
typed parameter's bind processor: the caller processes a value shared by every row once,
hands values no processor would change as they are, and sends the rows in one
``exec_driver_sql`` (an executemany for a list of rows). The cursor events still fire.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util.concurrency import greenlet_spawn

from vincent.db import sqlite_driver
from vincent.db.session import SessionFactory, one_statement_connection
from vincent.db.sqlite_driver import is_one_hop

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """``sql`` takes its parameters in the order of ``names``; ``fixed`` holds the values
    the statement carries itself (its literals), processed."""

    sql: str
    names: tuple[str, ...]
    processors: Mapping[str, Processor]
    fixed: Mapping[str, Any]

    def processed(self, name: str, value: Any) -> Any:
        """``value`` as SQLAlchemy would send it for parameter ``name``."""
        processor = self.processors.get(name)
        return value if processor is None else processor(value)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """One row's parameters in positional order, each processed (``fixed`` ones from
        the statement, the others from ``values``)."""
        fixed, processors = self.fixed, self.processors
        return tuple(
            fixed[name]
            if name in fixed
            else processors[name](values[name])
            if name in processors
            else values[name]
            for name in self.names
        )


def equals_any(
    column: sa.ColumnElement[Any] | InstrumentedAttribute[Any], values: tuple[Any, ...]
) -> sa.ColumnElement[bool]:
    """``column IN values`` for a statement run at the driver: as equalities, because
    SQLAlchemy renders an IN list into the SQL at each execution (``driver_statement``
    refuses such a statement)."""
    return sa.or_(*(column == value for value in values))


@functools.lru_cache(maxsize=256)
def driver_statement(statement: sa.ClauseElement, dialect: sa.Dialect) -> DriverStatement:
    """``statement`` compiled for ``dialect`` (a positional paramstyle: SQLite's ``?``,
    asyncpg's ``$n``). Cached per statement object and dialect: build the statement once."""
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"a SQL statement is needed, was {type(statement).__name__}")
    if compiled.positiontup is None:
        raise ValueError(f"a positional paramstyle is needed, was {dialect.paramstyle}")
    if compiled.post_compile_params:
        # Rendered at each execution (an IN of a list): the compiled SQL is not final.
        raise ValueError("a statement with parameters rendered at execution (IN lists)")
    names = tuple(compiled.positiontup)
    processors: dict[str, Processor] = {}
    fixed: dict[str, Any] = {}
    for name in names:
        bind = compiled.binds[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
        if not bind.required:
            value = bind.effective_value
            fixed[name] = value if processor is None else processor(value)
    return DriverStatement(compiled.string, names, processors, fixed)


async def execute_at_driver(
    session: AsyncSession | AsyncConnection,
    statement: sa.Executable,
    params: Mapping[str, Any],
) -> sa.CursorResult[Any]:
    """Run ``statement`` (built once and kept: its compiled form is cached by identity)
    with ``params`` on the session's connection (or on ``session``, a connection) at the
    driver: no per-execution compile, cache key or parameter dict work, only each typed
    value's processing."""
    connection = session if isinstance(session, AsyncConnection) else await session.connection()
    driver = driver_statement(statement, connection.dialect)
    return await connection.exec_driver_sql(driver.sql, driver.parameters(params))


async def write_at_driver(
    sessions: SessionFactory, statement: sa.Executable, params: Mapping[str, Any]
) -> int:
    """Run one write ``statement`` (built once and kept, as for ``execute_at_driver``) by
    itself and return how many rows it changed.

    On PostgreSQL it goes to asyncpg itself on a connection checked out of the engine's
    pool (its checkout checks still run), autocommitted as ``one_statement_session`` is:
    no session, transaction or result objects. A session's ``execute`` of the same
    statement costs ~1.0 ms of CPU on the benchmark machine, this ~0.3 ms. A constraint
    violation raises ``IntegrityError`` as SQLAlchemy would, any other driver error
    ``OperationalError``; a connection that failed or was cancelled mid-statement is
    dropped from the pool. On a SQLite file (``sqlite_driver.is_one_hop``) the statement
    and its commit are one call on aiosqlite's thread (``sqlite_driver.run_alone``), with
    the same errors. Elsewhere (SQLite in memory): ``one_statement_connection``.
    """
    bind = sessions.kw.get("bind")
    if isinstance(bind, AsyncEngine):
        if bind.dialect.name == "postgresql":
            return _rows_changed(await _at_asyncpg(bind, statement, params, _execute))
        if is_one_hop(bind):
            return (await _at_sqlite(bind, statement, params)).rowcount
    async with one_statement_connection(sessions) as core:
        return (await execute_at_driver(core, statement, params)).rowcount


async def value_at_driver(
    sessions: SessionFactory, statement: sa.Executable, params: Mapping[str, Any]
) -> Any:
    """``write_at_driver`` for a statement that answers with rows (a data-modifying
    ``WITH`` ending in a ``SELECT``, an ``… RETURNING``): the first column of its first
    row (None without a row), as the driver returns it (no result type's processing:
    for plain values — counts, ids, flags). Run, committed and dropped on failure as
    ``write_at_driver`` runs a statement."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, AsyncEngine):
        if bind.dialect.name == "postgresql":
            return await _at_asyncpg(bind, statement, params, _fetchval)
        if is_one_hop(bind):
            return (await _at_sqlite(bind, statement, params)).value
    async with one_statement_connection(sessions) as core:
        return (await execute_at_driver(core, statement, params)).scalar()


async def _at_sqlite(
    bind: AsyncEngine, statement: sa.Executable, params: Mapping[str, Any]
) -> sqlite_driver.Alone:
    driver = driver_statement(statement, bind.dialect)
    return await sqlite_driver.run_alone(bind, (driver.sql, driver.parameters(params)))


async def _execute(connection: Any, sql: str, arguments: tuple[Any, ...]) -> Any:
    return await connection.execute(sql, *arguments)


async def _fetchval(connection: Any, sql: str, arguments: tuple[Any, ...]) -> Any:
    return await connection.fetchval(sql, *arguments)


async def _at_asyncpg(
    bind: AsyncEngine,
    statement: sa.Executable,
    params: Mapping[str, Any],
    run: Callable[[Any, str, tuple[Any, ...]], Awaitable[Any]],
) -> Any:
    """``run`` the statement's SQL with its parameters on asyncpg's connection of one
    pooled connection (autocommitted: asyncpg outside a transaction); the connection
    handed back, or dropped if it failed or was cancelled mid-statement."""
    driver = driver_statement(statement, bind.dialect)
    arguments = driver.parameters(params)
    pooled = await bind.raw_connection()
    connection = pooled.driver_connection
    assert connection is not None  # checked out: open
    try:
        answer = await run(connection, driver.sql, arguments)
    except asyncpg.IntegrityConstraintViolationError as error:
        await greenlet_spawn(pooled.close)
        raise IntegrityError(driver.sql, arguments, error) from error
    except asyncpg.PostgresError as error:  # the server refused it: the connection is fine
        await greenlet_spawn(pooled.close)
        raise OperationalError(driver.sql, arguments, error) from error
    except BaseException as error:  # broken, or cancelled mid-statement: never reuse it
        await greenlet_spawn(pooled.invalidate, error if isinstance(error, Exception) else None)
        if isinstance(error, asyncpg.InterfaceError | OSError):
            raise OperationalError(driver.sql, arguments, error) from error
        raise
    await greenlet_spawn(pooled.close)
    return answer


def _rows_changed(status: str) -> int:
    """The row count of a command tag (``INSERT 0 1``, ``UPDATE 3``; 0 for others)."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0
