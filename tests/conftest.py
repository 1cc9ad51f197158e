"""Shared fixtures: every DB test runs on SQLite and on PostgreSQL, schema built by Alembic.

PostgreSQL: ``VINCENT_TEST_PG_URL`` (default the machine's ``test`` database). A fresh
database is created per test session and migrated once; each test starts from emptied
tables. Where PostgreSQL is unreachable its tests skip with a message, except under
``CI=true`` where that is a failure.
SQLite: one migrated template file per session, copied per test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import vincent.db.models  # noqa: F401  (registers every table)
from vincent.db.base import Base
from vincent.db.migrate import upgrade
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.skills.polymarket.exchange_link import share_default_tls_context

# One default TLS context for every httpx client the tests build (the suite builds
# thousands: an SDK client per wallet per test, a client per request in many tests), as
# the service does for its SDK clients.
share_default_tls_context()

PG_ADMIN_URL = os.environ.get("VINCENT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _asyncpg_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


async def _pg_execute(url: str, *statements: str) -> None:
    engine = create_engine(_asyncpg_url(url))
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session."""
    name = f"vincent_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_execute(PG_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except Exception as error:  # any connection failure means "no PostgreSQL"
        message = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {error}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message + " (set VINCENT_TEST_PG_URL to run the PostgreSQL tests)")
    url = _asyncpg_url(
        make_url(_asyncpg_url(PG_ADMIN_URL))
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    upgrade(url)
    yield url
    asyncio.run(_pg_execute(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


# Children before parents. DELETE, not TRUNCATE: on tables this small TRUNCATE's new files
# cost ~50 ms per test, DELETE a few ms; either way every table is empty and committed.
_EMPTY_TABLES = [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]


def empty_postgres(url: str) -> None:
    """Delete every row of every table (the schema and Alembic's version stay)."""
    asyncio.run(_pg_execute(url, *_EMPTY_TABLES))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a copied SQLite file, or emptied PostgreSQL tables."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "vincent.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)
