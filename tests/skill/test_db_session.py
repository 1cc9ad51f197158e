"""The PostgreSQL pool without pre-ping: a connection the server closed is never handed out."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from vincent.db.session import create_engine

pytestmark = pytest.mark.postgres


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
