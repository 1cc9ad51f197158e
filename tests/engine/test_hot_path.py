"""Issue 14's hot path, with the real skill, a real database and the local exchange.

One commit before the POST (claim + attempt + signed order + audit row); the position,
wallet and policies from memory, never a network or database read on the way, yet a
policy changed by any writer governs the next sell; a position that grew since it was read
(an agent's BUY) is read again and sold whole, never short.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import ROUND_DOWN, Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.engine.conftest import MakeRule, ManualClock
from tests.engine.live import events_of, open_market, rule_row, shares_of
from tests.engine.test_oco import make_bracket
from tests.helpers import driver_queries, sqlite_hops, statements_sent
from tests.skill.conftest import MarketIds, Wallet, add_wallet, skill_settings
from vincent.crypto import KeyBox
from vincent.db.base import new_id, utcnow
from vincent.db.driver_statement import driver_statement
from vincent.db.models import Policy, Secret, TradeRule, TradeRuleEvent, TransactionLog
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.enums import (
    PolicyType,
    TradeRuleEventType,
    TradeRuleStatus,
    TradeRuleType,
    TransactionStatus,
)
from vincent.errors import SecretNotFound
from vincent.services.trade_manager.rule_executor import (
    ExecutionOutcome,
    ExecutionResult,
    RuleExecutor,
    Trigger,
)
from vincent.services.trade_manager.types import RuleSnapshot
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill
from vincent.skills.polymarket.types import BetRequest

TIMEOUT_S = 15.0


def _executor(
    session_factory: SessionFactory, skill: PolymarketSkill, clock: ManualClock
) -> RuleExecutor:
    return RuleExecutor(session_factory, skill, clock=clock, retry_delay=lambda n: 2.0 * n)


def _trigger(price: str) -> Trigger:
    return Trigger(price=Decimal(price), source="websocket", ts_event=0.0)


async def _warm_fire(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> tuple[Wallet, MarketIds, RuleSnapshot, RuleExecutor]:
    """A wallet holding 9 YES shares, a stop-loss at 0.40 on them, and an executor whose
    position, wallet and policies are in memory, as the worker has them after its start."""
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    executor = _executor(session_factory, skill, clock)
    executor.holdings.remember(
        wallet.secret_id, await skill.get_holdings(wallet.secret_id), clock.now()
    )
    await skill.prepare(wallet.secret_id, ids.yes)
    return wallet, ids, rule, executor


async def _commit_elsewhere(database_url: str, statement: sa.Executable) -> None:
    """Another process's write (the owner's CLI, a raw SQL edit: no code of ours), committed
    on its own engine."""
    other = create_engine(database_url)
    try:
        async with other.begin() as conn:
            await conn.execute(statement)
    finally:
        await other.dispose()


def _approval_required(secret_id: str) -> sa.Insert:
    """A REQUIRE_APPROVAL policy: the secret's sells now wait for approval."""
    return sa.insert(Policy).values(
        id=new_id(),
        secret_id=secret_id,
        policy_type=PolicyType.REQUIRE_APPROVAL,
        config={"enabled": True},
        created_at=utcnow(),
        updated_at=utcnow(),
    )


async def _fire_with_a_write_just_before_its_claim(
    engine: AsyncEngine,
    database_url: str,
    executor: RuleExecutor,
    rule: RuleSnapshot,
    write: sa.Executable,
) -> tuple[ExecutionResult, list[str]]:
    """Fire ``rule`` while another process commits ``write`` just before the statement that
    claims it reaches the database: as the fire takes its connection from the pool (its
    first, the claim's; a thread with its own engine and event loop: a pool hook cannot
    await). Returns the result and the claims the write went before."""
    injected: list[str] = []

    def before_claim(*_args: object) -> None:
        if not injected:
            injected.append("claim")
            writer = threading.Thread(
                target=asyncio.run, args=(_commit_elsewhere(database_url, write),)
            )
            writer.start()
            writer.join(TIMEOUT_S)

    event.listen(engine.sync_engine.pool, "checkout", before_claim)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            result = await executor.execute_rule(rule, _trigger("0.35"))
    finally:
        event.remove(engine.sync_engine.pool, "checkout", before_claim)
    return result, injected


async def test_a_fire_commits_once_before_its_order_and_reads_no_position(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    wallet, ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    # Any read of the positions now fails: a fire that made one would not sell.
    exchange.fail_next("/data-api/positions", count=10, status=500)
    # Statements sent through SQLAlchemy before the exchange had the order (on both
    # databases the durable write goes around it: see below).
    statements_before_order: list[str] = []

    def on_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not exchange.order_receipts():
            statements_before_order.append(statement)

    # Connections taken from the pool before the exchange had the order: one is the write;
    # a second would be a read of the wallet and policies (held by the skill since prepare).
    checkouts_before_order: list[int] = []

    def on_checkout(*_args: object) -> None:
        if not exchange.order_receipts():
            checkouts_before_order.append(1)

    # PostgreSQL: every query asyncpg ran before the order, SQLAlchemy's and those run at
    # the driver (the one statement is, unseen by SQLAlchemy's cursor events) alike.
    postgres = engine.dialect.name == "postgresql"
    driver_seen: list[str] = []

    def on_query(query: str) -> None:
        if not exchange.order_receipts():
            driver_seen.append(query)

    # SQLite: every call sent to aiosqlite's thread before the order (each a hop).
    hops: list[str] = []

    def on_hop(name: str) -> None:
        if not exchange.order_receipts():
            hops.append(name)

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(engine.sync_engine.pool, "checkout", on_checkout)
    try:
        with driver_queries(engine, on_query) if postgres else sqlite_hops(on_hop):
            async with asyncio.timeout(TIMEOUT_S):
                result = await executor.execute_rule(rule, _trigger("0.35"))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_statement)
        event.remove(engine.sync_engine.pool, "checkout", on_checkout)

    assert result.outcome is ExecutionOutcome.EXECUTED
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    # Claim, attempt, signed order and audit row: one transaction, one commit, and no
    # other use of the database before it.
    assert len(checkouts_before_order) == 1
    if postgres:
        # One query in all: claim, events and audit row in one statement, autocommitted
        # (no BEGIN, no COMMIT), sent at the driver.
        assert len(driver_seen) == 1, driver_seen
        assert "INSERT INTO transaction_logs" in driver_seen[0]
        assert statements_before_order == []
    else:
        # The claim's UPDATE, the events' INSERT, the audit row's INSERT and the COMMIT in
        # one call on aiosqlite's thread (``write_after_claim``): one hop, none of them
        # through SQLAlchemy.
        assert hops == ["_claim_and_write"], hops
        assert statements_before_order == []
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds.index(TradeRuleEventType.RULE_EVALUATED) < kinds.index(
        TradeRuleEventType.ACTION_ATTEMPT
    )
    # The position in memory lost what was sold: the next fire does not sell it again.
    held = executor.holdings.get(wallet.secret_id, clock.now())
    assert held is not None
    assert [h.shares for h in held.holdings if h.token_id == ids.yes] == [Decimal(0)]


async def test_a_position_bought_into_after_it_was_read_is_read_again_and_sold_whole(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, collateral="100", token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    executor = _executor(session_factory, live_skill, clock)
    # The position as the last poll tick read it, then the agent buys more through Vincent.
    executor.holdings.remember(
        wallet.secret_id, await live_skill.get_holdings(wallet.secret_id), utcnow()
    )
    bought = await live_skill.place_bet(
        BetRequest(secret_id=wallet.secret_id, token_id=ids.yes, side="BUY", amount=Decimal(5))
    )
    assert bought.filled_shares is not None and bought.filled_shares > 0
    held_now = shares_of(exchange, wallet.funder, ids.yes)
    assert held_now > Decimal(9)

    async with asyncio.timeout(TIMEOUT_S):
        result = await executor.execute_rule(rule, _trigger("0.35"))

    assert result.outcome is ExecutionOutcome.EXECUTED
    # All of it (down to the exchange's 0.01-share step), not the 9 read first.
    assert shares_of(exchange, wallet.funder, ids.yes) < Decimal("0.01")
    async with session_factory() as session:
        sells = (
            await session.scalars(
                sa.select(TransactionLog).where(
                    TransactionLog.request_data["side"].as_string() == "SELL"
                )
            )
        ).all()
    assert [(row.status, Decimal(row.request_data["amount"])) for row in sells] == [
        (TransactionStatus.EXECUTED, held_now.quantize(Decimal("0.01"), rounding=ROUND_DOWN))
    ]


async def test_a_policy_written_after_the_worker_read_them_governs_the_next_sell(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    database_url: str,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    wallet, ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )  # no policy yet: held as "none"
    # Another process (the owner's CLI, a raw INSERT: no code of ours) requires approval.
    await _commit_elsewhere(database_url, _approval_required(wallet.secret_id))

    async with asyncio.timeout(TIMEOUT_S):
        result = await executor.execute_rule(rule, _trigger("0.35"))

    assert result.outcome is ExecutionOutcome.PENDING_APPROVAL
    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(9)
    async with session_factory() as session:
        statuses = (await session.scalars(sa.select(TransactionLog.status))).all()
    assert statuses == [TransactionStatus.PENDING_APPROVAL]


async def test_a_secret_deleted_after_the_worker_read_it_sells_nothing(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    wallet, ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    async with session_factory() as session, session.begin():
        await session.execute(
            sa.update(Secret).where(Secret.id == wallet.secret_id).values(deleted_at=utcnow())
        )

    # As without the cache: refused before anything is written or sent.
    with pytest.raises(SecretNotFound):
        async with asyncio.timeout(TIMEOUT_S):
            await executor.execute_rule(rule, _trigger("0.35"))

    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(9)
    async with session_factory() as session:
        assert (await session.scalars(sa.select(TransactionLog.id))).all() == []
        status = await session.scalar(sa.select(TradeRule.status).where(TradeRule.id == rule.id))
    assert status is TradeRuleStatus.ACTIVE


async def test_a_policy_committed_while_a_sell_is_on_its_way_governs_that_sell(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    database_url: str,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    """The worst moment: the sell decided with the policies it held, and another process
    commits a new one just before the claim's UPDATE runs. The UPDATE's guard sees it: the
    sell is decided again and waits for approval; nothing reaches the exchange."""
    wallet, _, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )

    result, injected = await _fire_with_a_write_just_before_its_claim(
        engine, database_url, executor, rule, _approval_required(wallet.secret_id)
    )

    assert len(injected) == 1  # the claim ran after the decision with the held policies
    assert result.outcome is ExecutionOutcome.PENDING_APPROVAL
    assert exchange.order_receipts() == ()
    async with session_factory() as session:
        statuses = (await session.scalars(sa.select(TransactionLog.status))).all()
    assert statuses == [TransactionStatus.PENDING_APPROVAL]


async def test_a_rule_canceled_while_its_sell_is_on_its_way_writes_nothing_of_it(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    database_url: str,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    """The claim loses at the last moment (the rule was canceled just before the statement
    that claims it reached the database): no order, no audit row, and none of the claim's
    events — on PostgreSQL they are parts of the very statement that found the rule gone."""
    wallet, ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    events_before = await events_of(session_factory, rule.id)
    canceled = (
        sa.update(TradeRule)
        .where(TradeRule.id == rule.id)
        .values(status=TradeRuleStatus.CANCELED, updated_at=utcnow())
    )
    hops: list[str] = []
    with sqlite_hops(hops.append):
        result, injected = await _fire_with_a_write_just_before_its_claim(
            engine, database_url, executor, rule, canceled
        )

    assert len(injected) == 1
    assert result.outcome is ExecutionOutcome.SKIPPED
    if engine.dialect.name == "sqlite":
        # Lost inside its one call on SQLite's thread (rolled back there: the events' and
        # the audit row's INSERTs never ran), and not tried again in a session.
        assert hops.count("_claim_and_write") == 1, hops
    assert exchange.order_receipts() == ()
    assert shares_of(exchange, wallet.funder, ids.yes) == Decimal(9)
    async with session_factory() as session:
        assert (await session.scalars(sa.select(TransactionLog.id))).all() == []
        status = await session.scalar(sa.select(TradeRule.status).where(TradeRule.id == rule.id))
    assert status is TradeRuleStatus.CANCELED
    assert len(await events_of(session_factory, rule.id)) == len(events_before)


async def test_two_processes_firing_one_rule_at_once_sell_it_once(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    database_url: str,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    """Two workers, each with its own engine (its own connections; on SQLite its own
    threads on the one file), fire the same rule at the same moment: the claim in each one's
    durable write decides, and only the winner's order is stored and sent."""
    wallet, ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    other_engine = create_engine(database_url)
    other_sessions = create_session_factory(other_engine)
    other_skill = create_polymarket_skill(
        skill_settings(exchange, database_url, timeout_s=2.0), other_sessions, keybox
    )
    hops: list[str] = []
    try:
        other = _executor(other_sessions, other_skill, clock)
        other.holdings.remember(
            wallet.secret_id, await other_skill.get_holdings(wallet.secret_id), clock.now()
        )
        await other_skill.prepare(wallet.secret_id, ids.yes)
        with sqlite_hops(hops.append):
            async with asyncio.timeout(TIMEOUT_S):
                results = await asyncio.gather(
                    executor.execute_rule(rule, _trigger("0.35")),
                    other.execute_rule(rule, _trigger("0.35")),
                )
    finally:
        await other_skill.aclose()
        await other_engine.dispose()

    assert sorted(result.outcome for result in results) == [
        ExecutionOutcome.EXECUTED,
        ExecutionOutcome.SKIPPED,
    ]
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    async with session_factory() as session:
        statuses = (await session.scalars(sa.select(TransactionLog.status))).all()
    assert statuses == [TransactionStatus.EXECUTED]
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds.count(TradeRuleEventType.RULE_EVALUATED) == 1
    assert kinds.count(TradeRuleEventType.ACTION_ATTEMPT) == 1
    if engine.dialect.name == "sqlite":
        # Both claims were written as one call on their connection's thread; one lost. The
        # winner's record after its fill is one more such call (``record_executed``).
        assert hops.count("_claim_and_write") == 3, hops


async def test_both_legs_of_a_bracket_firing_at_once_sell_once_and_cancel_the_other(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    """An OCO bracket's two legs fire at the same moment: the first claim pauses the other
    leg in the same durable write (on SQLite the same one call), so the other's claim finds
    it paused and writes nothing; the fill then cancels it."""
    wallet, ids, _, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    stop, take = await make_bracket(session_factory, wallet.secret_id, ids.yes)
    hops: list[str] = []
    with sqlite_hops(hops.append):
        async with asyncio.timeout(TIMEOUT_S):
            results = await asyncio.gather(
                executor.execute_rule(stop, _trigger("0.35")),
                executor.execute_rule(take, _trigger("0.35")),
            )

    assert sorted(result.outcome for result in results) == [
        ExecutionOutcome.EXECUTED,
        ExecutionOutcome.SKIPPED,
    ]
    winner, loser = (
        (stop, take) if results[0].outcome is ExecutionOutcome.EXECUTED else (take, stop)
    )
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert (await rule_row(session_factory, loser.id)).status is TradeRuleStatus.CANCELED
    loser_events = await events_of(session_factory, loser.id)
    assert [e.event_type for e in loser_events][-1] is TradeRuleEventType.RULE_CANCELED
    assert loser_events[-1].event_data == {"reason": "oco", "firedRuleId": winner.id}
    assert TradeRuleEventType.ACTION_ATTEMPT not in [e.event_type for e in loser_events]
    if engine.dialect.name == "sqlite":
        # Both claims, the group's pause with the winner's, in one call each; then the
        # winner's record tried alone (``record_executed``: in a group, it moves nothing
        # there) before the transaction that also cancels the other leg.
        assert hops.count("_claim_and_write") == 3, hops


async def test_an_answered_order_is_written_up_after_the_fires_still_queued(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    """Fires first: while another fire is queued, the answered order's outcome waits (the
    audit row stays as stored, the rule TRIGGERED with its attempt, as across a crash);
    once no fire waits it is written, once."""
    wallet, ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    # In order: every write to the audit row after it was stored, and the queued fire going.
    happened: list[str] = []

    def on_statement(statement: str, _at_driver: bool) -> None:
        if statement.startswith("UPDATE transaction_logs"):
            happened.append("audit row written")

    executor.lanes.fire_queued()  # another fire of the burst, not yet on its way
    answered = asyncio.Event()
    # Every statement, at the driver (PostgreSQL's audit-row writes) or through SQLAlchemy.
    with statements_sent(engine, on_statement):
        execution = asyncio.create_task(
            executor.execute_rule(rule, _trigger("0.35"), answered=answered)
        )
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await answered.wait()
            assert len(exchange.order_receipts()) == 1
            async with session_factory() as session:
                statuses = (await session.scalars(sa.select(TransactionLog.status))).all()
                stored = await session.get(TradeRule, rule.id)
            assert statuses == [TransactionStatus.PENDING]
            assert stored is not None and stored.status is TradeRuleStatus.TRIGGERED
            assert stored.trigger_tx_hash is None
            assert not execution.done()
        finally:
            happened.append("queued fire gone")
            executor.lanes.fire_answered()  # the queued fire went: outcomes may be written
        async with asyncio.timeout(TIMEOUT_S):
            result = await execution
        await asyncio.sleep(0)  # one turn of the loop: asyncpg reports the last query

    assert happened[:2] == ["queued fire gone", "audit row written"], happened
    assert result.outcome is ExecutionOutcome.EXECUTED
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    async with session_factory() as session:
        statuses = (await session.scalars(sa.select(TransactionLog.status))).all()
    assert statuses == [TransactionStatus.EXECUTED]


async def _fire_compiling(
    engine: AsyncEngine, executor: RuleExecutor, rule: RuleSnapshot
) -> tuple[ExecutionResult, int]:
    """Fire ``rule``; how many statements were compiled for the driver (``driver_statement``'s
    cache misses) in the fire before its audit row's INSERT reached the database: the
    first compile of PostgreSQL's one statement, of SQLite's three. (What the outcome's
    recording compiles after the POST is not counted.)"""
    misses = driver_statement.cache_info().misses
    before_row: list[int] = []

    def on_statement(statement: str, _at_driver: bool) -> None:
        if "INSERT INTO transaction_logs" in statement and not before_row:
            before_row.append(driver_statement.cache_info().misses - misses)

    def on_hop(name: str) -> None:
        if name == "_claim_and_write":  # the claim's transaction, audit row's INSERT in it
            on_statement("INSERT INTO transaction_logs", True)

    # Both run at the driver: PostgreSQL's one statement, SQLite's one call on its thread.
    postgres = engine.dialect.name == "postgresql"
    with statements_sent(engine, on_statement) if postgres else sqlite_hops(on_hop):
        async with asyncio.timeout(TIMEOUT_S):
            result = await executor.execute_rule(rule, _trigger("0.35"))
    assert len(before_row) == 1, "the fire wrote no audit row"
    return result, before_row[0]


async def _row_counts(session_factory: SessionFactory) -> tuple[int, int, int]:
    async with session_factory() as session:
        return (
            await session.scalar(sa.select(sa.func.count()).select_from(TradeRuleEvent)) or 0,
            await session.scalar(sa.select(sa.func.count()).select_from(TransactionLog)) or 0,
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(TradeRule)
                .where(TradeRule.status != TradeRuleStatus.ACTIVE)
            )
            or 0,
        )


async def test_the_warm_up_writes_nothing_and_the_first_fire_finds_its_statement_compiled(
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
    driver_statement.cache_clear()  # compiled statements outlive a test's engine
    before = await _row_counts(session_factory)
    # A deposed worker (a standby) warms up too: its fence never holds, nothing is written.
    deposed = RuleExecutor(
        session_factory, live_skill, clock=clock, retry_delay=lambda n: 2.0, fence=lambda: None
    )
    await deposed.warm()
    await executor.warm()
    assert await _row_counts(session_factory) == before

    result, compiled = await _fire_compiling(engine, executor, rule)

    assert result.outcome is ExecutionOutcome.EXECUTED
    assert compiled == 0


async def test_without_the_warm_up_the_first_fire_compiles_its_statement(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    keybox: KeyBox,
    make_rule: MakeRule,
    clock: ManualClock,
) -> None:
    # What the warm-up is for (and proof the test above can fail).
    _wallet, _ids, rule, executor = await _warm_fire(
        exchange, live_skill, session_factory, keybox, make_rule, clock
    )
    driver_statement.cache_clear()
    result, compiled = await _fire_compiling(engine, executor, rule)
    assert result.outcome is ExecutionOutcome.EXECUTED
    # Compiled by the fire: PostgreSQL's one statement; SQLite's claim UPDATE, events
    # INSERT and audit row INSERT.
    assert compiled == (1 if engine.dialect.name == "postgresql" else 3)
