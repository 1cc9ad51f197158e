"""SIGKILL between claim and outcome: the next start reconciles, and nothing sells twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.engine.conftest import MakeRule
from tests.engine.live import (
    events_of,
    executed_sells,
    open_market,
    rule_row,
    running_worker,
    shares_of,
    worker_settings,
)
from tests.skill.conftest import add_wallet
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType, TransactionStatus
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

pytestmark = pytest.mark.slow

TIMEOUT_S = 30.0
REPO = Path(__file__).resolve().parents[2]


async def wait_until(predicate: Callable[[], object], poll_s: float = 0.02) -> None:
    """Poll a condition the test cannot be notified of (another process's progress)."""
    while not predicate():  # noqa: ASYNC110 (no event crosses the process boundary)
        await asyncio.sleep(poll_s)


@asynccontextmanager
async def worker_process(settings: Settings, keybox_key: str) -> AsyncIterator[int]:
    values = settings.model_dump(mode="json", exclude={"vincent_encryption_key"})
    values.pop("vincent_admin_token", None)
    env = {
        **os.environ,
        "VINCENT_TEST_WORKER": json.dumps(values),
        "VINCENT_TEST_KEYBOX": keybox_key,
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.engine.worker_process",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = await process.stdout.readline()
        assert line.strip() == b"READY"
        yield process.pid
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_sigkill_after_the_order_was_sent_is_reconciled_without_a_second_sell(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    # The exchange fills the order and never answers: the worker waits on it when killed.
    exchange.withhold_next("/order", mode="hang")
    settings = worker_settings(exchange, database_url, polymarket_http_timeout_s=60.0)

    async with asyncio.timeout(TIMEOUT_S), worker_process(settings, keybox_key) as pid:
        await wait_until(lambda: exchange.status()["websocket_connections"] == 1)
        exchange.step_price(ids.yes, "0.35")
        await wait_until(lambda: len(exchange.order_receipts()) == 1)
        os.kill(pid, signal.SIGKILL)

    exchange.clear_faults()
    claimed = await rule_row(session_factory, rule.id)
    assert (claimed.status, claimed.trigger_tx_hash) == (TradeRuleStatus.TRIGGERED, None)
    assert [e.event_type for e in await events_of(session_factory, rule.id)][-1] is (
        TradeRuleEventType.ACTION_ATTEMPT
    )
    assert shares_of(exchange, wallet.funder, ids.yes) == 0  # the sell did happen

    restart = worker_settings(exchange, database_url)
    async with running_worker(restart, session_factory, live_skill):
        pass  # start() alone reconciles

    row = await rule_row(session_factory, rule.id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert row.trigger_tx_hash is not None
    assert len(exchange.order_receipts()) == 1
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    assert [e.event_type for e in await events_of(session_factory, rule.id)][-3:] == [
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    ]


async def test_sigkill_before_the_order_reached_the_exchange_reposts_it_and_sells_once(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    settings = worker_settings(exchange, database_url, polymarket_http_timeout_s=60.0)

    async with asyncio.timeout(TIMEOUT_S), worker_process(settings, keybox_key) as pid:
        await wait_until(lambda: exchange.status()["websocket_connections"] == 1)
        # The POST hangs before it reaches the book: the claim, the attempt and the signed
        # order's audit row are committed (one transaction), nothing is on the exchange.
        exchange.hang_next("/order", method="POST")
        exchange.step_price(ids.yes, "0.35")

        async def attempt_written() -> bool:
            events = await events_of(session_factory, rule.id)
            return events[-1].event_type is TradeRuleEventType.ACTION_ATTEMPT

        while not await attempt_written():  # noqa: ASYNC110 (another process writes it)
            await asyncio.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    exchange.clear_faults()
    assert exchange.order_receipts() == ()
    async with session_factory() as session:
        stored = (await session.scalars(sa.select(TransactionLog))).one()
    assert stored.status is TransactionStatus.PENDING and stored.signed_order is not None

    restart = worker_settings(exchange, database_url)
    async with running_worker(restart, session_factory, live_skill):
        pass  # start() alone reconciles: the same signed order is found missing, re-posted

    row = await rule_row(session_factory, rule.id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert row.trigger_tx_hash is not None
    assert len(exchange.order_receipts()) == 1
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    async with session_factory() as session:
        sold = (await session.scalars(sa.select(TransactionLog))).one()
    assert sold.order_id == stored.order_id  # the same signed order, never a new one
