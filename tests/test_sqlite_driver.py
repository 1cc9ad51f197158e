"""The one-hop SQLite adapter (``vincent.db.sqlite_driver``): the same results, errors and
transactions as SQLAlchemy's own aiosqlite adapter, in fewer trips to aiosqlite's thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vincent.db.session import create_engine
from vincent.db.sqlite_driver import OneHopDBAPI

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT UNIQUE, v INTEGER)"
)


async def _engine(tmp_path: Path, name: str) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / name}")
    async with engine.begin() as conn:
        await conn.execute(sa.text(_SCHEMA))
    return engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await _engine(tmp_path, "one_hop.db")
    yield engine
    await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call run on an aiosqlite connection's thread, by function name."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *a)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_the_service_engine_uses_the_one_hop_adapter(engine: AsyncEngine) -> None:
    assert isinstance(engine.dialect.dbapi, OneHopDBAPI)


async def test_rows_counts_ids_and_many_come_back_as_from_sqlite(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await conn.execute(sa.text("INSERT INTO t (k, v) VALUES ('a', 1)"))
        assert first.lastrowid == 1
        await conn.execute(
            sa.text("INSERT INTO t (k, v) VALUES (:k, :v)"),
            [{"k": "b", "v": 2}, {"k": "c", "v": 3}],
        )
        updated = await conn.execute(sa.text("UPDATE t SET v = v * 10 WHERE v >= 2"))
        assert updated.rowcount == 2
        rows = (await conn.execute(sa.text("SELECT k, v FROM t ORDER BY k"))).all()
        assert [tuple(row) for row in rows] == [("a", 1), ("b", 20), ("c", 30)]
        result = await conn.execute(sa.text("SELECT k FROM t ORDER BY k"))
        assert list(result.keys()) == ["k"]
        assert result.fetchone() == ("a",)
        assert [tuple(row) for row in result.fetchall()] == [("b",), ("c",)]


async def test_a_constraint_violation_is_sqlalchemys_error_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("INSERT INTO t (k, v) VALUES ('a', 1)"))
        with pytest.raises(IntegrityError):
            await conn.execute(sa.text("INSERT INTO t (k, v) VALUES ('a', 2)"))
        await conn.rollback()
    async with engine.connect() as conn:
        assert (await conn.scalar(sa.text("SELECT count(*) FROM t"))) == 0


async def test_a_statement_is_one_hop_and_work_without_a_transaction_none_more(
    engine: AsyncEngine, hops: list[str]
) -> None:
    async with engine.connect() as conn:  # warm the pool: connecting has its own hops
        await conn.execute(sa.text("SELECT 1"))
    hops.clear()
    async with engine.begin() as conn:  # a read: no COMMIT, and no ROLLBACK on return
        await conn.execute(sa.text("SELECT count(*) FROM t"))
    assert hops == ["_run"]
    hops.clear()
    async with engine.begin() as conn:  # three writes and their COMMIT
        for key in ("a", "b", "c"):
            await conn.execute(sa.text("INSERT INTO t (k, v) VALUES (:k, 0)"), {"k": key})
    assert hops == ["_run", "_run", "_run", "commit"]
    hops.clear()
    async with engine.connect() as conn:  # left open: the pool's reset rolls it back
        await conn.execute(sa.text("DELETE FROM t"))
    assert hops == ["_run", "rollback"]
    async with engine.connect() as conn:
        assert (await conn.scalar(sa.text("SELECT count(*) FROM t"))) == 3


async def test_concurrent_sessions_on_separate_connections_each_see_their_own_work(
    engine: AsyncEngine,
) -> None:
    async def insert_many(prefix: str) -> None:
        for n in range(20):
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text("INSERT INTO t (k, v) VALUES (:k, :v)"), {"k": f"{prefix}{n}", "v": n}
                )

    await asyncio.gather(*(insert_many(prefix) for prefix in "wxyz"))
    async with engine.connect() as conn:
        assert (await conn.scalar(sa.text("SELECT count(*) FROM t"))) == 80


# One unit of work: (statement, params) pairs then commit (True) or roll back (False).
_STATEMENTS = st.sampled_from(
    [
        "INSERT INTO t (k, v) VALUES (:k, :v)",
        "UPDATE t SET v = v + :v WHERE k = :k",
        "DELETE FROM t WHERE k = :k",
        "INSERT OR IGNORE INTO t (k, v) VALUES (:k, :v)",
    ]
)
_WORK = st.lists(
    st.tuples(
        st.lists(
            st.tuples(_STATEMENTS, st.sampled_from("abc"), st.integers(0, 5)),
            min_size=1,
            max_size=4,
        ),
        st.booleans(),
    ),
    max_size=6,
)


async def _apply(engine: AsyncEngine, work: list[Any]) -> list[tuple[Any, ...]]:
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM t"))
    for statements, commit in work:
        try:
            async with engine.connect() as conn:
                for sql, key, value in statements:
                    await conn.execute(sa.text(sql), {"k": key, "v": value})
                if commit:
                    await conn.commit()
                else:
                    await conn.rollback()
        except IntegrityError:
            pass  # a duplicate key: the whole unit is rolled back, on both engines
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT k, v FROM t ORDER BY k"))).all()
    return [tuple(row) for row in rows]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(work=_WORK)
def test_any_units_of_work_leave_the_same_table_as_sqlalchemys_own_adapter(
    tmp_path: Path, work: list[Any]
) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        one_hop = await _engine(tmp_path, "one_hop.db")
        stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}")
        try:
            async with stock.begin() as conn:
                await conn.execute(sa.text(_SCHEMA))
            return await _apply(one_hop, work), await _apply(stock, work)
        finally:
            await one_hop.dispose()
            await stock.dispose()

    ours, theirs = asyncio.run(both())
    assert ours == theirs
