"""The async engine and session factory, for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from vincent.db.sqlite_driver import one_hop_dbapi
from vincent.private_files import make_private_file

SessionFactory = async_sessionmaker[AsyncSession]

# Recycled before any server or middlebox idle timeout would close them under us.
POOL_RECYCLE_S = 1800
# Connections an engine keeps (and as many again on demand), unless told otherwise.
DEFAULT_POOL_SIZE = 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Cascading deletes need foreign keys on; WAL lets the API read while the worker writes.
    # FULL: a commit is on disk when it returns. With WAL, NORMAL can lose the last commits
    # to a power cut or an OS crash, and a fire's lost durable write would leave its rule
    # ACTIVE after its order went out (~0.15-0.25 ms a commit here; PostgreSQL's commit
    # waits for its WAL flush too).
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # A multi-row UPDATE (the trailing flush's, 64 rules) keeps a statement journal, the
    # pages it changes as they were, to undo that statement alone; past 64 KiB SQLite
    # spills it to a temporary file, two writes a page. In memory it is the same journal
    # without the system calls: ~15 us of CPU less per trailing stop written at 100k
    # rules (never durable either way: it only lives as long as the statement).
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _drop_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # A local check, no round trip: asyncpg marks a connection closed as soon as the event
    # loop reads the server's end of it (restart, terminated backend, idle kill). Raising
    # DisconnectionError makes the pool discard it and check out another. A connection
    # that dies silently still fails its first statement; SQLAlchemy then invalidates the
    # whole pool, and the caller's error is contained like any other transient failure.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def ensure_sqlite_dir(database_url: str) -> None:
    """Create a file-backed SQLite database's directory (0700) and file (0600).

    SQLite gives its ``-wal`` and ``-shm`` files the database file's mode.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if url.database.startswith("file:"):
            return  # a URI filename: its options are SQLite's to interpret
        make_private_file(Path(url.database))


def _is_file_database(database_url: str) -> bool:
    """A SQLite URL that names a file (SQLAlchemy's own test for its pool choice)."""
    url = make_url(database_url)
    return bool(url.database) and url.database != ":memory:" and url.query.get("mode") != "memory"


def create_engine(database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """Build the engine; SQLite gets its pragmas on every connection, and aiosqlite the
    one-hop statement adapter (``sqlite_driver``).

    PostgreSQL: ``pool_size`` connections kept, as many again on demand. No
    ``pool_pre_ping`` (with asyncpg it is BEGIN, SELECT, ROLLBACK on every checkout): a
    connection the server closed is dropped at checkout by a local check instead.
    """
    ensure_sqlite_dir(database_url)
    if database_url.startswith("sqlite"):
        # One thread hop per statement instead of three or four (``sqlite_driver``).
        one_hop = make_url(database_url).get_driver_name() == "aiosqlite"
        options: dict[str, Any] = {"module": one_hop_dbapi()} if one_hop else {}
        # A file: the same pool as PostgreSQL's (SQLAlchemy's default keeps 5, and past
        # the kept connections each checkout opens a new one, a thread, the file and the
        # pragmas, and closes it on return). In memory: SQLAlchemy's one shared connection.
        if _is_file_database(database_url):
            options.update(pool_size=pool_size, max_overflow=pool_size)
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_S,
    )
    event.listen(engine.sync_engine, "checkout", _drop_closed_connection)
    return engine


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def is_postgresql(session_factory: SessionFactory) -> bool:
    """Whether ``session_factory``'s sessions are bound to PostgreSQL."""
    bind = session_factory.kw.get("bind")
    return bind is not None and bind.dialect.name == "postgresql"


@asynccontextmanager
async def one_statement_session(session_factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session (committed on exit) for reads, or for ONE write (a single INSERT or
    UPDATE, atomic by itself). Never use it for two writes, nor a read that a write in it
    depends on.

    On PostgreSQL it autocommits, which saves the BEGIN and the COMMIT (or ROLLBACK)
    round trips; on SQLite, where switching modes costs a thread hop each way, it is an
    ordinary transaction.
    """
    async with session_factory() as session, session.begin():
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


@asynccontextmanager
async def one_statement_connection(
    session_factory: SessionFactory,
) -> AsyncIterator[AsyncConnection]:
    """``one_statement_session`` without the session, for ONE statement run at the driver
    (``execute_at_driver``): a pooled connection of the factory's engine, committed on
    exit (rolled back on an error). No session to begin, flush, commit and close around
    the statement: each of those is a greenlet hop and SQLAlchemy work (~0.4 ms of CPU
    per statement on PostgreSQL, ~0.3 ms on SQLite, measured in issue 14 round 9).

    PostgreSQL autocommits (no BEGIN or COMMIT round trip); SQLite runs the statement in
    a transaction of its own, as ``one_statement_session`` does.
    """
    engine = session_factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"a session factory bound to an engine is needed, was {engine!r}")
    async with engine.connect() as connection:
        autocommit = connection.dialect.name == "postgresql"
        if autocommit:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection
        if not autocommit:
            await connection.commit()
