"""The batched trailing flush: a few statements per flush, events only for rules that moved."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.engine.conftest import MakeRule, MakeSecret
from tests.engine.live import events_of, rule_row
from tests.helpers import sqlite_transactions
from vincent.db.base import new_id
from vincent.db.models import TradeRule, TradeRuleEvent
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.event_logger import log_events
from vincent.services.trade_manager.fire_lanes import FireLanes
from vincent.services.trade_manager.rule_manager import cancel_rule, mark_rule_triggered
from vincent.services.trade_manager.trailing_levels import (
    CHUNK_ROWS,
    FLUSH_CHUNK_STOPS,
    TrailingLevels,
    TrailingRaise,
    chunked,
    statement_rows,
    trailing_events,
    trailing_events_json,
)

TIMEOUT_S = 20.0


def raise_to(trigger: str, price: str = "0.60", source: str = "websocket") -> TrailingRaise:
    return TrailingRaise(Decimal(trigger), Decimal(price), Decimal(10), source)


@contextmanager
def on_statement(engine: AsyncEngine, hook: Callable[[str], None]) -> Iterator[None]:
    """Call ``hook`` with every SQL statement the engine is about to send (on SQLite, a
    ``sqlite_driver.transaction``'s as it is sent to the thread: each it may run)."""

    def listener(*args: Any) -> None:
        hook(str(args[2]))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        with sqlite_transactions(hook):
            yield
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", listener)


def is_trailing_update(statement: str) -> bool:
    return statement.lstrip().upper().startswith("UPDATE TRADE_RULES")


def is_event_insert(statement: str) -> bool:
    return statement.lstrip().upper().startswith("INSERT INTO TRADE_RULE_EVENTS")


async def event_count(session_factory: SessionFactory) -> int:
    async with session_factory() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(TradeRuleEvent)))


async def event_ids(session_factory: SessionFactory, rule_id: str) -> list[str]:
    return [event.id for event in await events_of(session_factory, rule_id)]


# --------------------------------------------------------------------------- pure parts


@given(st.lists(st.integers(), max_size=60), st.integers(min_value=1, max_value=25))
def test_chunks_keep_every_item_in_order_within_the_size(items: list[int], size: int) -> None:
    chunks = list(chunked(items, size))
    assert [item for chunk in chunks for item in chunk] == items
    assert all(1 <= len(chunk) <= size for chunk in chunks)
    assert len(chunks) == math.ceil(len(items) / size)


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size must be at least 1, was 0"):
        list(chunked([1], 0))


@given(st.integers(min_value=1, max_value=CHUNK_ROWS))
def test_a_chunk_fits_one_of_few_statement_sizes(rows: int) -> None:
    size = statement_rows(rows)
    assert rows <= size <= CHUNK_ROWS
    assert size < 2 * rows
    assert len({statement_rows(n) for n in range(1, CHUNK_ROWS + 1)}) <= 10


prices = st.decimals(min_value="0.001", max_value="0.999", places=3)


@given(prices, prices, st.decimals(min_value="0.1", max_value="99", places=1), st.booleans())
def test_a_persisted_raise_is_logged_as_trailing_updated_then_evaluated(
    trigger: Decimal, price: Decimal, percent: Decimal, websocket: bool
) -> None:
    source = "websocket" if websocket else "poll"
    level = TrailingRaise(trigger, price, percent, source)
    updated, evaluated = trailing_events("rule-1", level)
    assert updated == (
        "rule-1",
        TradeRuleEventType.RULE_TRAILING_UPDATED,
        {
            "triggerPrice": float(trigger),
            "currentPrice": float(price),
            "trailingPercent": float(percent),
        },
    )
    expected: dict[str, object] = {
        "currentPrice": float(price),
        "triggerPrice": float(trigger),
        "shouldTrigger": False,
    }
    if websocket:
        expected["source"] = "websocket"
    assert evaluated == ("rule-1", TradeRuleEventType.RULE_EVALUATED, expected)
    assert list(evaluated[2]) == list(expected)  # key order as written today


numbers = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=True),
    st.decimals(min_value="0.0001", max_value="0.9999", places=4),
    st.just(Decimal("NaN")),
)


@given(
    numbers,
    numbers,
    st.none() | numbers,
    st.none() | numbers,
    st.sampled_from(["websocket", "poll"]),
    st.booleans(),
)
def test_the_flush_writes_the_json_text_json_dumps_makes_of_the_events(
    trigger: Decimal,
    price: Decimal,
    percent: Decimal | None,
    amount: Decimal | None,
    source: str,
    activated: bool,
) -> None:
    level = TrailingRaise(trigger, price, percent, source, amount)
    as_text = trailing_events_json("rule-1", level, activated=activated)
    as_dicts = trailing_events("rule-1", level, activated=activated)
    assert [(rule_id, kind, text) for rule_id, kind, text in as_text] == [
        (rule_id, kind, json.dumps(data)) for rule_id, kind, data in as_dicts
    ]


# --------------------------------------------------------------------------- against the database


async def test_only_rules_that_move_are_written_and_logged(
    session_factory: SessionFactory, make_secret: MakeSecret, make_rule: MakeRule
) -> None:
    secret_id = await make_secret("a")

    async def trailing(trigger: str) -> str:
        return (
            await make_rule(
                secret_id, "1", TradeRuleType.TRAILING_STOP, trigger, trailing_percent="10"
            )
        ).id

    moved_ws, moved_poll = await trailing("0.40"), await trailing("0.40")
    higher, equal = await trailing("0.60"), await trailing("0.50")
    canceled, triggered = await trailing("0.40"), await trailing("0.40")
    stop_loss = (await make_rule(secret_id, "1", TradeRuleType.STOP_LOSS, "0.40")).id
    async with session_factory() as session, session.begin():
        await cancel_rule(session, secret_id, canceled)
        assert await mark_rule_triggered(session, triggered)
    untouched = (higher, equal, canceled, triggered, stop_loss)
    before = {rule_id: await rule_row(session_factory, rule_id) for rule_id in untouched}
    events_before = {rule_id: await event_ids(session_factory, rule_id) for rule_id in untouched}

    levels = TrailingLevels()
    levels.record(moved_ws, raise_to("0.45", "0.50"))
    levels.record(moved_poll, raise_to("0.54", "0.60", source="poll"))
    for rule_id in untouched:
        levels.record(rule_id, raise_to("0.50"))
    levels.record("cnosuchrule00000000000000", raise_to("0.50"))

    written = await levels.flush(session_factory)

    assert written == {moved_ws: Decimal("0.45"), moved_poll: Decimal("0.54")}
    assert len(levels) == 0
    assert (await rule_row(session_factory, moved_ws)).trigger_price == 0.45
    assert (await rule_row(session_factory, moved_poll)).trigger_price == 0.54
    for rule_id in untouched:
        row = await rule_row(session_factory, rule_id)
        assert (row.trigger_price, row.status, row.updated_at) == (
            before[rule_id].trigger_price,
            before[rule_id].status,
            before[rule_id].updated_at,
        )
        assert await event_ids(session_factory, rule_id) == events_before[rule_id]

    ws_events = await events_of(session_factory, moved_ws)
    assert [(e.event_type, e.event_data) for e in ws_events[1:]] == [
        (
            TradeRuleEventType.RULE_TRAILING_UPDATED,
            {"triggerPrice": 0.45, "currentPrice": 0.5, "trailingPercent": 10.0},
        ),
        (
            TradeRuleEventType.RULE_EVALUATED,
            {
                "currentPrice": 0.5,
                "triggerPrice": 0.45,
                "shouldTrigger": False,
                "source": "websocket",
            },
        ),
    ]
    poll_events = await events_of(session_factory, moved_poll)
    assert [e.event_data for e in poll_events[1:]] == [
        {"triggerPrice": 0.54, "currentPrice": 0.6, "trailingPercent": 10.0},
        {"currentPrice": 0.6, "triggerPrice": 0.54, "shouldTrigger": False},
    ]
    assert (await rule_row(session_factory, moved_ws)).updated_at == ws_events[1].created_at


async def test_a_batch_is_written_one_update_and_one_insert_per_chunk(
    session_factory: SessionFactory, engine: AsyncEngine, make_secret: MakeSecret
) -> None:
    rng = random.Random(7)
    secret_id = await make_secret("a")
    statuses = [TradeRuleStatus.ACTIVE] * 6 + [TradeRuleStatus.CANCELED, TradeRuleStatus.TRIGGERED]
    rows = [
        {
            "id": new_id(),
            "secret_id": secret_id,
            "rule_type": TradeRuleType.TRAILING_STOP,
            "market_id": "0xcond",
            "token_id": str(n % 7),
            "trigger_price": rng.randint(10, 60) / 100,
            "trailing_percent": 10.0,
            "action": '{"type":"SELL_ALL"}',
            "status": rng.choice(statuses),
        }
        for n in range(2 * FLUSH_CHUNK_STOPS + 3)  # the last chunk is padded
    ]
    async with session_factory() as session, session.begin():
        await session.execute(sa.insert(TradeRule), rows)
    stored = {row["id"]: row for row in rows}
    ids = list(stored)
    levels = TrailingLevels()
    wanted: dict[str, Decimal] = {}
    for rule_id in ids:
        wanted[rule_id] = Decimal(rng.randint(10, 60)) / 100
        levels.record(rule_id, raise_to(str(wanted[rule_id])))
    # The naive model: an ACTIVE rule moves when the new level is strictly higher.
    expected = {
        rule_id: level
        for rule_id, level in wanted.items()
        if stored[rule_id]["status"] is TradeRuleStatus.ACTIVE
        and float(level) > stored[rule_id]["trigger_price"]
    }
    assert 0 < len(expected) < len(ids)
    events_before = await event_count(session_factory)
    statements: list[str] = []

    with on_statement(engine, statements.append):
        written = await levels.flush(session_factory)

    assert written == expected
    chunks = list(chunked(ids, FLUSH_CHUNK_STOPS))  # in the order the levels were recorded
    assert sum(map(is_trailing_update, statements)) == len(chunks) == 3
    inserts = sum(map(is_event_insert, statements))
    if engine.dialect.name == "sqlite":
        # One transaction on aiosqlite's thread a chunk: its INSERT is seen as it may run
        # (it runs only for the rules the UPDATE moved; the event count below checks it).
        assert inserts == len(chunks)
    else:
        assert inserts == sum(any(rule_id in expected for rule_id in chunk) for chunk in chunks)
    assert await event_count(session_factory) - events_before == 2 * len(expected)
    async with session_factory() as session:
        after = dict(
            (await session.execute(sa.select(TradeRule.id, TradeRule.trigger_price))).all()
        )
    assert after == {
        rule_id: float(expected[rule_id]) if rule_id in expected else row["trigger_price"]
        for rule_id, row in stored.items()
    }


async def test_a_cancel_racing_the_flush_is_never_overwritten(
    session_factory: SessionFactory,
    engine: AsyncEngine,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    racing, other = [
        await make_rule(secret_id, "1", TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10")
        for _ in range(2)
    ]
    levels = TrailingLevels()
    levels.record(racing.id, raise_to("0.50"))
    levels.record(other.id, raise_to("0.50"))
    flush_writing = asyncio.Event()

    def watch(statement: str) -> None:
        if is_trailing_update(statement):
            flush_writing.set()

    async with asyncio.timeout(TIMEOUT_S):
        # The cancel holds its row (PostgreSQL) or the write lock (SQLite) while the flush runs.
        async with session_factory() as canceling, canceling.begin():
            await cancel_rule(canceling, secret_id, racing.id)
            with on_statement(engine, watch):
                flush = asyncio.create_task(levels.flush(session_factory))
                await flush_writing.wait()
                if database_url.startswith("postgresql"):
                    await wait_for_a_lock_wait(session_factory)
        written = await flush

    assert written == {other.id: Decimal("0.50")}
    row = await rule_row(session_factory, racing.id)
    assert (row.status, row.trigger_price) == (TradeRuleStatus.CANCELED, 0.40)
    kinds = [e.event_type for e in await events_of(session_factory, racing.id)]
    assert kinds == [TradeRuleEventType.RULE_CREATED, TradeRuleEventType.RULE_CANCELED]


async def wait_for_a_lock_wait(session_factory: SessionFactory) -> None:
    """Return once a backend of this database waits for a lock (the flush behind the cancel)."""
    while True:
        async with session_factory() as session:
            waiting = await session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)


class InjectedFault(Exception):
    pass


async def test_a_failed_flush_writes_nothing_and_keeps_its_levels(
    session_factory: SessionFactory,
    engine: AsyncEngine,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("a")
    first, second = [
        await make_rule(secret_id, "1", TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10")
        for _ in range(2)
    ]
    levels = TrailingLevels()
    levels.record(first.id, raise_to("0.45"))
    levels.record(second.id, raise_to("0.46"))

    def fail_the_event_insert(statement: str) -> None:
        if is_event_insert(statement):
            # A newer raise lands while the flush is in flight; it must win over the old one.
            levels.record(second.id, raise_to("0.48"))
            raise InjectedFault

    with on_statement(engine, fail_the_event_insert), pytest.raises(InjectedFault):
        await levels.flush(session_factory)

    # The UPDATE ran before the failure and was rolled back with it.
    for rule in (first, second):
        assert (await rule_row(session_factory, rule.id)).trigger_price == 0.40
        assert len(await events_of(session_factory, rule.id)) == 1
    assert len(levels) == 2

    assert await levels.flush(session_factory) == {
        first.id: Decimal("0.45"),
        second.id: Decimal("0.48"),
    }
    assert (await rule_row(session_factory, second.id)).trigger_price == 0.48


async def stored_events(session_factory: SessionFactory, rule_id: str) -> list[tuple[Any, ...]]:
    """A rule's events as the database holds them: the JSON and the timestamp as text."""
    async with session_factory() as session:
        rows = await session.execute(
            sa.text(
                "SELECT event_type, CAST(event_data AS TEXT), CAST(created_at AS TEXT)"
                " FROM trade_rule_events WHERE rule_id = :rule_id AND event_type != 'RULE_CREATED'"
                " ORDER BY id"
            ),
            {"rule_id": rule_id},
        )
        return [tuple(row) for row in rows]


async def test_the_flush_stores_what_log_events_would(
    session_factory: SessionFactory, make_secret: MakeSecret, make_rule: MakeRule
) -> None:
    secret_id = await make_secret("a")
    flushed, logged = [
        await make_rule(secret_id, "1", TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10")
        for _ in range(2)
    ]
    level = TrailingRaise(
        Decimal("0.4567"), Decimal("0.5074"), Decimal("10"), "websocket", Decimal("0.0507")
    )
    levels = TrailingLevels()
    levels.record(flushed.id, level)
    assert await levels.flush(session_factory) == {flushed.id: Decimal("0.4567")}
    written = await events_of(session_factory, flushed.id)
    async with session_factory() as session, session.begin():
        # The same events through SQLAlchemy's own parameter processing, at the same time.
        await log_events(session, trailing_events(logged.id, level), written[-1].created_at)

    by_flush, by_log_events = (
        await stored_events(session_factory, flushed.id),
        await stored_events(session_factory, logged.id),
    )
    assert len(by_flush) == 2
    assert by_flush == by_log_events
    assert [(e.event_type, e.event_data) for e in written[1:]] == [
        (kind, data) for _, kind, data in trailing_events(flushed.id, level)
    ]
    assert written[1].created_at.tzinfo is not None


async def make_trailing_rules(
    session_factory: SessionFactory, secret_id: str, count: int
) -> list[str]:
    rows = [
        {
            "id": new_id(),
            "secret_id": secret_id,
            "rule_type": TradeRuleType.TRAILING_STOP,
            "market_id": "0xcond",
            "token_id": "1",
            "trigger_price": 0.40,
            "trailing_percent": 10.0,
            "action": '{"type":"SELL_ALL"}',
            "status": TradeRuleStatus.ACTIVE,
        }
        for _ in range(count)
    ]
    async with session_factory() as session, session.begin():
        await session.execute(sa.insert(TradeRule), rows)
    return [row["id"] for row in rows]


async def stored_triggers(session_factory: SessionFactory, ids: list[str]) -> dict[str, float]:
    async with session_factory() as session:
        rows = await session.execute(
            sa.select(TradeRule.id, TradeRule.trigger_price).where(TradeRule.id.in_(ids))
        )
        return {str(row[0]): float(row[1]) for row in rows}


async def test_a_failed_chunk_keeps_its_levels_and_the_rest_the_chunks_before_stay_written(
    session_factory: SessionFactory, engine: AsyncEngine, make_secret: MakeSecret
) -> None:
    ids = await make_trailing_rules(
        session_factory, await make_secret("a"), 2 * FLUSH_CHUNK_STOPS + 1
    )
    first, second, third = list(chunked(ids, FLUSH_CHUNK_STOPS))
    levels = TrailingLevels()
    for rule_id in ids:
        levels.record(rule_id, raise_to("0.45"))
    reported: list[dict[str, Decimal]] = []
    inserts = 0

    def fail_the_second_chunk(statement: str) -> None:
        nonlocal inserts
        if is_event_insert(statement):
            inserts += 1
            if inserts == 2:
                levels.record(second[0], raise_to("0.48"))  # newer, recorded meanwhile
                raise InjectedFault

    with on_statement(engine, fail_the_second_chunk), pytest.raises(InjectedFault):
        await levels.flush(session_factory, on_written=reported.append)

    assert reported == [dict.fromkeys(first, Decimal("0.45"))]
    triggers = await stored_triggers(session_factory, ids)
    assert {rule_id: triggers[rule_id] for rule_id in first} == dict.fromkeys(first, 0.45)
    assert {triggers[rule_id] for rule_id in [*second, *third]} == {0.40}
    assert len(levels) == len(second) + len(third)

    written = await levels.flush(session_factory)

    assert written == {
        **dict.fromkeys([*second, *third], Decimal("0.45")),
        second[0]: Decimal("0.48"),
    }
    kinds = [e.event_type for e in await events_of(session_factory, first[0])]
    assert kinds == [TradeRuleEventType.RULE_TRAILING_UPDATED, TradeRuleEventType.RULE_EVALUATED]


async def test_take_discard_and_clear_reach_the_levels_a_flush_has_not_written_yet(
    session_factory: SessionFactory, make_secret: MakeSecret
) -> None:
    ids = await make_trailing_rules(session_factory, await make_secret("a"), 3 * FLUSH_CHUNK_STOPS)
    first, second, third = list(chunked(ids, FLUSH_CHUNK_STOPS))
    levels = TrailingLevels()
    for rule_id in ids:
        levels.record(rule_id, raise_to("0.45"))
    chunks_started = 0
    taken: list[TrailingRaise | None] = []

    async def between_chunks() -> None:
        nonlocal chunks_started
        chunks_started += 1
        if chunks_started == 2:
            # A claim takes a level the flush holds, with a newer one recorded since.
            levels.record(second[0], raise_to("0.47"))
            taken.append(levels.take(second[0]))
            levels.discard(second[1])  # a changed rule
        elif chunks_started == 3:
            levels.clear()  # a deposed leader

    written = await levels.flush(session_factory, before_chunk=between_chunks)

    # The second chunk is the next FLUSH_CHUNK_STOPS levels still unwritten.
    moved = [*first, *[*second[2:], *third][:FLUSH_CHUNK_STOPS]]
    assert written == dict.fromkeys(moved, Decimal("0.45"))
    assert taken == [raise_to("0.47")]
    assert len(levels) == 0  # nothing put back after the clear
    triggers = await stored_triggers(session_factory, ids)
    assert {rule_id for rule_id, trigger in triggers.items() if trigger == 0.45} == set(moved)


async def test_a_flush_waits_for_the_fires_before_each_chunk(
    session_factory: SessionFactory, engine: AsyncEngine, make_secret: MakeSecret
) -> None:
    ids = await make_trailing_rules(session_factory, await make_secret("a"), 2)
    levels = TrailingLevels()
    for rule_id in ids:
        levels.record(rule_id, raise_to("0.45"))
    lanes = FireLanes()
    lanes.fire_queued()
    waiting = asyncio.Event()
    statements: list[str] = []

    async def fires_first() -> None:
        waiting.set()
        await lanes.wait_for_no_fires(TIMEOUT_S * 10)

    with on_statement(engine, statements.append):
        flush = asyncio.create_task(levels.flush(session_factory, before_chunk=fires_first))
        async with asyncio.timeout(TIMEOUT_S):
            await waiting.wait()
            for _ in range(10):
                await asyncio.sleep(0)
            assert statements == [] and not flush.done()
            lanes.fire_answered()
            written = await flush

    assert written == dict.fromkeys(ids, Decimal("0.45"))


async def test_a_flush_called_while_another_runs_waits_for_it_and_loses_nothing(
    session_factory: SessionFactory, make_secret: MakeSecret
) -> None:
    ids = await make_trailing_rules(session_factory, await make_secret("a"), FLUSH_CHUNK_STOPS + 1)
    levels = TrailingLevels()
    for rule_id in ids:
        levels.record(rule_id, raise_to("0.45"))
    second: asyncio.Task[dict[str, Decimal]] | None = None

    async def start_another_flush() -> None:
        nonlocal second
        if second is None:
            levels.record(ids[0], raise_to("0.47"))  # for the next flush
            second = asyncio.create_task(levels.flush(session_factory))
        await asyncio.sleep(0)

    async with asyncio.timeout(TIMEOUT_S):
        first = await levels.flush(session_factory, before_chunk=start_another_flush)
        assert second is not None
        assert first == dict.fromkeys(ids, Decimal("0.45"))
        assert await second == {ids[0]: Decimal("0.47")}
    assert len(levels) == 0
