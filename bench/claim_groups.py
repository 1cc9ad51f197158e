"""What group commit of the fires' durable writes could save: CPU per claim, alone vs grouped.

    python -m bench.claim_groups [--db postgres|sqlite|URL] [--burst 1000] [--group 8]
                                 [--rounds 2]

A burst (``bench.engine --burst N``) runs as usual, and every fire's durable write is kept
as it went to the database: on PostgreSQL the one statement (the guarded, fenced claim
UPDATE, its events' INSERT and the audit row's with the signed order) and its arguments,
as asyncpg got them; on SQLite the transaction's statements (``write_after_claim``'s
claim and writes). The burst's database is then set back (its rules ACTIVE, no events
or audit rows, vacuumed) and the same writes are run again, two at a time as the
pre-POST lane runs them, in two ways:

- ``alone``: each write by itself, as today (PostgreSQL: one autocommitted statement on a
  connection checked out of the pool; SQLite: ``write_after_claim``, one call on
  aiosqlite's thread);
- ``grouped``: ``--group`` writes together. PostgreSQL: the same statement for each
  member pipelined by asyncpg's ``executemany`` in one implicit transaction: one round
  trip, one commit (a lower bound of what a grouped write could cost: it neither tells
  which member won nor builds one statement). SQLite: one ``BEGIN IMMEDIATE`` … ``COMMIT``
  on the thread, each member's claim UPDATE run and its writes only if it changed a row.

For each: this process's CPU and the PostgreSQL backends' (``bench.database_cpu``) per
claim, wall time, and how many audit rows were written (every claim must win). The last
line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import greenlet_spawn

import bench.engine as engine_bench
from bench.database_cpu import DatabaseCpu
from vincent.audit import transaction_log
from vincent.db import driver_statement, sqlite_driver
from vincent.db.session import create_engine
from vincent.db.sqlite_driver import Step

LANES = 2  # the pre-POST lane's slots
RESET = (
    "UPDATE trade_rules SET status = 'ACTIVE', triggered_at = NULL, trigger_tx_hash = NULL "
    "WHERE status <> 'ACTIVE'",
    "DELETE FROM trade_rule_events",
    "DELETE FROM transaction_logs",
)

PgWrite = tuple[str, tuple[Any, ...]]
SqliteWrite = tuple[Step, list[Step]]


class Captured:
    """The burst's durable writes, in the order they ran (the worker's warm-up first)."""

    def __init__(self) -> None:
        self.postgres: list[PgWrite] = []
        self.sqlite: list[SqliteWrite] = []


@contextlib.contextmanager
def capturing(captured: Captured) -> Iterator[None]:
    """Keep every fire's durable write while it runs as usual."""
    execute = driver_statement._execute
    write_after_claim = transaction_log.write_after_claim

    async def kept_execute(connection: Any, sql: str, arguments: tuple[Any, ...]) -> Any:
        if sql.startswith("WITH claimed"):
            captured.postgres.append((sql, arguments))
        return await execute(connection, sql, arguments)

    async def kept_write(engine: AsyncEngine, claim: Step, writes: Sequence[Step]) -> bool:
        captured.sqlite.append((claim, list(writes)))
        return await write_after_claim(engine, claim, writes)

    driver_statement._execute = kept_execute  # type: ignore[assignment]
    transaction_log.write_after_claim = kept_write  # type: ignore[assignment]
    try:
        yield
    finally:
        driver_statement._execute = execute  # type: ignore[assignment]
        transaction_log.write_after_claim = write_after_claim  # type: ignore[assignment]


def _group_on_thread(connection: aiosqlite.Connection, members: list[SqliteWrite]) -> int:
    """One transaction for the group on the connection's thread; how many claims won."""
    raw: sqlite3.Connection = connection._conn
    cursor = raw.cursor()
    won = 0
    try:
        cursor.execute("BEGIN IMMEDIATE")
        for claim, writes in members:
            cursor.execute(*claim)
            if cursor.rowcount < 1:
                continue  # lost: nothing of it is written
            won += 1
            for write in writes:
                cursor.execute(*write)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cursor.close()
    return won


class Replay:
    def __init__(self, url: str, captured: Captured, burst: int) -> None:
        self.url = url
        self.postgres = make_url(url).get_backend_name() == "postgresql"
        writes: list[Any] = captured.postgres if self.postgres else captured.sqlite
        self.writes = writes[-burst:]  # the warm-up's writes claim nothing: left out

    def _dsn(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(False)

    async def reset(self) -> int:
        """The rules back to ACTIVE, no events or audit rows; the audit rows there were."""
        if self.postgres:
            import asyncpg  # type: ignore[import-untyped]

            connection = await asyncpg.connect(self._dsn())
            try:
                written = int(await connection.fetchval("SELECT count(*) FROM transaction_logs"))
                for statement in RESET:
                    await connection.execute(statement)
                await connection.execute(
                    "VACUUM ANALYZE trade_rules, trade_rule_events, transaction_logs"
                )
                await connection.execute("CHECKPOINT")
            finally:
                await connection.close()
            return written
        path = make_url(self.url).database
        assert path is not None
        plain = sqlite3.connect(path)
        try:
            written = int(plain.execute("SELECT count(*) FROM transaction_logs").fetchone()[0])
            for statement in RESET:
                plain.execute(statement)
            plain.commit()
            plain.execute("VACUUM")
        finally:
            plain.close()
        return written

    async def run(self, group: int) -> dict[str, Any]:
        """The writes ``group`` at a time (1: alone), two groups in flight at once."""
        engine = create_engine(self.url)
        try:
            if self.postgres:  # the lanes' connections opened before the measure
                pooled = [await engine.raw_connection() for _ in range(LANES)]
                for connection in pooled:
                    await greenlet_spawn(connection.close)
            groups = [self.writes[i : i + group] for i in range(0, len(self.writes), group)]
            database_cpu = DatabaseCpu(self.url)
            await database_cpu.start()
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(self._lane(engine, groups) for _ in range(LANES)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            database_s = await database_cpu.seconds()
        finally:
            await engine.dispose()
        claims = len(self.writes)
        return {
            "group": group,
            "claims": claims,
            "wall_ms_per_claim": round(1000 * wall / claims, 4),
            "client_cpu_ms_per_claim": round(1000 * cpu / claims, 4),
            "database_cpu_ms_per_claim": (
                None if database_s is None else round(1000 * database_s / claims, 4)
            ),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }

    async def _lane(self, engine: AsyncEngine, groups: list[list[Any]]) -> None:
        while groups:
            members = groups.pop(0)
            if self.postgres:
                pooled = await engine.raw_connection()
                connection = pooled.driver_connection
                assert connection is not None
                if len(members) == 1:
                    sql, arguments = members[0]
                    await connection.execute(sql, *arguments)
                else:
                    await connection.executemany(members[0][0], [a for _, a in members])
                await greenlet_spawn(pooled.close)
            elif len(members) == 1:
                claim, writes = members[0]
                await sqlite_driver.write_after_claim(engine, claim, writes)
            else:
                await sqlite_driver._on_thread(engine, _group_on_thread, members)


async def replay(url: str, captured: Captured, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    replaying = Replay(url, captured, args.burst)
    await replaying.reset()
    for _ in range(args.rounds):
        for group in (1, args.group):
            figures = await replaying.run(group)
            figures["written"] = await replaying.reset()
            print(json.dumps(figures), flush=True)
            runs.append(figures)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.claim_groups",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", default="postgres", help="sqlite, postgres or a PostgreSQL URL")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    captured = Captured()
    runs: list[dict[str, Any]] = []
    scratch = engine_bench.scratch_database

    @contextlib.contextmanager
    def replayed_after(kind: str, **options: str) -> Iterator[str]:
        # The burst's own scratch database, replayed on once the burst is done.
        with scratch(kind, **options) as url:
            yield url
            runs.extend(asyncio.run(replay(url, captured, args)))

    engine_bench.scratch_database = replayed_after  # type: ignore[assignment]
    try:
        with capturing(captured):
            burst = engine_bench.main(["--burst", str(args.burst), "--db", args.db])
    finally:
        engine_bench.scratch_database = scratch
    result = {
        "db": burst["db"],
        "burst": args.burst,
        "group": args.group,
        "burst_fired": burst["fired"],
        "burst_cpu_to_last_order_s": burst.get("cpu_to_last_order_s"),
        "runs": runs,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
