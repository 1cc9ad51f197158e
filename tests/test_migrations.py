"""The Alembic migrations build the whole schema from an empty database on both engines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import PG_ADMIN_URL, _asyncpg_url, _pg_execute
from vincent.db.base import Base
from vincent.db.migrate import downgrade, upgrade
from vincent.db.session import create_engine


async def test_migrated_schema_has_every_table_and_column(engine: AsyncEngine) -> None:
    def inspect(conn: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(conn)
        return {
            t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()
        }

    async with engine.connect() as conn:
        tables = await conn.run_sync(inspect)
    for table in Base.metadata.sorted_tables:
        assert table.name in tables, table.name
        assert {c.name for c in table.columns} == tables[table.name], table.name


async def test_seed_indexes_and_unique_constraint_exist(engine: AsyncEngine) -> None:
    def inspect(conn: sa.Connection) -> tuple[list[list[str]], list[list[str]]]:
        inspector = sa.inspect(conn)
        indexes = [list(ix["column_names"]) for ix in inspector.get_indexes("trade_rules")]
        uniques = [
            list(uq["column_names"])
            for uq in inspector.get_unique_constraints("trade_monitored_positions")
        ]
        return indexes, uniques

    async with engine.connect() as conn:
        indexes, uniques = await conn.run_sync(inspect)
    assert ["secret_id", "status"] in indexes
    assert ["status"] in indexes
    assert ["token_id"] in indexes
    assert ["secret_id", "market_id", "token_id", "side"] in uniques


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own: the test runs the migrations."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"vincent_migrations_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_execute(PG_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(_asyncpg_url(PG_ADMIN_URL)).set(database=name).render_as_string(False)
    finally:
        asyncio.run(_pg_execute(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _log_indexes(database_url: str) -> list[list[str]]:
    async def read() -> list[list[str]]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: [
                        list(index["column_names"])
                        for index in sa.inspect(sync).get_indexes("transaction_logs")
                    ]
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_0009_adds_the_logs_secret_updated_at_index_and_takes_it_back(
    fresh_database_url: str,
) -> None:
    upgrade(fresh_database_url, "0008_policies_version")
    assert ["secret_id", "updated_at"] not in _log_indexes(fresh_database_url)
    upgrade(fresh_database_url)
    assert ["secret_id", "updated_at"] in _log_indexes(fresh_database_url)
    downgrade(fresh_database_url, "0008_policies_version")
    indexes = _log_indexes(fresh_database_url)
    assert ["secret_id", "updated_at"] not in indexes
    assert ["secret_id", "status", "created_at"] in indexes  # the others stay
    upgrade(fresh_database_url)
    assert ["secret_id", "updated_at"] in _log_indexes(fresh_database_url)
