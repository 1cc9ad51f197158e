"""The engine: a pooled connection the server closed is never handed out (no pre-ping), and
single-statement work on PostgreSQL skips BEGIN/COMMIT."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import text

from vincent.db.models import Secret
from vincent.db.session import SessionFactory, create_engine, one_statement_session


@pytest.mark.postgres
async def test_a_connection_the_server_closed_is_replaced_at_checkout(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1)
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with engine.connect() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        # What a server restart does to an idle pooled connection.
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        async with asyncio.timeout(5):
            while not driver.is_closed():  # noqa: ASYNC110 (asyncpg has no closed event)
                await asyncio.sleep(0.01)

        async with engine.connect() as connection:
            new_pid = await connection.scalar(text("SELECT pg_backend_pid()"))

        assert new_pid != pid
    finally:
        await admin.close()
        await engine.dispose()


async def test_one_statement_work_autocommits_on_postgresql_and_is_committed(
    session_factory: SessionFactory,
) -> None:
    async with one_statement_session(session_factory) as session:
        session.add(
            Secret(name="n", encrypted_private_key="k", eoa_address="0x", funder_address="0x")
        )
        connection = await session.connection()
        level = connection.sync_connection.get_execution_options().get("isolation_level")
        dialect = connection.dialect.name

    assert (level == "AUTOCOMMIT") is (dialect == "postgresql")
    async with session_factory() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Secret)) == 1


async def test_a_sqlite_commit_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    # WAL with synchronous=NORMAL may lose the last commits to a power cut: a fire's
    # durable write (its rule's claim and signed order) must not be one of them.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/full.db")
    try:
        for _ in range(3):  # pooled connections too, not only the first
            async with engine.connect() as connection:
                assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
                assert await connection.scalar(text("PRAGMA synchronous")) == 2  # FULL
    finally:
        await engine.dispose()
