"""The Alembic migrations build the whole schema from an empty database on both engines."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from vincent.db.base import Base


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
