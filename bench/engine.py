"""Engine benchmark: price events over the real WebSocket to signed sells at the exchange.

    python -m bench.engine [--rules 10000] [--tokens 1000] [--events 20000] [--tenants 100]
                           [--mode index|naive] [--compare] [--db sqlite|postgres|URL]
                           [--fire-fraction 0.01] [--rate 0] [--seed 7]
                           [--single N [--spacing-s 0.1] | --burst M] [--no-gc-freeze]

One run: a scratch database with K tenants and N ACTIVE rules over T tokens (stop-losses,
take-profits and trailing stops at various distances; bulk-inserted), the local exchange in
its own process, the worker (``--mode index``: ``TradeMonitoringWorker``; ``--mode naive``:
the seed's query-per-message consumer in ``bench/naive.py``) in this one. The exchange
walks every token along a seeded path (E events in all, ``--rate`` steps/s offered, 0 = as
fast as it can) placed so that about ``--fire-fraction`` of the rules fire.

Measured with the exchange's clock: crossing price event sent (its frame handed to the
worker's socket) → that rule's order received (p50/p90/p99/max); ``queued_p50_ms`` and
``queued_p99_ms`` count from when the exchange queued the event instead, the only measure
before round 11 (it adds the exchange's own work in between, ~1 ms on this machine).
Ingest: events consumed per second from the first send to the last event consumed, with
the largest backlog (sent, not yet consumed). This process's CPU seconds per 1k events,
RSS, and bytes per rule (tracemalloc around loading the rules).
Correctness: fired set == brute-force reference, exactly one order per fired rule.
The event loop's lag over the drive (the worker's ``LoopLagMonitor``): p50/p99/max.
The last line is one JSON object (``--compare``: both runs and their ratios).

``--single N``: N single fires ``--spacing-s`` apart on a quiet book (default 1,000 rules
over 100 tokens): each step crosses exactly one rule. ``--burst M``: M stop-losses of
``--tenants`` tenants at one price on one token, crossed by one event, beside the quiet
book; ``first_order_ms`` / ``last_order_ms`` are the first and the last order out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import sqlalchemy as sa

from bench.common import PG_DEFAULT, percentile, scratch_database
from bench.database_cpu import DatabaseCpu
from bench.engine_results import Sample, check_run, ingest, latency_summary
from bench.engine_setup import (
    create_tenants,
    insert_rules,
    prepare_exchange,
    run_paths,
    warm_skill,
)
from bench.exchange_process import ExchangeProcess, exchange_process
from bench.fire_steps import FireSteps
from bench.naive import NaiveConsumer
from bench.scenario import (
    Scenario,
    build_burst_scenario,
    build_scenario,
    build_single_scenario,
)
from bench.slow_callbacks import SlowCallbacks
from bench.sql_timing import SqlTiming
from vincent.config import Settings
from vincent.crypto import KeyBox, generate_encryption_key
from vincent.db.models import TradeRule, TransactionLog
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.enums import TradeRuleStatus
from vincent.services.trade_manager.loop_lag import LoopLagMonitor
from vincent.services.trade_manager.market_messages import ParsedFrame, parse_frame
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.services.trade_manager.polymarket_websocket import MarketFeed, MarketFeedStatus
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill

SAMPLE_INTERVAL_S = 0.01
# A burst's CPU is sampled every 5th sample (50 ms): reading three processes' CPU is not free.
CPU_SAMPLE_EVERY = 5
SETTLE_TIMEOUT_S = float(os.environ.get("BENCH_SETTLE_TIMEOUT_S", "300"))
KEYS = (
    "mode",
    "rules",
    "tokens",
    "events",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "msgs_per_s",
    "cpu_s_per_1k",
    "rss_mb",
    "bytes_per_rule",
    "fired",
    "orders",
    "mismatches",
)


class EventCounter:
    """Counts market events as the feed parses them (bench instrumentation only).

    Installed as the default of ``MarketFeed``'s ``parse_frame`` argument, so the worker's
    own feed uses it without a change to the worker.
    """

    def __init__(self) -> None:
        self.events = 0
        self._original = parse_frame

    def parse(self, frame: str | bytes) -> ParsedFrame:
        parsed = self._original(frame)
        self.events += len(parsed.events)
        return parsed

    @contextlib.contextmanager
    def installed(self) -> Iterator[EventCounter]:
        defaults = MarketFeed.__init__.__kwdefaults__
        assert defaults is not None and "parse_frame" in defaults
        defaults["parse_frame"] = self.parse
        try:
            yield self
        finally:
            defaults["parse_frame"] = self._original


@dataclass
class Consumer:
    """The index worker or the naive consumer, behind one small surface."""

    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    ready: Callable[[], bool]
    wait_idle: Callable[[], Awaitable[None]]
    backlog: Callable[[], int]  # events received but not yet handled (naive queue)
    feed: Callable[[], MarketFeedStatus]
    loop_lag: LoopLagMonitor
    http_prices: Callable[[], float] = lambda: 0.0  # prices applied from the poll tick's HTTP books
    # Rule rows the poll tick's index syncs read: (full, delta) so far.
    sync_rows: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0)
    # Trailing levels the flush has written so far (each an UPDATE row and two events).
    trailing_writes: Callable[[], float] = lambda: 0.0


def _worker_consumer(worker: TradeMonitoringWorker) -> Consumer:
    def ready() -> bool:
        status = _feed_of(worker).status()
        return (
            status.connected
            and status.messages_received >= status.wanted_connections
            and worker.ticks_completed >= 1
            and _warmup_pending(worker) == 0
        )

    return Consumer(
        start=worker.start,
        stop=worker.stop,
        ready=ready,
        wait_idle=worker.wait_for_idle,
        backlog=lambda: 0,
        feed=lambda: _feed_of(worker).status(),
        loop_lag=worker.loop_lag,
        http_prices=lambda: (
            worker.metrics_registry.get_sample_value(
                "vincent_trade_manager_price_updates_total", {"source": "poll"}
            )
            or 0.0
        ),
        sync_rows=lambda: _sync_rows(worker),
        trailing_writes=lambda: (
            worker.metrics_registry.get_sample_value("vincent_trade_manager_trailing_writes_total")
            or 0.0
        ),
    )


def _sync_rows(worker: TradeMonitoringWorker) -> tuple[float, float]:
    def rows(kind: str) -> float:
        value = worker.metrics_registry.get_sample_value(
            "vincent_trade_manager_rule_sync_rows_total", {"kind": kind}
        )
        return value or 0.0

    return rows("full"), rows("delta")


def _warmup_pending(worker: TradeMonitoringWorker) -> int:
    # Benchmark probe: the worker warms every (secret, token) in the background after it
    # starts; steady state begins once that queue is empty.
    warmup = getattr(worker, "_warmup", None)
    queue = getattr(warmup, "_queue", None)
    return 0 if queue is None else int(queue.qsize())


def _feed_of(worker: TradeMonitoringWorker) -> MarketFeed:
    feed = worker.feed
    assert feed is not None
    return feed


def _naive_consumer(naive: NaiveConsumer) -> Consumer:
    def ready() -> bool:
        status = naive.feed.status()
        return status.connected and status.messages_received >= status.wanted_connections

    async def wait_idle() -> None:
        await _until(lambda: naive.idle, SETTLE_TIMEOUT_S, "naive executions")

    # The naive consumer has no lag monitor of its own: the benchmark runs one beside it.
    loop_lag = LoopLagMonitor()
    stopping = asyncio.Event()
    lag_task: list[asyncio.Task[None]] = []

    async def start() -> None:
        await naive.start()
        lag_task.append(asyncio.create_task(loop_lag.run(stopping)))

    async def stop() -> None:
        stopping.set()
        await asyncio.gather(*lag_task)
        await naive.stop()

    return Consumer(
        start=start,
        stop=stop,
        ready=ready,
        wait_idle=wait_idle,
        backlog=lambda: naive.backlog,
        feed=naive.feed.status,
        loop_lag=loop_lag,
    )


async def _until(
    predicate: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]
) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110 - polls state owned elsewhere
                await asyncio.sleep(SAMPLE_INTERVAL_S)
    except TimeoutError:
        described = what if isinstance(what, str) else what()
        raise RuntimeError(f"timed out after {timeout_s} s waiting for {described}") from None


def _settings(exchange: ExchangeProcess, database_url: str, args: argparse.Namespace) -> Settings:
    stale = (
        {} if args.stale_after_s is None else {"trade_manager_stale_after_s": args.stale_after_s}
    )
    return Settings(
        **stale,
        database_url=database_url,
        polymarket_clob_url=exchange.base_url,
        polymarket_ws_url=exchange.ws_url,
        polymarket_data_api_url=f"{exchange.base_url}/data-api",
        polymarket_gamma_url=f"{exchange.base_url}/gamma",
        polymarket_relayer_url=f"{exchange.base_url}/relayer",
        polymarket_http_timeout_s=10.0,
        trade_manager_poll_interval_s=args.poll_interval_s,
    )


@dataclass(frozen=True, slots=True)
class Outcomes:
    fired: set[str]
    order_rule: dict[str, str]  # exchange order id → rule id (audit rows)
    statuses: dict[str, int]  # status of the fired rules → count
    settling: int  # fired rules TRIGGERED without an order id yet: their sale is settling
    errors: list[str]  # a few error messages of rules that did not execute


async def _outcomes(session_factory: SessionFactory) -> Outcomes:
    """Rules that left ACTIVE, and exchange order id → rule id from the audit rows."""
    async with session_factory() as session:
        left = (
            await session.execute(
                sa.select(
                    TradeRule.id,
                    TradeRule.status,
                    TradeRule.error_message,
                    TradeRule.trigger_tx_hash,
                ).where(TradeRule.status != TradeRuleStatus.ACTIVE)
            )
        ).all()
        rows = await session.execute(
            sa.select(TransactionLog.order_id, TransactionLog.request_data).where(
                TransactionLog.order_id.is_not(None)
            )
        )
        order_rule = {
            str(order_id): str(data.get("ruleId"))
            for order_id, data in rows
            if isinstance(data, dict) and data.get("ruleId")
        }
    statuses = Counter(str(status) for _, status, _, _ in left)
    settling = sum(
        1 for _, status, _, tx in left if status is TradeRuleStatus.TRIGGERED and tx is None
    )
    errors = sorted({str(error) for _, _, error, _ in left if error})[:3]
    fired = {rule_id for rule_id, _, _, _ in left}
    return Outcomes(fired, order_rule, dict(statuses), settling, errors)


@contextlib.asynccontextmanager
async def _database(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def run_once(
    args: argparse.Namespace, mode: str, scenario: Scenario, database_url: str
) -> dict[str, Any]:
    keybox = KeyBox(generate_encryption_key())
    process = psutil.Process()
    phases: dict[str, float] = {}
    started = time.perf_counter()
    async with exchange_process() as exchange, _database(database_url) as session_factory:
        tenants = await create_tenants(session_factory, keybox, args.tenants)
        await insert_rules(session_factory, scenario, tenants)
        await prepare_exchange(exchange, scenario, tenants)
        if args.settlement_delay_s:
            # Trades stay MATCHED this long: a fire's settlement check answers "settling",
            # as Polymarket's does for seconds after a match.
            await exchange.call("POST", "/settlement", {"delay_s": args.settlement_delay_s})
        settings = _settings(exchange, database_url, args)
        skill: PolymarketSkill = create_polymarket_skill(settings, session_factory, keybox)
        try:
            await warm_skill(skill, scenario, tenants)
            phases["setup_s"] = time.perf_counter() - started
            counter = EventCounter()
            steps = FireSteps()
            sql = SqlTiming()
            with (
                counter.installed(),
                steps.installed() if args.fire_steps or args.sql_timing else _nothing(),
                sql.installed() if args.sql_timing else _nothing(),
            ):
                if mode == "index":
                    worker = TradeMonitoringWorker(settings, session_factory, skill)
                    consumer = _worker_consumer(worker)
                else:
                    naive = NaiveConsumer(exchange.ws_url, session_factory, skill)
                    consumer = _naive_consumer(naive)
                gc.collect()
                rss_before = process.memory_info().rss
                tracemalloc.start()
                loaded = time.perf_counter()
                await consumer.start()
                phases["load_s"] = time.perf_counter() - loaded
                gc.collect()
                if args.gc_freeze:
                    gc.freeze()  # the rules just loaded: out of every later collection
                if args.gc_threshold:
                    gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
                traced_bytes = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
                rss_loaded = process.memory_info().rss
                steps.clear()
                sql.clear()
                try:
                    result = await _drive(
                        args,
                        scenario,
                        exchange,
                        consumer,
                        counter,
                        process,
                        DatabaseCpu(database_url),
                    )
                finally:
                    await consumer.stop()
            outcomes = await _outcomes(session_factory)
        finally:
            await skill.aclose()
        checked = check_run(scenario, result.pop("timing"), outcomes.fired, outcomes.order_rule)
        steps.add_crossings(checked.crossings)
    summary = latency_summary(checked.latencies_ms)
    figures = {
        "mode": mode,
        "shape": scenario_shape(args),
        "db": args.db if args.db in ("sqlite", "postgres") else "postgres",
        "rules": len(scenario.rules),
        "tokens": len(scenario.paths),
        "events": scenario.events,
        "tenants": scenario.tenants,
        "rate": args.rate,
        "gc_freeze": args.gc_freeze,
        "gc_threshold": list(gc.get_threshold()),
        "settlement_delay_s": args.settlement_delay_s,
        **summary,
        "queued_p50_ms": round(percentile(checked.queued_latencies_ms, 50), 3),
        "queued_p99_ms": round(percentile(checked.queued_latencies_ms, 99), 3),
        **(
            {"first_order_ms": summary["min_ms"], "last_order_ms": summary["max_ms"]}
            if args.burst
            else {}
        ),
        **result,
        "rss_mb": round(process.memory_info().rss / 2**20, 1),
        "rss_before_load_mb": round(rss_before / 2**20, 1),
        "rss_load_delta_mb": round((rss_loaded - rss_before) / 2**20, 1),
        "bytes_per_rule": round(traced_bytes / max(len(scenario.rules), 1)),
        "expected_fired": len(scenario.expected),
        "fired": checked.fired,
        "orders": checked.orders,
        "latency_samples": len(checked.latencies_ms),
        "mismatches": checked.mismatches,
        "missed": checked.missed[:5],
        "unexpected": checked.unexpected[:5],
        "wrong_order_count": checked.wrong_order_count[:5],
        "mismatch_rules": _describe(
            scenario, [*checked.missed, *checked.unexpected, *checked.wrong_order_count][:6]
        ),
        "unattributed_orders": checked.unattributed_orders,
        "statuses": outcomes.statuses,
        "settling": outcomes.settling,
        "errors": outcomes.errors,
        **{k: round(v, 2) for k, v in phases.items()},
        **({"fire_steps": steps.summary()} if args.fire_steps else {}),
        **({"first_fires": steps.first_fires()} if args.fire_steps and args.burst else {}),
        **({"sql": sql.summary()} if args.sql_timing else {}),
    }
    return figures


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _describe(scenario: Scenario, rule_ids: list[str]) -> list[str]:
    """A few words per rule for the report: type, source, trailing %, expected step."""
    by_id = {rule.id: rule for rule in scenario.rules}
    return [
        f"{by_id[r].rule_type.value}/{by_id[r].trigger_source.value}"
        f" trigger {by_id[r].trigger_price} trailing {by_id[r].trailing_percent}"
        f" step {scenario.expected.get(r)}"
        for r in rule_ids
        if r in by_id
    ]


async def _drive(
    args: argparse.Namespace,
    scenario: Scenario,
    exchange: ExchangeProcess,
    consumer: Consumer,
    counter: EventCounter,
    process: psutil.Process,
    database_cpu: DatabaseCpu,
) -> dict[str, Any]:
    ready_from = time.perf_counter()
    await _until(
        consumer.ready,
        3 * SETTLE_TIMEOUT_S,
        "the feed's snapshots, the first poll tick and the skill warm-up",
    )
    ready_s = time.perf_counter() - ready_from
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # and what the warm-up built (SDK clients, market caches)
    await exchange.call("DELETE", "/timing")
    published_before = (await exchange.call("GET", "/status"))["messages_published"]
    counter.events = 0
    samples: list[Sample] = []
    stop_sampling = asyncio.Event()

    # A burst's CPU over time (ns, worker, exchange, database), to split it at its last order.
    cpu_samples: list[tuple[int, float, float, float]] = []

    def sample_cpu() -> None:
        cpu_samples.append(
            (
                time.perf_counter_ns(),
                time.process_time(),
                sum(exchange_cpu.cpu_times()[:2]),
                database_cpu.so_far_s(),
            )
        )

    async def sample() -> None:
        while not stop_sampling.is_set():
            samples.append(Sample(time.perf_counter_ns(), counter.events - consumer.backlog()))
            if args.burst and len(samples) % CPU_SAMPLE_EVERY == 1:
                sample_cpu()
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    feed_before = consumer.feed()
    http_before = consumer.http_prices()
    trailing_before = consumer.trailing_writes()
    sync_before = consumer.sync_rows()
    profiler = _start_profiler(args.profile)
    consumer.loop_lag.reset()
    pauses = GcPauses()
    gc.callbacks.append(pauses.callback)
    slow = SlowCallbacks()
    if args.slow_callbacks:
        slow.start()
    exchange_cpu = psutil.Process(exchange.pid)
    exchange_cpu_before = sum(exchange_cpu.cpu_times()[:2])
    await database_cpu.start()
    cpu_before = sum(process.cpu_times()[:2])
    kernel_before = process.cpu_times().system
    loop_thread_before = time.thread_time()  # this task runs on the event loop's thread
    system_before = psutil.cpu_times()
    wall_before = time.perf_counter()
    sampler = asyncio.create_task(sample())
    try:
        await run_paths(exchange, scenario, args.rate)
        published = (await exchange.call("GET", "/status"))["messages_published"]
        total = published - published_before
        await _until(
            lambda: counter.events - consumer.backlog() >= total,
            SETTLE_TIMEOUT_S,
            lambda: (
                f"the consumer to handle {total} events (handled {counter.events}, "
                f"backlog {consumer.backlog()}, feed {consumer.feed()})"
            ),
        )
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            await consumer.wait_idle()
        # Late events (trades' book updates) may still arrive: let them be consumed.
        published = (await exchange.call("GET", "/status"))["messages_published"]
        total = published - published_before
        await _until(
            lambda: counter.events - consumer.backlog() >= total,
            SETTLE_TIMEOUT_S,
            "the last events",
        )
    finally:
        gc.callbacks.remove(pauses.callback)
        slow.stop()
        stop_sampling.set()
        await sampler
        if args.burst:
            sample_cpu()  # after the last order, however short the drive
        await _stop_profiler(profiler)
    wall_s = time.perf_counter() - wall_before
    lag = consumer.loop_lag.summary()
    cpu_s = sum(process.cpu_times()[:2]) - cpu_before
    kernel_s = process.cpu_times().system - kernel_before
    loop_thread_s = time.thread_time() - loop_thread_before
    exchange_cpu_s = sum(exchange_cpu.cpu_times()[:2]) - exchange_cpu_before
    database_cpu_s = await database_cpu.seconds()
    system_after = psutil.cpu_times()
    system_cpu_s = (system_after.user + system_after.system) - (
        system_before.user + system_before.system
    )
    samples.append(Sample(time.perf_counter_ns(), counter.events - consumer.backlog()))
    timing = await exchange.timing()
    consumed = counter.events - consumer.backlog()
    to_last_order = _cpu_to_last_order(timing, cpu_samples) if args.burst else None
    if to_last_order is not None and not database_cpu.measured:
        del to_last_order["database"]  # SQLite's work is the worker's own
    msgs_per_s, backlog_max, backlog_end = ingest(timing, samples, consumed)
    feed_after = consumer.feed()
    return {
        "timing": timing,
        "feed_reconnects": feed_after.reconnects - feed_before.reconnects,
        "feed_stalls": feed_after.stalls - feed_before.stalls,
        "feed_malformed": feed_after.malformed_messages - feed_before.malformed_messages,
        "http_prices": int(consumer.http_prices() - http_before),
        "trailing_writes": int(consumer.trailing_writes() - trailing_before),
        # Rule rows the poll tick's index syncs read during the drive (full, delta).
        "sync_rows": [int(a - b) for a, b in zip(consumer.sync_rows(), sync_before, strict=True)],
        "ws_events": consumed,
        "msgs_per_s": round(msgs_per_s, 1),
        "backlog_max": backlog_max,
        "backlog_end": backlog_end,
        "cpu_s": round(cpu_s, 3),
        "cpu_s_per_1k": round(1000 * cpu_s / max(consumed, 1), 4),
        "events_per_cpu_s": round(consumed / cpu_s, 1) if cpu_s else 0.0,
        # Of cpu_s, in the kernel: socket reads, SQLite's file reads, writes and fsyncs.
        "kernel_cpu_s": round(kernel_s, 3),
        # Of cpu_s, the event loop's thread (the rest: aiosqlite's threads, executors).
        "loop_thread_cpu_s": round(loop_thread_s, 3),
        "system_cpu_s": round(system_cpu_s, 3),
        "exchange_cpu_s": round(exchange_cpu_s, 3),
        "database_cpu_s": database_cpu_s,
        **({"cpu_to_last_order_s": to_last_order} if to_last_order is not None else {}),
        "drive_wall_s": round(wall_s, 3),
        "loop_lag_p50_ms": round(lag.p50_ms, 3),
        "loop_lag_p99_ms": round(lag.p99_ms, 3),
        "loop_lag_max_ms": round(lag.max_ms, 3),
        "loop_lag_samples": lag.samples,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **pauses.figures(),
        **({"slow_callbacks": _slow_figures(slow)} if args.slow_callbacks else {}),
        "ready_s": round(ready_s, 2),
    }


def _cpu_to_last_order(
    timing: dict[str, Any], cpu_samples: list[tuple[int, float, float, float]]
) -> dict[str, float] | None:
    """A burst's CPU from the crossing event's write to its last order received (from the
    last sample before the one to the first sample after the other: 50 ms apart), per
    process: worker, exchange, database (PostgreSQL's backends of the run's database)."""
    receipts = [receipt["ts_receive_ns"] for receipt in timing["order_receipts"]]
    writes = [s["ts_written_ns"] for s in timing["price_sends"] if s.get("ts_written_ns")]
    if not receipts or not writes or not cpu_samples:
        return None
    start, last = min(writes), max(receipts)
    before = max((s for s in cpu_samples if s[0] <= start), default=cpu_samples[0])
    after = min((s for s in cpu_samples if s[0] >= last), default=cpu_samples[-1])
    names = ("worker", "exchange", "database")
    return {name: round(after[i + 1] - before[i + 1], 3) for i, name in enumerate(names)}


def _slow_figures(slow: SlowCallbacks) -> dict[str, Any]:
    figures = slow.figures()
    slow.print_table(figures)
    return figures


class GcPauses:
    """The garbage collector's pauses during the drive (``gc.callbacks``), per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses_ms: list[list[float]] = [[], [], []]

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.pauses_ms[info["generation"]].append(1000 * (time.perf_counter() - self.started))

    def figures(self) -> dict[str, Any]:
        every = [pause for generation in self.pauses_ms for pause in generation]
        return {
            "gc_collections": [len(generation) for generation in self.pauses_ms],
            "gc_pause_ms": [round(sum(generation), 1) for generation in self.pauses_ms],
            "gc_pause_max_ms": round(max(every, default=0.0), 2),
        }


def _start_profiler(path: str | None) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` on this process for the drive (collapsed stacks in ``path``)."""
    if path is None:
        return None
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy on PATH (or PY_SPY=/path/to/py-spy)")
    command = [py_spy, "record", "--pid", str(os.getpid()), "--rate", "200"]
    command += ["--format", "raw", "--output", path, "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is None:
        return
    profiler.send_signal(signal.SIGINT)
    while profiler.poll() is None:  # noqa: ASYNC110 - a child process, not an asyncio object
        await asyncio.sleep(0.05)


def _database_kind(db: str) -> tuple[str, dict[str, str]]:
    if db == "sqlite":
        return "sqlite", {}
    if db == "postgres":
        return "postgres", {"pg_url": PG_DEFAULT}
    return "postgres", {"pg_url": db}


def run(args: argparse.Namespace, mode: str, scenario: Scenario) -> dict[str, Any]:
    kind, options = _database_kind(args.db)
    with scratch_database(kind, **options) as database_url:
        return asyncio.run(run_once(args, mode, scenario, database_url))


def _print_run(figures: dict[str, Any]) -> None:
    print(
        f"[{figures['mode']}/{figures['db']}/{figures['shape']}] "
        f"rules {figures['rules']} tokens {figures['tokens']} "
        f"events {figures['events']}: latency p50 {figures['p50_ms']} p90 {figures['p90_ms']} "
        f"p99 {figures['p99_ms']} max {figures['max_ms']} ms over {figures['latency_samples']} "
        f"(from queued: p50 {figures['queued_p50_ms']} p99 {figures['queued_p99_ms']}); "
        f"{figures['msgs_per_s']} events/s (backlog max {figures['backlog_max']}); "
        f"{figures['cpu_s_per_1k']} CPU s/1k; {figures['bytes_per_rule']} B/rule; "
        f"fired {figures['fired']}/{figures['expected_fired']} orders {figures['orders']} "
        f"mismatches {figures['mismatches']}; loop lag p99 {figures['loop_lag_p99_ms']} "
        f"max {figures['loop_lag_max_ms']} ms; load {figures['load_avg_1m']}",
        file=sys.stderr,
    )


def scenario_shape(args: argparse.Namespace) -> str:
    if args.single:
        return "single"
    return "burst" if args.burst else "paths"


def _scenario(args: argparse.Namespace) -> Scenario:
    shape = scenario_shape(args)
    # The spaced shapes default to a quiet book of 1,000 rules over 100 tokens.
    rules = args.rules if args.rules is not None else (10_000 if shape == "paths" else 1_000)
    tokens = args.tokens if args.tokens is not None else (1_000 if shape == "paths" else 100)
    if shape == "single":
        return build_single_scenario(
            rules=rules,
            tokens=tokens,
            fires=args.single,
            tenants=args.tenants,
            seed=args.seed,
            spacing_s=args.spacing_s,
            rules_per_position=args.rules_per_position,
        )
    if shape == "burst":
        return build_burst_scenario(
            burst=args.burst, rules=rules, tokens=tokens, tenants=args.tenants, seed=args.seed
        )
    return build_scenario(
        rules=rules,
        tokens=tokens,
        events=args.events,
        tenants=args.tenants,
        fire_fraction=args.fire_fraction,
        seed=args.seed,
        rules_per_position=args.rules_per_position,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rules", type=int, help="10000 (--single/--burst: 1000)")
    parser.add_argument("--tokens", type=int, help="1000 (--single/--burst: 100)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--mode", choices=["index", "naive"], default="index")
    parser.add_argument("--compare", action="store_true", help="run index and naive")
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres or a PostgreSQL URL")
    parser.add_argument("--fire-fraction", type=float, default=0.01)
    parser.add_argument("--rules-per-position", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="price steps/s offered in all (0: flat out)"
    )
    parser.add_argument("--poll-interval-s", type=float, default=60.0)
    parser.add_argument(
        "--stale-after-s", type=float, default=None, help="TRADE_MANAGER_STALE_AFTER_S"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", help="py-spy collapsed stacks of the drive to this file")
    shapes = parser.add_mutually_exclusive_group()
    shapes.add_argument("--single", type=int, default=0, help="N spaced single fires")
    shapes.add_argument("--burst", type=int, default=0, help="M rules crossed by one event")
    parser.add_argument(
        "--spacing-s", type=float, default=0.1, help="--single: seconds between fires"
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() once the rules are loaded and again once warmed up, as the "
        "worker does (TRADE_MANAGER_GC_FREEZE, default on); --no-gc-freeze to compare",
    )
    parser.add_argument(
        "--gc-threshold", type=int, default=0, help="gc generation-0 threshold after loading"
    )
    parser.add_argument(
        "--fire-steps", action="store_true", help="wall time of each step of every fire"
    )
    parser.add_argument(
        "--slow-callbacks",
        action="store_true",
        help="time every event-loop callback of the drive (bench/slow_callbacks.py)",
    )
    parser.add_argument(
        "--sql-timing", action="store_true", help="client-side time of every SQL statement"
    )
    parser.add_argument(
        "--settlement-delay-s",
        type=float,
        default=0.0,
        help="the exchange settles a match this long after it (0: by the next request); "
        "longer than the run: every fire is recorded as settling, as on Polymarket",
    )
    args = parser.parse_args(argv)
    scenario = _scenario(args)
    modes = ["index", "naive"] if args.compare else [args.mode]
    runs = {}
    for mode in modes:
        runs[mode] = run(args, mode, scenario)
        _print_run(runs[mode])
        print(json.dumps(runs[mode]), flush=True)
    if not args.compare:
        return runs[args.mode]
    index, naive = runs["index"], runs["naive"]
    result = {
        **index,
        "mode": "compare",
        "naive": naive,
        "throughput_ratio": round(index["msgs_per_s"] / max(naive["msgs_per_s"], 1e-9), 2),
        "cpu_ratio": round(naive["cpu_s_per_1k"] / max(index["cpu_s_per_1k"], 1e-9), 2),
        "p99_ratio": round(naive["p99_ms"] / max(index["p99_ms"], 1e-9), 2),
    }
    print(
        f"index vs naive: {result['throughput_ratio']}x events/s, "
        f"{result['cpu_ratio']}x less CPU per event, p99 {result['p99_ratio']}x lower",
        file=sys.stderr,
    )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
