"""Test helpers shared by several suites: tenants with real API keys, sync DB access."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite
from eth_account import Account
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from vincent.crypto import KeyBox, generate_encryption_key
from vincent.db.session import create_engine, create_session_factory
from vincent.services.secrets import create_secret

T = TypeVar("T")

TEST_ENCRYPTION_KEY = generate_encryption_key()


@dataclass(frozen=True)
class Tenant:
    secret_id: str
    api_key: str
    api_key_id: str
    address: str
    private_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def run_in_db(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed session (from sync test code)."""

    async def main() -> T:
        engine = create_engine(database_url)
        try:
            async with create_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def make_tenant(session: AsyncSession, name: str = "tenant") -> Tenant:
    account = Account.create()
    key = account.key.hex()
    created = await create_secret(session, KeyBox(TEST_ENCRYPTION_KEY), name=name, private_key=key)
    return Tenant(
        secret_id=created.secret.id,
        api_key=created.api_key.key,
        api_key_id=created.api_key.id,
        address=created.secret.eoa_address,
        private_key=key,
    )


def create_tenant(database_url: str, name: str = "tenant") -> Tenant:
    return run_in_db(database_url, lambda session: make_tenant(session, name))


@contextmanager
def driver_queries(engine: AsyncEngine, on_query: Callable[[str], None]) -> Iterator[None]:
    """PostgreSQL: ``on_query`` gets the text of every query asyncpg logs on a connection
    checked out while inside, once each: those run at the driver itself
    (``write_at_driver``, ``value_at_driver``), which SQLAlchemy's cursor events do not
    see, and SQLAlchemy's BEGIN, COMMIT and executemany. (A single statement SQLAlchemy
    runs is a prepared statement's execution, which asyncpg does not log.) asyncpg calls
    ``on_query`` soon after the query finished (``loop.call_soon``): yield to the loop
    once (``await asyncio.sleep(0)``) before reading what the last query reported."""
    attached: dict[int, tuple[Any, Callable[[Any], None]]] = {}

    def logged(query: Any) -> None:
        on_query(query.query)

    def on_checkout(dbapi_connection: Any, *_: object) -> None:
        driver = dbapi_connection.driver_connection
        if id(driver) not in attached:  # a connection checked out again: logged once
            driver.add_query_logger(logged)
            attached[id(driver)] = (driver, logged)

    event.listen(engine.sync_engine.pool, "checkout", on_checkout)
    try:
        yield
    finally:
        event.remove(engine.sync_engine.pool, "checkout", on_checkout)
        for driver, callback in attached.values():
            driver.remove_query_logger(callback)


@contextmanager
def _sqlite_calls(on_call: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
    """SQLite: ``on_call(name, args)`` for every function sent to an aiosqlite connection's
    thread while inside, as it is sent."""
    original = aiosqlite.Connection._execute

    async def counted(
        self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        on_call(getattr(fn, "__name__", repr(fn)), args)
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]


@contextmanager
def sqlite_hops(on_hop: Callable[[str], None]) -> Iterator[None]:
    """SQLite: ``on_hop`` gets the name of every function sent to an aiosqlite connection's
    thread while inside (each one a hop there and back), as it is sent: ``_run`` for one
    statement (``sqlite_driver``), ``_statement_alone`` for one statement and its commit
    (``run_alone``), ``_claim_and_write`` for a whole claim's transaction, ``commit``,
    ``rollback``, ``close``..."""
    with _sqlite_calls(lambda name, _args: on_hop(name)):
        yield


def transaction_statements(args: tuple[Any, ...]) -> list[str]:
    """The SQL a ``sqlite_driver.transaction`` call (its thread's arguments: connection,
    work, the work's arguments) may run: the work's arguments that are text."""
    return [value for value in args[2] if isinstance(value, str)]


@contextmanager
def sqlite_transactions(on_statement: Callable[[str], None]) -> Iterator[None]:
    """SQLite: ``on_statement(sql)`` for each statement a ``sqlite_driver.transaction`` sent
    to aiosqlite's thread while inside may run (``transaction_statements``), as it is sent:
    before the transaction waits for SQLite's write lock."""

    def on_call(name: str, args: tuple[Any, ...]) -> None:
        if name == "_transaction":
            for sql in transaction_statements(args):
                on_statement(sql)

    with _sqlite_calls(on_call):
        yield


@contextmanager
def statements_sent(
    engine: AsyncEngine, on_statement: Callable[[str, bool], None]
) -> Iterator[None]:
    """``on_statement(sql, at_driver)`` for each statement sent to the database while
    inside: SQLAlchemy's (its cursor events; ``at_driver`` False) and, on PostgreSQL,
    those asyncpg logs (``driver_queries``; ``at_driver`` True): run at the driver
    itself, plus SQLAlchemy's BEGIN and COMMIT (and an executemany, also seen as
    SQLAlchemy's). The logged ones come soon after their query: see ``driver_queries``.
    On SQLite, ``at_driver`` True for each statement sent to aiosqlite's thread with no
    SQLAlchemy around it, as it is sent: one run by itself (``sqlite_driver.run_alone``:
    ``write_at_driver``, ``value_at_driver``), or those of a claim's transaction
    (``write_after_claim``: all its statements, though the writes run only if the claim
    wins) or of a ``transaction`` (``transaction_statements``: each it may run)."""

    def on_cursor(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        on_statement(statement, False)

    def on_query(query: str) -> None:
        on_statement(query, True)

    def on_call(name: str, args: tuple[Any, ...]) -> None:
        if name == "_statement_alone":  # (connection, (sql, parameters))
            on_statement(args[1][0], True)
        elif name == "_claim_and_write":  # (connection, claim, writes): each may run
            for sql, _parameters in (args[1], *args[2]):
                on_statement(sql, True)
        elif name == "_transaction":  # (connection, work, work's arguments): each may run
            for sql in transaction_statements(args):
                on_statement(sql, True)

    event.listen(engine.sync_engine, "before_cursor_execute", on_cursor)
    try:
        if engine.dialect.name == "postgresql":
            with driver_queries(engine, on_query):
                yield
        else:
            with _sqlite_calls(on_call):
                yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_cursor)
