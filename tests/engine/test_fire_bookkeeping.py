"""What a fire writes after its POST (issue 14, round 9), with the real skill, a real database
and the local exchange: the fill on the audit row, the settlement, the rule's record. Each is
one statement run at the driver on a pooled connection (no ORM session around it; on
PostgreSQL by asyncpg itself, so counted from asyncpg's query log; on SQLite as one call on
aiosqlite's thread, so counted in hops there); the
"settling" record (a match not CONFIRMED yet: Polymarket's usual answer) is one INSERT
whose "once per order" check is inside it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from tests.engine.conftest import MakeRule, MakeSecret, ManualClock
from tests.engine.live import events_of, rule_row
from tests.engine.test_hot_path import TIMEOUT_S, _trigger, _warm_fire
from tests.helpers import sqlite_hops, statements_sent
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.execution_outcomes import SETTLING_MESSAGE, record_settling
from vincent.services.trade_manager.rule_executor import ExecutionOutcome, ExecutionResult
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import BetResult, BetStatus


@dataclass
class _AfterOrder:
    """Database work once the exchange has the order (``statements_sent``): statements run
    at the driver itself (PostgreSQL: asyncpg's log, which would show a BEGIN or COMMIT of
    SQLAlchemy's too), statements sent through SQLAlchemy, transactions committed (an
    autocommitted statement is none), ORM sessions; on SQLite, each call on aiosqlite's
    thread (``sqlite_hops``: a hop there and back, by function name)."""

    at_driver: list[str] = field(default_factory=list)
    through_sqlalchemy: list[str] = field(default_factory=list)
    commits: int = 0
    sessions: int = 0
    hops: list[str] = field(default_factory=list)


async def _fire_counting(
    exchange: LocalExchange, engine: AsyncEngine, fire: Any
) -> tuple[ExecutionResult, _AfterOrder]:
    after = _AfterOrder()

    def on_statement(statement: str, at_driver: bool) -> None:
        if exchange.order_receipts():
            (after.at_driver if at_driver else after.through_sqlalchemy).append(statement)

    def on_commit(conn: Connection) -> None:
        if exchange.order_receipts():
            after.commits += conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"

    def on_session(*_: object) -> None:
        if exchange.order_receipts():
            after.sessions += 1

    def on_hop(name: str) -> None:
        if exchange.order_receipts():
            after.hops.append(name)

    event.listen(engine.sync_engine, "commit", on_commit)
    event.listen(Session, "after_begin", on_session)
    try:
        with statements_sent(engine, on_statement), sqlite_hops(on_hop):
            async with asyncio.timeout(TIMEOUT_S):
                result = await fire()
            await asyncio.sleep(0)  # one turn of the loop: asyncpg reports the last query
    finally:
        event.remove(engine.sync_engine, "commit", on_commit)
        event.remove(Session, "after_begin", on_session)
    return result, after


def _verbs(statements: list[str]) -> list[str]:
    return [statement.split()[0] for statement in statements]


async def test_a_settling_sale_is_recorded_in_two_statements_without_a_session(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    # Polymarket's usual answer: matched, not CONFIRMED yet when the fire asks.
    _wallet, _ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    exchange.set_settlement_delay(60.0)

    result, after = await _fire_counting(
        exchange, engine, lambda: executor.execute_rule(rule, _trigger("0.35"))
    )

    assert result.outcome is ExecutionOutcome.SETTLING
    [receipt] = exchange.order_receipts()
    # The fill's UPDATE of the audit row, then ACTION_SETTLING's INSERT (its check inside).
    assert after.sessions == 0
    if engine.dialect.name == "postgresql":
        # Two round trips in all: each statement by asyncpg itself, autocommitted (no BEGIN
        # or COMMIT), nothing through SQLAlchemy.
        assert _verbs(after.at_driver) == ["UPDATE", "INSERT"], after.at_driver
        assert (after.through_sqlalchemy, after.commits) == ([], 0)
    else:
        # Two hops to aiosqlite's thread in all: each statement and its commit as one call
        # (``sqlite_driver.run_alone``), nothing through SQLAlchemy.
        assert _verbs(after.at_driver) == ["UPDATE", "INSERT"], after.at_driver
        assert after.hops == ["_statement_alone", "_statement_alone"], after
        assert (after.through_sqlalchemy, after.commits) == ([], 0)
    row = await rule_row(session_factory, rule.id)
    assert (row.status, row.trigger_tx_hash) == (TradeRuleStatus.TRIGGERED, None)
    events = await events_of(session_factory, rule.id)
    assert [e.event_type for e in events][-1] is TradeRuleEventType.ACTION_SETTLING
    assert events[-1].event_data == {
        "message": SETTLING_MESSAGE,
        "orderId": receipt.order_id,
        "transactionLogId": await _log_id_of(session_factory, receipt.order_id),
        "filledShares": "9",
    }


async def test_a_sale_settled_at_once_is_recorded_in_single_statements(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    _wallet, _ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )

    result, after = await _fire_counting(
        exchange, engine, lambda: executor.execute_rule(rule, _trigger("0.35"))
    )

    assert result.outcome is ExecutionOutcome.EXECUTED
    if engine.dialect.name == "postgresql":
        # The fill, the settlement note (both on the audit row), the rule's one statement:
        # three round trips, each by asyncpg itself, autocommitted.
        assert _verbs(after.at_driver) == ["UPDATE", "UPDATE", "WITH"], after.at_driver
        assert (after.through_sqlalchemy, after.sessions, after.commits) == ([], 0, 0)
    else:
        # SQLite: three hops to aiosqlite's thread in all: the fill and the settlement note
        # each with its commit (``run_alone``), then the rule's UPDATE and its events'
        # INSERT in one transaction (``write_after_claim``); nothing through SQLAlchemy.
        assert _verbs(after.at_driver) == ["UPDATE", "UPDATE", "UPDATE", "INSERT"], after
        assert after.hops == ["_statement_alone", "_statement_alone", "_claim_and_write"]
        assert (after.through_sqlalchemy, after.sessions, after.commits) == ([], 0, 0)


async def test_settling_is_recorded_once_per_order_while_it_is_the_rules_last_event(
    session_factory: SessionFactory, make_secret: MakeSecret, make_rule: MakeRule
) -> None:
    secret_id = await make_secret()
    rule = await make_rule(secret_id, "tok", TradeRuleType.STOP_LOSS, "0.40")

    def matched(order_id: str | None) -> BetResult:
        return BetResult(
            BetStatus.EXECUTED, "log-1", "0xwallet", order_id=order_id, filled_shares=Decimal(9)
        )

    assert await record_settling(session_factory, rule.id, matched("order-a"))
    assert not await record_settling(session_factory, rule.id, matched("order-a"))
    assert await record_settling(session_factory, rule.id, matched("order-b"))
    assert await record_settling(session_factory, rule.id, matched("order-a"))
    assert await record_settling(session_factory, rule.id, matched(None))
    assert not await record_settling(session_factory, rule.id, matched(None))
    # A rule that does not exist (deleted meanwhile): nothing written, no error.
    assert not await record_settling(session_factory, "no-such-rule", matched("order-a"))

    events = await events_of(session_factory, rule.id)
    assert [(e.event_type, e.event_data.get("orderId")) for e in events[-4:]] == [
        (TradeRuleEventType.ACTION_SETTLING, "order-a"),
        (TradeRuleEventType.ACTION_SETTLING, "order-b"),
        (TradeRuleEventType.ACTION_SETTLING, "order-a"),
        (TradeRuleEventType.ACTION_SETTLING, None),
    ]
    assert events[-4].event_data == {
        "message": SETTLING_MESSAGE,
        "orderId": "order-a",
        "transactionLogId": "log-1",
        "filledShares": "9",
    }


async def _log_id_of(session_factory: SessionFactory, order_id: str) -> str:
    async with session_factory() as session:
        log_id = await session.scalar(
            sa.select(TransactionLog.id).where(TransactionLog.order_id == order_id)
        )
    assert log_id is not None
    return log_id
