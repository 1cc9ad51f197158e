"""The worker's lifecycle, flags, poll tick and breaker, with a scripted skill and no feed."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.engine.conftest import MakeRule, MakeSecret, ManualClock
from tests.engine.live import events_of, rule_row
from tests.engine.scripted_skill import ScriptedSkill
from vincent.config import Settings
from vincent.db.models import TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import (
    TradeMonitoringWorker,
    WorkerState,
    start_trade_monitoring_worker,
    stop_trade_monitoring_worker,
)
from vincent.services.trade_manager.monitoring_worker import GC_THRESHOLDS_AFTER_FREEZE
from vincent.services.trade_manager.poll_tick import SYNC_CHUNK_ROWS
from vincent.services.trade_manager.rule_manager import cancel_rule, update_rule
from vincent.services.trade_manager.types import WorkerStatus

TIMEOUT_S = 10.0


def settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "trade_manager_ws_enabled": False,
        "trade_manager_poll_interval_s": 3600.0,
        **overrides,
    }
    return Settings(**values)


async def test_lifecycle_is_explicit_and_a_second_start_is_an_error(
    session_factory: SessionFactory, skill: ScriptedSkill, database_url: str
) -> None:
    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill)
    assert (worker.state, worker.status().running) == (WorkerState.CREATED, False)

    await worker.start()
    assert (worker.state, worker.status().running) == (WorkerState.RUNNING, True)
    with pytest.raises(RuntimeError, match="only start once"):
        await worker.start()

    await worker.stop()
    assert (worker.state, worker.status().running) == (WorkerState.STOPPED, False)
    await worker.stop()  # idempotent


async def test_disabled_worker_runs_nothing(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, "1")
    skill.set_book("1", [("0.10", "100")], [("0.11", "100")])

    worker = await start_trade_monitoring_worker(
        settings(database_url, trade_manager_enabled=False), session_factory, skill
    )
    worker.rule_upserted(rule)

    assert worker.status() == WorkerStatus(state="disabled")
    await stop_trade_monitoring_worker(worker)
    assert worker.status() == WorkerStatus(state="stopped")
    assert skill.holdings_calls == 0
    assert (await rule_row(session_factory, rule.id)).status is TradeRuleStatus.ACTIVE


async def test_without_websocket_the_poll_tick_prices_over_http_and_fires(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    stop = await make_rule(secret_id, "1", TradeRuleType.STOP_LOSS, "0.40")
    take = await make_rule(secret_id, "2", TradeRuleType.TAKE_PROFIT, "0.80")
    skill.hold(secret_id, "1", "10")
    skill.hold(secret_id, "2", "10")
    skill.set_book("1", [("0.39", "100")], [("0.40", "100")])
    skill.set_book("2", [("0.50", "100")], [("0.52", "100")])

    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        await worker.wait_for_executions(1)
        await worker.wait_for_ticks(1)
        status = worker.status()

    assert (await rule_row(session_factory, stop.id)).status is TradeRuleStatus.TRIGGERED
    assert (await rule_row(session_factory, take.id)).status is TradeRuleStatus.ACTIVE
    # The HTTP book's walk reaches 0.39; 5% below, rounded down: 0.37.
    assert [(r.token_id, r.amount, r.worst_price) for r in skill.requests] == [
        ("1", Decimal("10.00"), Decimal("0.37"))
    ]
    assert (status.web_socket_connected, status.active_rules_count) == (False, 1)
    assert status.last_sync_time == clock.now()
    evaluated = (await events_of(session_factory, stop.id))[1]
    assert evaluated.event_data == {
        "currentPrice": 0.395,
        "triggerPrice": 0.4,
        "shouldTrigger": True,
    }


async def test_failing_ticks_open_the_breaker_and_a_success_closes_it(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    await make_rule(secret_id, "1")
    skill.set_book("1", [("0.50", "100")], [("0.52", "100")])
    skill.holdings_error = RuntimeError("data API down")

    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        for count in range(1, 6):
            await worker.wait_for_ticks(count)
            worker.request_tick()
        opened = worker.status()
        clock.advance(61)
        skill.holdings_error = None
        await worker.wait_for_ticks(worker.request_tick())
        closed = worker.status()

    assert (opened.consecutive_failures, opened.circuit_breaker_until) == (
        5,
        clock.now() - timedelta(seconds=1),
    )
    assert opened.last_sync_time is None
    assert (closed.consecutive_failures, closed.circuit_breaker_until) == (0, None)
    assert closed.last_sync_time == clock.now()
    assert (
        worker.metrics_registry.get_sample_value(
            "vincent_trade_manager_poll_ticks_total", {"result": "failed"}
        )
        == 5
    )


async def test_clean_stop_flushes_the_latest_trailing_level(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(
        secret_id, "1", TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10"
    )
    skill.set_book("1", [("0.69", "100")], [("0.71", "100")])  # midpoint 0.70

    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        await worker.wait_for_ticks(1)
        watched = worker.watched_rule(rule.id)
        assert watched is not None
        assert watched.trigger_price == Decimal("0.63")

    assert (await rule_row(session_factory, rule.id)).trigger_price == 0.63
    raised = [
        e.event_data
        for e in await events_of(session_factory, rule.id)
        if e.event_type is TradeRuleEventType.RULE_TRAILING_UPDATED
    ]
    assert raised == [{"triggerPrice": 0.63, "currentPrice": 0.7, "trailingPercent": 10.0}]
    assert skill.requests == []


async def test_rules_past_their_expiry_are_expired_and_unwatched(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    lasting = await make_rule(secret_id, "1")
    expiring = await make_rule(secret_id, "2")
    async with session_factory() as session, session.begin():
        row = await session.get(TradeRule, expiring.id)
        assert row is not None
        row.expires_at = clock.now() + timedelta(seconds=30)
    skill.set_book("1", [("0.50", "100")], [("0.52", "100")])
    skill.set_book("2", [("0.50", "100")], [("0.52", "100")])

    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        await worker.wait_for_ticks(1)
        assert worker.watched_rule(expiring.id) is not None
        clock.advance(31)
        await worker.wait_for_ticks(worker.request_tick())
        assert worker.watched_rule(expiring.id) is None
        assert worker.watched_rule(lasting.id) is not None

    assert (await rule_row(session_factory, expiring.id)).status is TradeRuleStatus.EXPIRED
    assert (await rule_row(session_factory, lasting.id)).status is TradeRuleStatus.ACTIVE


async def test_rules_changed_by_another_process_show_up_within_one_tick(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    skill.set_book("1", [("0.50", "100")], [("0.52", "100")])
    skill.set_book("2", [("0.50", "100")], [("0.52", "100")])
    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        await worker.wait_for_ticks(1)
        # Written by "another process": no listener call.
        moved = await make_rule(secret_id, "1", TradeRuleType.STOP_LOSS, "0.30")
        canceled = await make_rule(secret_id, "2", TradeRuleType.STOP_LOSS, "0.30")
        assert worker.watched_rule(moved.id) is None
        await worker.wait_for_ticks(worker.request_tick())
        assert worker.watched_rule(moved.id) == moved
        assert worker.watched_rule(canceled.id) == canceled

        async with session_factory() as session, session.begin():
            await update_rule(session, secret_id, moved.id, Decimal("0.35"))
            await cancel_rule(session, secret_id, canceled.id)
        await worker.wait_for_ticks(worker.request_tick())
        watched = worker.watched_rule(moved.id)
        assert watched is not None
        assert watched.trigger_price == Decimal("0.35")
        assert worker.watched_rule(canceled.id) is None
        assert worker.status().active_rules_count == 1


async def test_a_failing_position_refresh_does_not_stop_http_prices_from_firing(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(secret_id, "1", TradeRuleType.STOP_LOSS, "0.40")
    skill.set_book("1", [("0.30", "100")], [("0.32", "100")])
    positions_down = RuntimeError("data API down")
    skill.holdings_error = positions_down

    worker = TradeMonitoringWorker(settings(database_url), session_factory, skill, clock=clock)
    async with worker, asyncio.timeout(TIMEOUT_S):
        await worker.wait_for_ticks(1)
        await worker.wait_for_executions(1)
        status = worker.status()

    assert status.consecutive_failures == 1
    # The execution read holdings too and could not: the rule waits for its retry.
    row = await rule_row(session_factory, rule.id)
    assert (row.status, row.attempt_count) == (TradeRuleStatus.ACTIVE, 1)
    assert skill.requests == []
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds[1:] == [
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_FAILED,
    ]


async def test_the_feed_gives_the_loop_back_while_a_fire_is_on_its_way(
    session_factory: SessionFactory, skill: ScriptedSkill, database_url: str
) -> None:
    # The worker's wiring of ``MarketFeed(yield_while=…)``: the feed's reader yields after
    # each frame exactly while a fire is queued or working toward its POST.
    worker = TradeMonitoringWorker(
        settings(database_url, trade_manager_ws_enabled=True), session_factory, skill
    )
    feed, lanes = worker._feed, worker._lanes
    assert feed is not None
    assert not feed._yield_while()

    lanes.fire_queued(2)
    assert feed._yield_while()
    lanes.fire_answered()
    assert feed._yield_while()
    lanes.fire_answered()
    assert not feed._yield_while()


@pytest.fixture
def interpreter_gc_thresholds() -> Iterator[tuple[int, int, int]]:
    """The interpreter's default thresholds for the test, whatever they were, then back."""
    before = gc.get_threshold()
    gc.set_threshold(2000, 10, 10)
    try:
        yield (2000, 10, 10)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("gc_freeze", [True, False])
async def test_the_collector_takes_smaller_steps_once_the_rules_are_frozen(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    database_url: str,
    interpreter_gc_thresholds: tuple[int, int, int],
    gc_freeze: bool,
) -> None:
    # With TRADE_MANAGER_GC_FREEZE the worker freezes what the load built and sets the
    # collector's thresholds for short young collections; without it, it leaves both alone.
    worker = TradeMonitoringWorker(
        settings(database_url, trade_manager_gc_freeze=gc_freeze), session_factory, skill
    )
    async with worker:
        thresholds = gc.get_threshold()

    expected = GC_THRESHOLDS_AFTER_FREEZE if gc_freeze else interpreter_gc_thresholds
    assert thresholds == expected


class BusyClock(ManualClock):
    """Monotonic time that moves 0.4 ms at every read, as if each piece of work took that."""

    def monotonic(self) -> float:
        self._monotonic += 0.0004
        return self._monotonic


async def test_the_sync_gives_the_loop_back_within_a_chunk_of_rows(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    # 80 rules are one chunk read (SYNC_CHUNK_ROWS): the start's sync applies them a few at
    # a time and, once it has held the loop for its share (1 ms, by the worker's clock),
    # lets a ready task run before the rest, which sees part of the index loaded.
    assert SYNC_CHUNK_ROWS > 80
    secret_id = await make_secret("alice")
    rules = [await make_rule(secret_id, f"tok-{n}") for n in range(80)]
    worker = TradeMonitoringWorker(
        settings(database_url), session_factory, skill, clock=BusyClock()
    )
    counts: set[int] = set()
    started = asyncio.Event()

    async def observe() -> None:
        while not started.is_set():
            counts.add(worker.status().active_rules_count)
            await asyncio.sleep(0)  # every pass of the loop while the worker starts

    observer = asyncio.create_task(observe())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.start()
    finally:
        started.set()
        await observer
    try:
        assert worker.status().active_rules_count == len(rules)
        assert any(0 < count < len(rules) for count in counts), sorted(counts)
    finally:
        await worker.stop()
