"""Standby workers on PostgreSQL: real ``vincent worker`` processes, the local exchange, kill -9.

One leader executes; a hot standby takes over when it dies, is cut off from PostgreSQL or
stops, settles what it left exactly once, and nothing sells twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from bench.common import free_port
from bench.worker_processes import WorkerProcess, WorkerProcesses, worker_processes
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _pg_execute, empty_postgres
from tests.engine.conftest import MakeRule
from tests.engine.live import (
    events_of,
    executed_sells,
    open_market,
    rule_row,
    shares_of,
    worker_settings,
)
from tests.skill.conftest import Wallet, add_wallet
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager.leadership import LOCK_KEY
from vincent.sim import LocalExchange

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TIMEOUT_S = 45.0
# The target: a stop crossing while the leader is dead fires within 5 s of its death.
TAKEOVER_TARGET_S = 5.0


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite runs one worker (``test_failover_sqlite``)."""
    empty_postgres(postgres_url)
    return postgres_url


async def wait_until(predicate: Callable[[], object], poll_s: float = 0.02) -> None:
    """Poll what another process changes (no event crosses the process boundary)."""
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(poll_s)


def log_time(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["ts"]))


async def leader_and_standby(
    workers: WorkerProcesses,
    settings: Settings,
    keybox_key: str,
    exchange: LocalExchange,
    *leader_args: str,
    wallets: int = 1,
) -> tuple[WorkerProcess, WorkerProcess]:
    """Start A, wait until it leads; start B, wait until it stands by with its feed up.

    Each also waits for its warm-up (one SDK client per wallet): building one holds the
    event loop for a while, so the test's steps start from settled workers. (The lock is
    guarded from its own thread, so that no longer costs the leader its leadership.)
    """
    leader = await workers.start("A", settings, keybox_key, *leader_args)
    await leader.wait_for_log("trade_monitoring_worker.started", role="leader")
    await leader.wait_for_count("sdk_client_created", wallets)
    standby = await workers.start("B", settings, keybox_key)
    await standby.wait_for_log("trade_monitoring_worker.started", role="standby")
    await standby.wait_for_count("sdk_client_created", wallets)
    await wait_until(lambda: exchange.status()["websocket_connections"] == 2)
    assert leader.find("worker.leadership_lost") is None
    return leader, standby


async def funded_stop(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    keybox: KeyBox,
    make_rule: MakeRule,
    trigger: str = "0.40",
) -> tuple[Wallet, str, str]:
    """A wallet holding 9 YES shares at 0.50 and a stop-loss on them: (wallet, token, rule)."""
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, trigger)
    return wallet, ids.yes, rule.id


async def signed_rows(session_factory: SessionFactory) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionLog)
            .where(TransactionLog.signed_order.is_not(None))
        )
        return int(count or 0)


async def test_a_stop_crossing_while_the_leader_is_dead_fires_once_from_the_new_leader(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
    make_rule: MakeRule,
    tmp_path: Path,
) -> None:
    wallet, token_id, rule_id = await funded_stop(exchange, session_factory, keybox, make_rule)
    settings = worker_settings(exchange, database_url)

    async with asyncio.timeout(TIMEOUT_S), worker_processes(tmp_path) as workers:
        leader, standby = await leader_and_standby(workers, settings, keybox_key, exchange)
        ts_death = time.monotonic()
        leader.kill()
        exchange.step_price(token_id, "0.35")
        await exchange.wait_for_order_receipts(1, timeout_s=TIMEOUT_S)
        fired_after_s = time.monotonic() - ts_death
        took_over = await standby.wait_for_log("worker.took_over")
        executed = await standby.wait_for_log("rule_executed", rule_id=rule_id)

    print(f"\nstop fired {fired_after_s:.3f} s after the leader's death")
    print(f"takeover (lock taken → firing) {took_over['takeover_s']} s")
    assert fired_after_s < TAKEOVER_TARGET_S
    assert executed["outcome"] == "executed"
    first = leader.find("worker.leadership_acquired")
    assert first is not None and took_over["previous_leader"] == first["worker_id"]
    assert len(exchange.order_receipts()) == 1
    row = await rule_row(session_factory, rule_id)
    assert (row.status, row.trigger_tx_hash is not None) == (TradeRuleStatus.TRIGGERED, True)
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    assert shares_of(exchange, wallet.funder, token_id) == 0


@pytest.mark.parametrize("moment", ["signed_not_posted", "posted_not_recorded"])
async def test_kill_9_mid_execution_the_standby_settles_the_attempt_exactly_once(
    moment: str,
    exchange: LocalExchange,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
    make_rule: MakeRule,
    tmp_path: Path,
) -> None:
    wallet, token_id, rule_id = await funded_stop(exchange, session_factory, keybox, make_rule)
    settings = worker_settings(exchange, database_url, polymarket_http_timeout_s=60.0)

    async with asyncio.timeout(TIMEOUT_S), worker_processes(tmp_path) as workers:
        leader, standby = await leader_and_standby(workers, settings, keybox_key, exchange)
        if moment == "signed_not_posted":
            # The order's POST never reaches the exchange's matching: stored, not posted.
            exchange.hang_next("/order", method="POST")
            exchange.step_price(token_id, "0.35")
            await wait_until(lambda: exchange.status()["faults"].get("/order") == [])
            assert await signed_rows(session_factory) == 1
            assert exchange.order_receipts() == ()
        else:
            # The exchange fills it and never answers: posted, not recorded.
            exchange.withhold_next("/order", mode="hang")
            exchange.step_price(token_id, "0.35")
            await exchange.wait_for_order_receipts(1, timeout_s=TIMEOUT_S)
        leader.kill()
        await leader.wait()
        reconciled = await standby.wait_for_log("rule_attempt_reconciled", rule_id=rule_id)
        await standby.wait_for_log("worker.took_over")
        exchange.clear_faults()

    assert reconciled["outcome"] == "executed"
    assert len(exchange.order_receipts()) == 1
    assert shares_of(exchange, wallet.funder, token_id) == 0
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]
    row = await rule_row(session_factory, rule_id)
    assert (row.status, row.trigger_tx_hash is not None) == (TradeRuleStatus.TRIGGERED, True)
    kinds = [e.event_type for e in await events_of(session_factory, rule_id)]
    assert kinds.count(TradeRuleEventType.ACTION_ATTEMPT) == 1
    assert kinds.count(TradeRuleEventType.ACTION_EXECUTED) == 1


async def test_a_leader_cut_off_from_its_lock_stops_before_the_standby_starts(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
    make_rule: MakeRule,
    tmp_path: Path,
) -> None:
    wallet, token_id, rule_id = await funded_stop(exchange, session_factory, keybox, make_rule)
    other_wallet, other_token, other_rule = await funded_stop(
        exchange, session_factory, keybox, make_rule
    )
    settings = worker_settings(exchange, database_url, polymarket_http_timeout_s=60.0)

    async with asyncio.timeout(TIMEOUT_S), worker_processes(tmp_path) as workers:
        leader, standby = await leader_and_standby(
            workers, settings, keybox_key, exchange, wallets=2
        )
        # The leader is mid-sale (filled, answer withheld) when PostgreSQL ends its lock
        # connection; the process lives on.
        exchange.withhold_next("/order", mode="hang")
        exchange.step_price(token_id, "0.35")
        await exchange.wait_for_order_receipts(1, timeout_s=TIMEOUT_S)
        await _pg_execute(
            database_url,
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            f"WHERE locktype = 'advisory' AND objid = {LOCK_KEY} AND granted "
            # This test's database only: other tests on the server hold the same key.
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        stepped_down = await leader.wait_for_log("worker.stepped_down")
        acquired = await standby.wait_for_log("worker.leadership_acquired")
        await standby.wait_for_log("rule_attempt_reconciled", rule_id=rule_id)
        await standby.wait_for_log("worker.took_over")
        exchange.clear_faults()
        # A second stop crosses after the takeover: only the new leader sells it.
        exchange.step_price(other_token, "0.35")
        await standby.wait_for_log("rule_executed", rule_id=other_rule)
        assert leader.process.returncode is None

    assert log_time(stepped_down) <= log_time(acquired)
    assert stepped_down["abandoned"] == 1
    assert leader.find("rule_executed", rule_id=other_rule) is None
    assert len(exchange.order_receipts()) == 2
    for wallet_id, token, funder in (
        (wallet.secret_id, token_id, wallet.funder),
        (other_wallet.secret_id, other_token, other_wallet.funder),
    ):
        assert await executed_sells(session_factory, wallet_id) == [Decimal("9")]
        assert shares_of(exchange, funder, token) == 0


async def test_sigterm_hands_over_with_trailing_levels_flushed_and_no_timeout(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    keybox: KeyBox,
    keybox_key: str,
    database_url: str,
    make_rule: MakeRule,
    tmp_path: Path,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="9", avg_price="0.5")
    rule = await make_rule(
        wallet.secret_id, ids.yes, TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10"
    )
    settings = worker_settings(exchange, database_url)
    metrics_port = free_port()

    async with (
        asyncio.timeout(TIMEOUT_S),
        worker_processes(tmp_path) as workers,
        httpx.AsyncClient() as http,
    ):
        leader, standby = await leader_and_standby(
            workers, settings, keybox_key, exchange, "--metrics-port", str(metrics_port)
        )
        exchange.step_price(ids.yes, "0.70")
        while await trailing_raises(http, metrics_port) < 1:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.02)
        leader.terminate()
        assert await leader.wait() == 0
        acquired = await standby.wait_for_log("worker.leadership_acquired")
        await standby.wait_for_log("worker.took_over")
        # The level the old leader raised now guards the position under the new leader:
        # 0.60 is above the original 0.40 stop and below the raised level.
        raised = (await rule_row(session_factory, rule.id)).trigger_price
        exchange.step_price(ids.yes, "0.60")
        executed = await standby.wait_for_log("rule_executed", rule_id=rule.id)

    assert leader.find("worker.leadership_released") is not None
    assert acquired["after_release"] is True
    # Raised from 0.40 to 10 % under the midpoint around a 0.70 bid.
    assert 0.62 <= raised < 0.70
    assert executed["outcome"] == "executed"
    assert len(exchange.order_receipts()) == 1
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("9")]


async def trailing_raises(http: httpx.AsyncClient, port: int) -> float:
    """The worker's trailing-raise count from its ``/metrics``."""
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    families = text_string_to_metric_families(text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "vincent_trade_manager_evaluations_total"
        and sample.labels.get("result") == "trailing_raised"
    )
