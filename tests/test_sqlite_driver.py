"""The one-hop SQLite adapter (``vincent.db.sqlite_driver``): the same results, errors and
transactions as SQLAlchemy's own aiosqlite adapter, in fewer trips to aiosqlite's thread."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

from tests.helpers import sqlite_hops
from vincent.db.session import create_engine
from vincent.db.sqlite_driver import (
    Alone,
    OneHopDBAPI,
    Step,
    StepCursor,
    is_one_hop,
    run_alone,
    transaction,
    write_after_claim,
)

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

    async def counted(
        self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any, **kw: Any
    ) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *a, **kw)  # type: ignore[no-untyped-call]

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
    return await _table(engine)


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


def _traced(engine: AsyncEngine) -> list[str]:
    """Every statement SQLite itself runs on ``engine``'s connections (BEGIN and COMMIT
    included), in order, as its trace callback reports it (installed as each connects, on
    the connection's own thread)."""
    statements: list[str] = []

    def on_connect(dbapi_connection: Any, _record: object) -> None:
        driver: aiosqlite.Connection = dbapi_connection.driver_connection
        await_(driver._execute(driver._conn.set_trace_callback, statements.append))

    event.listen(engine.sync_engine, "connect", on_connect)
    return statements


# A claim (``UPDATE`` of the row 'rule' from 0 to 1) and two writes that follow it.
_CLAIM: Step = ("UPDATE t SET v = 1 WHERE k = ? AND v = 0", ("rule",))
_WRITES: list[Step] = [
    ("INSERT INTO t (k, v) VALUES (?, ?)", ("event", 7)),
    ("INSERT INTO t (k, v) VALUES (?, ?)", ("row", 8)),
]


async def _table(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT k, v FROM t ORDER BY k"))).all()
    return [tuple(row) for row in rows]


async def _table_elsewhere(tmp_path: Path) -> list[tuple[Any, ...]]:
    """``_table`` as another process's engine on the same file sees it (what was committed)."""
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'claim.db'}")
    try:
        return await _table(other)
    finally:
        await other.dispose()


@pytest.fixture
async def claimable(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, list[str]]]:
    """A one-hop engine whose table holds an unclaimed 'rule', and its trace."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'claim.db'}")
    statements = _traced(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text(_SCHEMA))
        await conn.execute(sa.text("INSERT INTO t (k, v) VALUES ('rule', 0)"))
    statements.clear()
    yield engine, statements
    await engine.dispose()


async def test_a_won_claim_and_its_writes_are_one_transaction_in_one_hop(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str]
) -> None:
    engine, statements = claimable

    assert await write_after_claim(engine, _CLAIM, _WRITES) is True

    assert hops == ["_claim_and_write"]
    assert statements == [
        "BEGIN IMMEDIATE",
        "UPDATE t SET v = 1 WHERE k = 'rule' AND v = 0",
        "INSERT INTO t (k, v) VALUES ('event', 7)",
        "INSERT INTO t (k, v) VALUES ('row', 8)",
        "COMMIT",
    ]
    assert await _table(engine) == [("event", 7), ("row", 8), ("rule", 1)]


async def test_a_lost_claim_writes_nothing_and_runs_none_of_its_writes(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str]
) -> None:
    engine, statements = claimable
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE t SET v = 5 WHERE k = 'rule'"))  # claimed elsewhere
    hops.clear()
    statements.clear()

    assert await write_after_claim(engine, _CLAIM, _WRITES) is False

    assert hops == ["_claim_and_write"]
    assert statements == [
        "BEGIN IMMEDIATE",
        "UPDATE t SET v = 1 WHERE k = 'rule' AND v = 0",
        "ROLLBACK",
    ]
    assert await _table(engine) == [("rule", 5)]


async def test_a_duplicate_key_in_a_write_is_sqlalchemys_error_and_undoes_the_claim(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str]
) -> None:
    engine, statements = claimable
    duplicate: Step = ("INSERT INTO t (k, v) VALUES (?, ?)", ("event", 9))

    with pytest.raises(IntegrityError) as raised:
        await write_after_claim(engine, _CLAIM, [*_WRITES[:1], duplicate])

    assert raised.value.statement == duplicate[0]
    # Rolled back in the same call: no hop of the pool's to undo it.
    assert hops == ["_claim_and_write"]
    assert statements[-1] == "ROLLBACK"
    assert await _table(engine) == [("rule", 0)]  # claim and first write rolled back
    # The connection went back to the pool usable: the claim can still be won.
    assert await write_after_claim(engine, _CLAIM, _WRITES) is True
    assert await _table(engine) == [("event", 7), ("row", 8), ("rule", 1)]


async def test_concurrent_claims_from_two_engines_on_one_file_have_one_winner(
    claimable: tuple[AsyncEngine, list[str]], tmp_path: Path
) -> None:
    engine, _ = claimable
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'claim.db'}")  # another process's
    try:
        won = await asyncio.gather(
            *(
                write_after_claim(
                    one, _CLAIM, [("INSERT INTO t (k, v) VALUES (?, ?)", (f"row{n}", n))]
                )
                for n, one in enumerate([engine, other] * 4)
            )
        )
    finally:
        await other.dispose()

    assert won.count(True) == 1
    winner = won.index(True)
    assert await _table(engine) == sorted([("rule", 1), (f"row{winner}", winner)])


async def test_an_engine_on_sqlalchemys_own_adapter_is_refused(tmp_path: Path) -> None:
    stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}")
    try:
        assert not is_one_hop(stock)
        with pytest.raises(TypeError):
            await write_after_claim(stock, _CLAIM, _WRITES)
    finally:
        await stock.dispose()


async def test_an_engine_in_memory_sharing_one_connection_is_not_one_hop() -> None:
    memory = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert not is_one_hop(memory)
    finally:
        await memory.dispose()


async def test_the_service_engine_on_a_file_is_one_hop(engine: AsyncEngine) -> None:
    assert is_one_hop(engine)


_INSERT: Step = ("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 1))


def _checked_out_connections(engine: AsyncEngine) -> list[aiosqlite.Connection]:
    """The aiosqlite connection of each checkout of ``engine``'s pool from now on."""
    connections: list[aiosqlite.Connection] = []

    def on_checkout(dbapi_connection: Any, *_: object) -> None:
        connections.append(dbapi_connection.driver_connection)

    event.listen(engine.sync_engine, "checkout", on_checkout)
    return connections


async def test_a_statement_alone_and_its_commit_are_one_hop_and_seen_elsewhere(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str], tmp_path: Path
) -> None:
    engine, statements = claimable

    assert await run_alone(engine, _INSERT) == Alone(1, None)

    assert hops == ["_statement_alone"]
    # sqlite3's own transaction around a write, as SQLAlchemy's would be: committed.
    assert statements == ["BEGIN ", "INSERT INTO t (k, v) VALUES ('a', 1)", "COMMIT"]
    assert engine.pool.checkedout() == 0  # handed back
    assert await _table_elsewhere(tmp_path) == [("a", 1), ("rule", 0)]


async def test_a_statement_alone_answers_its_first_value_and_its_row_count(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str]
) -> None:
    engine, statements = claimable
    returning: Step = ("INSERT INTO t (k, v) VALUES (?, ?), (?, ?) RETURNING v", ("a", 1, "b", 2))

    assert await run_alone(engine, returning) == Alone(2, 1)
    assert await run_alone(engine, ("UPDATE t SET v = v + 1 WHERE v > ?", (0,))) == Alone(2, None)
    statements.clear()
    assert await run_alone(engine, ("SELECT count(*) FROM t", ())) == Alone(-1, 3)
    assert await run_alone(engine, ("SELECT v FROM t WHERE k = ?", ("none",))) == Alone(-1, None)

    assert hops == ["_statement_alone"] * 4
    # A read opens no transaction: nothing to commit.
    assert statements == ["SELECT count(*) FROM t", "SELECT v FROM t WHERE k = 'none'"]
    assert await _table(engine) == [("a", 2), ("b", 3), ("rule", 0)]


async def test_a_duplicate_key_alone_is_sqlalchemys_error_and_writes_nothing(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str]
) -> None:
    engine, statements = claimable
    await run_alone(engine, _INSERT)
    hops.clear()
    statements.clear()
    duplicate: Step = ("INSERT INTO t (k, v) VALUES (?, ?), (?, ?)", ("b", 2, "a", 3))

    with pytest.raises(IntegrityError) as raised:
        await run_alone(engine, duplicate)

    assert raised.value.statement == duplicate[0]
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    # Rolled back in the same call ('b' too): no hop of the pool's to undo it.
    assert hops == ["_statement_alone"]
    assert statements[-1] == "ROLLBACK"
    assert engine.pool.checkedout() == 0
    assert await _table(engine) == [("a", 1), ("rule", 0)]
    assert await run_alone(engine, ("INSERT INTO t (k, v) VALUES (?, ?)", ("b", 2))) == (1, None)


async def test_a_statement_alone_cancelled_mid_call_drops_its_connection(
    claimable: tuple[AsyncEngine, list[str]], tmp_path: Path
) -> None:
    engine, _ = claimable
    checked_out = _checked_out_connections(engine)
    # Another process holds SQLite's write lock: the INSERT waits for it on the thread.
    blocker = sqlite3.connect(tmp_path / "claim.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    sent = asyncio.Event()
    with sqlite_hops(lambda name: sent.set() if name == "_statement_alone" else None):
        waiting = asyncio.create_task(run_alone(engine, _INSERT))
        async with asyncio.timeout(10):
            await sent.wait()
        waiting.cancel()
        blocker.rollback()  # the call on the thread ends: it goes on without its caller
        blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert engine.pool.checkedout() == 0
    # Its transaction ended on the thread (committed: the caller cannot know, as on
    # PostgreSQL), and the connection was dropped, not handed back mid-call.
    assert await run_alone(engine, ("SELECT count(*) FROM t", ())) == (-1, 2)
    used, after = checked_out
    assert after is not used


async def test_a_statement_alone_on_sqlalchemys_own_adapter_is_refused(tmp_path: Path) -> None:
    stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}")
    try:
        with pytest.raises(TypeError):
            await run_alone(stock, ("SELECT 1", ()))
    finally:
        await stock.dispose()


def _raise_rule_then_log(cursor: StepCursor, log: list[Step]) -> list[Any]:
    """A ``transaction`` work: a write that answers rows, then the writes given."""
    moved = cursor.rows("UPDATE t SET v = v + 1 WHERE k = ? RETURNING v", ("rule",))
    for sql, parameters in log:
        cursor.many(sql, [parameters])
    return moved


async def test_a_transaction_is_its_work_in_one_hop_committed(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str], tmp_path: Path
) -> None:
    engine, statements = claimable

    assert await transaction(engine, _raise_rule_then_log, _WRITES) == [(1,)]

    assert hops == ["_transaction"]
    assert statements == [
        "BEGIN IMMEDIATE",
        "UPDATE t SET v = v + 1 WHERE k = 'rule' RETURNING v",
        "INSERT INTO t (k, v) VALUES ('event', 7)",
        "INSERT INTO t (k, v) VALUES ('row', 8)",
        "COMMIT",
    ]
    assert engine.pool.checkedout() == 0
    assert await _table_elsewhere(tmp_path) == [("event", 7), ("row", 8), ("rule", 1)]


async def test_a_statement_a_transaction_refuses_undoes_all_of_it_and_names_itself(
    claimable: tuple[AsyncEngine, list[str]], hops: list[str]
) -> None:
    engine, statements = claimable
    duplicate: Step = ("INSERT INTO t (k, v) VALUES (?, ?)", ("event", 9))

    with pytest.raises(IntegrityError) as raised:
        await transaction(engine, _raise_rule_then_log, [_WRITES[0], duplicate])

    assert raised.value.statement == duplicate[0]
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    assert hops == ["_transaction"]
    assert statements[-1] == "ROLLBACK"
    assert engine.pool.checkedout() == 0
    assert await _table(engine) == [("rule", 0)]  # the UPDATE and the first INSERT undone
    # The connection went back to the pool usable.
    assert await transaction(engine, _raise_rule_then_log, _WRITES) == [(1,)]


async def test_the_service_engine_keeps_sqlites_temporary_storage_in_memory(
    engine: AsyncEngine,
) -> None:
    # Statement journals of multi-row writes (the trailing flush's UPDATE) stay off disk.
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("PRAGMA temp_store")) == 2  # MEMORY
