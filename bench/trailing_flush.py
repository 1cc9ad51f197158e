"""The trailing flush alone: CPU per raised stop and the longest hold of the event loop.

    python -m bench.trailing_flush [--stops 5000] [--rounds 5] [--db sqlite|postgres|URL]
                                   [--table-stops N]

A scratch database with ``--stops`` ACTIVE trailing stops (``--table-stops``: that many,
of which each round raises ``--stops`` drawn at random, seeded, as the 100k-rule ingest
run's flushes touch rows all over a large table); each round raises them in memory
(``TrailingLevels.record``) and flushes (``TrailingLevels.flush``), so each round writes
``--stops`` trigger rows and twice as many events. Measured per round: the
process's CPU (every thread: the loop's and aiosqlite's), the wall time, and the
most a 1 ms sleep of another task woke up late (about what a price event arriving during
the flush would wait for). The loop thread's own CPU is given apart (``loop_cpu_ms``). The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from bench.common import PG_DEFAULT, percentile, scratch_database
from vincent.db.base import new_ids
from vincent.db.models import Secret, TradeRule
from vincent.db.session import create_engine, create_session_factory
from vincent.enums import TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.trailing_levels import TrailingLevels, TrailingRaise

TICK_S = 0.001


async def _ticker(late_ms: list[float], done: asyncio.Event) -> None:
    """How late each 1 ms sleep wakes up (a spinning ticker would eat the CPU measured)."""
    while not done.is_set():
        start = time.perf_counter()
        await asyncio.sleep(TICK_S)
        late_ms.append(1000 * (time.perf_counter() - start - TICK_S))


async def run(url: str, stops: int, rounds: int, table_stops: int) -> dict[str, Any]:
    engine = create_engine(url)
    session_factory = create_session_factory(engine)
    try:
        async with session_factory() as session, session.begin():
            secret = Secret(
                name="bench",
                encrypted_private_key="not-a-real-key",
                eoa_address="0x" + "1" * 40,
                funder_address="0x" + "2" * 40,
            )
            session.add(secret)
            await session.flush()
            ids = new_ids(max(stops, table_stops))
            for start in range(0, len(ids), 10_000):
                await session.execute(
                    sa.insert(TradeRule),
                    [
                        {
                            "id": rule_id,
                            "secret_id": secret.id,
                            "rule_type": TradeRuleType.TRAILING_STOP,
                            "market_id": "0xcond",
                            "token_id": str(n % 100),
                            "trigger_price": 0.10,
                            "trailing_percent": 10.0,
                            "action": '{"type":"SELL_ALL"}',
                            "status": TradeRuleStatus.ACTIVE,
                        }
                        for n, rule_id in enumerate(ids[start : start + 10_000])
                    ],
                )
        if engine.dialect.name == "postgresql":
            # The statistics a running database has (autovacuum analyzes a table after a
            # bulk load): without them the raise's join plans a scan of the whole table per
            # level, ~2 s a chunk at 100k stops.
            async with engine.connect() as connection:
                await connection.execute(sa.text("ANALYZE trade_rules"))
                await connection.commit()
        levels = TrailingLevels()
        draw = random.Random(7)
        cpu_ms: list[float] = []
        system_ms: list[float] = []  # of cpu_ms: in the kernel (SQLite's reads, writes, fsyncs)
        loop_cpu_ms: list[float] = []
        wall_ms: list[float] = []
        hold_ms: list[float] = []
        for number in range(rounds):
            price = Decimal("0.20") + Decimal(number) / 100
            trigger = price * Decimal("0.9")
            raised = ids if len(ids) == stops else draw.sample(ids, stops)
            for rule_id in raised:
                levels.record(rule_id, TrailingRaise(trigger, price, Decimal(10)))
            gaps: list[float] = []
            done = asyncio.Event()
            ticker = asyncio.create_task(_ticker(gaps, done))
            await asyncio.sleep(0)
            times = os.times()
            cpu, loop_cpu = time.process_time(), time.thread_time()
            wall = time.perf_counter()
            written = await levels.flush(session_factory)
            cpu_ms.append(1000 * (time.process_time() - cpu))
            system_ms.append(1000 * (os.times().system - times.system))
            loop_cpu_ms.append(1000 * (time.thread_time() - loop_cpu))
            wall_ms.append(1000 * (time.perf_counter() - wall))
            done.set()
            await ticker
            hold_ms.append(max(gaps, default=0.0))
            if len(written) != stops:
                raise RuntimeError(f"round {number} wrote {len(written)} of {stops} stops")
        return {
            "db": engine.dialect.name,
            "stops": stops,
            "table_stops": len(ids),
            "rounds": rounds,
            "cpu_ms": [round(value, 1) for value in cpu_ms],
            "cpu_us_per_stop": round(1000 * min(cpu_ms) / stops, 2),
            "system_ms": [round(value, 1) for value in system_ms],
            "loop_cpu_ms": [round(value, 1) for value in loop_cpu_ms],
            "loop_cpu_us_per_stop": round(1000 * min(loop_cpu_ms) / stops, 2),
            "wall_ms": [round(value, 1) for value in wall_ms],
            "loop_late_max_ms": [round(value, 2) for value in hold_ms],
            "loop_late_max_p50_ms": round(percentile(hold_ms, 50), 2),
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stops", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--table-stops", type=int, default=0, help="default: --stops")
    parser.add_argument("--db", default="sqlite")
    args = parser.parse_args()
    kind = "sqlite" if args.db == "sqlite" else "postgres"
    pg_url = PG_DEFAULT if args.db in ("sqlite", "postgres") else args.db
    with scratch_database(kind, pg_url) as url:
        result = asyncio.run(run(url, args.stops, args.rounds, args.table_stops))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
