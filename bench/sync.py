"""The poll tick's index sync on its own: full and delta, wall time and the longest loop hold.

    python -m bench.sync [--rules 100000] [--tokens 10000] [--changed 1000] [--db sqlite|postgres]

A scratch database with N ACTIVE rules (bulk-inserted, as ``bench.engine`` does), a
``PollTick`` over a ``RuleRegistry`` with no feed, skill or dispatcher behind it. Runs: the
first (full) sync, a delta with nothing changed, a delta after ``--changed`` rules were
moved through the database (``update_rule``), and a forced full sync of a loaded index
(``--gc-freeze``: after ``gc.freeze()`` of what the first sync loaded).
Beside each, a task sleeping 1 ms at a time records how late it woke: the longest time the
sync held the event loop. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from decimal import Decimal
from typing import Any

from cryptography.fernet import Fernet

from bench.common import scratch_database
from bench.engine_setup import create_tenants, insert_rules
from bench.scenario import build_scenario
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.session import create_engine, create_session_factory
from vincent.services.trade_manager.breaker import CircuitBreaker
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.poll_tick import PollTick
from vincent.services.trade_manager.rule_manager import update_rule
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import SystemClock


class _NoDispatcher:
    def schedule_rearm(self, *_args: Any) -> None: ...
    def rearm(self, *_args: Any) -> None: ...
    def sync_tokens(self) -> None: ...


async def _held_ms(work: Any) -> tuple[float, float]:
    """Run ``work``; return (wall ms, longest loop hold ms seen by a 1 ms sleeper)."""
    done = asyncio.Event()
    longest = 0.0

    async def sample() -> None:
        nonlocal longest
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            longest = max(longest, time.perf_counter() - before - 0.001)

    sampler = asyncio.create_task(sample())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await work
    wall = time.perf_counter() - started
    done.set()
    await sampler
    return wall * 1000, longest * 1000


def _rows(metrics: WorkerMetrics, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "vincent_trade_manager_rule_sync_rows_total", {"kind": kind}
    )
    return value or 0.0


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = create_engine(url)
    session_factory = create_session_factory(engine)
    scenario = build_scenario(
        rules=args.rules, tokens=args.tokens, events=args.tokens, tenants=10,
        fire_fraction=0.0, seed=7,
    )  # fmt: skip
    tenants = await create_tenants(session_factory, KeyBox(Fernet.generate_key().decode()), 10)
    await insert_rules(session_factory, scenario, tenants)
    settings = Settings(database_url=url, trade_manager_sync_overlap_s=0.0)
    metrics = WorkerMetrics()
    rules = RuleRegistry()
    tick = PollTick(
        settings=settings,
        session_factory=session_factory,
        skill=object(),  # type: ignore[arg-type]
        rules=rules,
        executor=object(),  # type: ignore[arg-type]
        dispatcher=_NoDispatcher(),  # type: ignore[arg-type]
        feed_books=None,
        tracked_since_s={},
        breaker=CircuitBreaker(5, 60.0),
        metrics=metrics,
        clock=SystemClock(),
    )
    result: dict[str, Any] = {"db": "postgres" if "postgresql" in url else "sqlite"}
    result["rules"] = args.rules
    result["gc_freeze"] = args.gc_freeze
    steps: list[tuple[str, Any]] = [
        ("first_full", lambda: tick.sync_index()),
        ("delta_unchanged", lambda: tick.sync_index()),
    ]
    for name, step in steps:
        before = _rows(metrics, "full") + _rows(metrics, "delta")
        wall, held = await _held_ms(step())
        rows = _rows(metrics, "full") + _rows(metrics, "delta") - before
        result[name] = {"wall_ms": round(wall, 1), "loop_held_max_ms": round(held, 1), "rows": rows}
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # what the first sync loaded: out of every later collection
    changed = scenario.rules[: args.changed]
    async with session_factory() as session, session.begin():
        for rule in changed:
            secret_id = tenants[scenario.tenant_of[rule.id]].secret_id
            await update_rule(session, secret_id, rule.id, rule.trigger_price + Decimal("0.001"))
    for name, step in (
        ("delta_changed", lambda: tick.sync_index()),
        ("delta_unchanged_again", lambda: tick.sync_index()),
        ("full_of_a_loaded_index", lambda: tick.sync_index(full=True)),
    ):
        before = _rows(metrics, "full") + _rows(metrics, "delta")
        wall, held = await _held_ms(step())
        rows = _rows(metrics, "full") + _rows(metrics, "delta") - before
        result[name] = {"wall_ms": round(wall, 1), "loop_held_max_ms": round(held, 1), "rows": rows}
    result["held_rules"] = len(rules.index)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    await engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=1_000)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after the load")
    args = parser.parse_args()
    kind = "sqlite" if args.db == "sqlite" else "postgres"
    pg = {} if args.db in ("sqlite", "postgres") else {"pg_url": args.db}
    with scratch_database(kind, **pg) as url:
        result = asyncio.run(run(args, url))
    for name, value in result.items():
        print(f"{name}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
