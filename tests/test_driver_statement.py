"""``driver_statement``: a statement's SQL compiled once, its parameters in driver order."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import sqlite_hops, statements_sent
from vincent.db.driver_statement import (
    driver_statement,
    equals_any,
    value_at_driver,
    write_at_driver,
)
from vincent.db.session import SessionFactory, create_engine, create_session_factory

_TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("a", sa.Integer),
    sa.Column("b", sa.String),
    sa.Column("c", sa.JSON),
)


@pytest.mark.parametrize("dialect", [postgresql.asyncpg.dialect(), sqlite.dialect()])
def test_parameters_come_in_the_order_the_sql_takes_them(dialect: sa.Dialect) -> None:
    statement = (
        sa.update(_TABLE)
        .where(_TABLE.c.a == sa.bindparam("where_a"), _TABLE.c.b == "fixed")
        .values(c=sa.bindparam("new_c", type_=sa.JSON), b=sa.bindparam("new_b"))
    )
    driver = driver_statement(statement, dialect)
    params = driver.parameters({"where_a": 3, "new_c": {"x": 1}, "new_b": "y"})
    compiled = statement.compile(dialect=dialect)
    assert driver.sql == compiled.string
    assert compiled.positiontup is not None
    by_name = dict(zip(compiled.positiontup, params, strict=True))
    literal = next(name for name in compiled.positiontup if name.startswith("b_"))
    assert by_name == {"new_c": '{"x": 1}', "new_b": "y", "where_a": 3, literal: "fixed"}


def test_a_statement_rendered_at_execution_is_refused() -> None:
    # An IN of a list is expanded into the SQL at each execution: no SQL to compile once.
    statement = sa.select(_TABLE.c.a).where(_TABLE.c.a.in_([1, 2, 3]))
    with pytest.raises(ValueError, match="rendered at execution"):
        driver_statement(statement, postgresql.asyncpg.dialect())


def test_equals_any_compiles_once_with_its_values_in_the_statement() -> None:
    statement = sa.select(_TABLE.c.a).where(equals_any(_TABLE.c.a, (1, 2, 3)))
    driver = driver_statement(statement, postgresql.asyncpg.dialect())
    assert driver.parameters({}) == (1, 2, 3)  # the statement's own values, nothing to pass


_KEYED = sa.Table(
    "driver_statement_test",
    sa.MetaData(),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("data", sa.JSON),
)
_INSERT = sa.insert(_KEYED).values(key=sa.bindparam("key"), data=sa.bindparam("data"))
_UPDATE = (
    sa.update(_KEYED).where(_KEYED.c.key != sa.bindparam("not_key")).values(data=sa.bindparam("d"))
)


@pytest.fixture
async def keyed(engine: AsyncEngine) -> AsyncIterator[SessionFactory]:
    async with engine.begin() as connection:
        await connection.run_sync(_KEYED.metadata.create_all)
    yield create_session_factory(engine)
    async with engine.begin() as connection:
        await connection.run_sync(_KEYED.metadata.drop_all)


@dataclass
class _Trips:
    """Trips to the database: statements run by the driver itself and those SQLAlchemy
    sent (``statements_sent``), and on SQLite each call on aiosqlite's thread, by
    function name (``sqlite_hops``)."""

    at_driver: list[str] = field(default_factory=list)
    through_sqlalchemy: list[str] = field(default_factory=list)
    hops: list[str] = field(default_factory=list)


@contextmanager
def _trips(engine: AsyncEngine) -> Iterator[_Trips]:
    trips = _Trips()

    def on_statement(statement: str, at_driver: bool) -> None:
        (trips.at_driver if at_driver else trips.through_sqlalchemy).append(statement)

    with statements_sent(engine, on_statement), sqlite_hops(trips.hops.append):
        yield trips


async def _assert_one_trip_each(engine: AsyncEngine, trips: _Trips, calls: int) -> None:
    """``calls`` statements, each run by itself in one trip at the driver: on PostgreSQL
    one query each in asyncpg's log (no BEGIN or COMMIT), on SQLite one call each on
    aiosqlite's thread (the statement and its commit); none through SQLAlchemy."""
    await asyncio.sleep(0)  # one turn of the loop: asyncpg reports the last query
    assert (len(trips.at_driver), trips.through_sqlalchemy) == (calls, []), trips
    if engine.dialect.name == "sqlite":
        assert trips.hops == ["_statement_alone"] * calls


async def test_a_write_at_the_driver_is_committed_and_counts_its_rows(
    keyed: SessionFactory, engine: AsyncEngine
) -> None:
    with _trips(engine) as trips:
        assert await write_at_driver(keyed, _INSERT, {"key": "a", "data": {"x": [1]}}) == 1
        assert await write_at_driver(keyed, _INSERT, {"key": "b", "data": None}) == 1
        assert await write_at_driver(keyed, _UPDATE, {"not_key": "zzz", "d": {"y": 2}}) == 2
        assert await write_at_driver(keyed, _UPDATE, {"not_key": "a", "d": {"z": 3}}) == 1
    await _assert_one_trip_each(engine, trips, 4)
    async with keyed() as session:  # another connection sees it: committed
        result = await session.execute(sa.select(_KEYED.c.key, _KEYED.c.data))
        rows = {row.key: row.data for row in result}
    assert rows == {"a": {"y": 2}, "b": {"z": 3}}


async def test_a_duplicate_key_at_the_driver_is_an_integrity_error_and_writes_nothing(
    keyed: SessionFactory, engine: AsyncEngine
) -> None:
    await write_at_driver(keyed, _INSERT, {"key": "a", "data": 1})
    with _trips(engine) as trips, pytest.raises(IntegrityError):
        await write_at_driver(keyed, _INSERT, {"key": "a", "data": 2})
    await _assert_one_trip_each(engine, trips, 1)  # rolled back in it: no trip of the pool's
    assert engine.pool.checkedout() == 0  # handed back
    async with keyed() as session:
        assert (await session.execute(sa.select(_KEYED.c.data))).scalars().all() == [1]


_INSERT_RETURNING = _INSERT.returning(_KEYED.c.key)
_DATA_OF = sa.select(_KEYED.c.data).where(_KEYED.c.key == sa.bindparam("key"))


async def test_a_statement_at_the_driver_answers_its_first_value_and_is_committed(
    keyed: SessionFactory, engine: AsyncEngine
) -> None:
    with _trips(engine) as trips:
        assert await value_at_driver(keyed, _INSERT_RETURNING, {"key": "a", "data": [1]}) == "a"
        assert await value_at_driver(keyed, _DATA_OF, {"key": "nothing"}) is None  # no row
    await _assert_one_trip_each(engine, trips, 2)
    async with keyed() as session:  # another connection sees it: committed
        assert (await session.execute(sa.select(_KEYED.c.key))).scalars().all() == ["a"]


async def test_a_duplicate_key_answering_rows_is_an_integrity_error_and_writes_nothing(
    keyed: SessionFactory, engine: AsyncEngine
) -> None:
    await value_at_driver(keyed, _INSERT_RETURNING, {"key": "a", "data": 1})
    with _trips(engine) as trips, pytest.raises(IntegrityError):
        await value_at_driver(keyed, _INSERT_RETURNING, {"key": "a", "data": 2})
    await _assert_one_trip_each(engine, trips, 1)
    assert engine.pool.checkedout() == 0  # handed back
    async with keyed() as session:
        assert (await session.execute(sa.select(_KEYED.c.data))).scalars().all() == [1]


@pytest.mark.postgres
@pytest.mark.parametrize("at_driver", [write_at_driver, value_at_driver])
async def test_a_write_cancelled_mid_statement_drops_its_connection(
    postgres_url: str, at_driver: Any
) -> None:
    engine = create_engine(postgres_url)
    sessions = create_session_factory(engine)
    try:
        started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        @sa.event.listens_for(engine.sync_engine, "checkout")
        def _checked_out(dbapi_connection: Any, *_: object) -> None:
            if not started.done():
                started.set_result(dbapi_connection.driver_connection)

        sleeping = asyncio.create_task(at_driver(sessions, sa.select(sa.func.pg_sleep(30)), {}))
        used = await started
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        assert engine.pool.checkedout() == 0
        assert used.is_closed()  # dropped, never handed back mid-statement
        statement = sa.select(sa.literal(1))
        assert await at_driver(sessions, statement, {}) == 1  # a new connection
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("at_driver", "statement"), [(write_at_driver, _INSERT), (value_at_driver, _INSERT_RETURNING)]
)
async def test_a_write_cancelled_mid_call_on_sqlite_drops_its_connection(
    tmp_path: Path, at_driver: Any, statement: sa.Executable
) -> None:
    path = tmp_path / "cancelled.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sessions = create_session_factory(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_KEYED.metadata.create_all)
        used: list[Any] = []
        sa.event.listen(
            engine.sync_engine, "checkout", lambda dbapi, *_: used.append(dbapi.driver_connection)
        )
        # Another process holds SQLite's write lock: the INSERT waits for it on the thread.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        sent = asyncio.Event()
        with sqlite_hops(lambda name: sent.set()):
            waiting = asyncio.create_task(at_driver(sessions, statement, {"key": "a", "data": 1}))
            async with asyncio.timeout(10):
                await sent.wait()
            waiting.cancel()
            blocker.rollback()  # the call on the thread goes on without its caller, and ends
            blocker.close()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert engine.pool.checkedout() == 0
        assert await value_at_driver(sessions, _DATA_OF, {"key": "a"}) == 1  # committed
        first, after = used
        assert after is not first  # dropped, never handed back mid-call
    finally:
        await engine.dispose()
