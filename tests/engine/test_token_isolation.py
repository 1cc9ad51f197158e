"""One tenant's rule on a token the exchange does not know (issue 13 §6): its HTTP price
fails, is counted and backs off alone; ticks succeed, the breaker stays closed, and the
other tenants' rules still fire. Real exchange, real skill, both databases."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.engine.conftest import MakeRule
from tests.engine.live import (
    executed_sells,
    open_market,
    running_worker,
    worker_settings,
)
from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 20.0
UNKNOWN_TOKEN = "9" * 77


def _sample(worker: TradeMonitoringWorker, name: str, **labels: str) -> float:
    return worker.metrics_registry.get_sample_value(name, labels) or 0.0


async def _tick(worker: TradeMonitoringWorker) -> None:
    await worker.wait_for_ticks(worker.request_tick())


async def test_an_unknown_token_backs_off_alone_and_never_fails_a_tick(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    careless = await add_wallet(session_factory, keybox)
    careful = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(careful.funder, token_id=ids.yes, shares="7", avg_price="0.5")
    await make_rule(careless.secret_id, UNKNOWN_TOKEN, TradeRuleType.STOP_LOSS, "0.40")
    await make_rule(careful.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    # No feed: every token is priced over HTTP on every tick. One failed tick would open
    # the breaker (and stop every tenant's HTTP pricing for the cooldown).
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
        trade_manager_breaker_failures=1,
    )
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            for _ in range(3):
                await _tick(worker)
            status = worker.status()
            failures = _sample(
                worker, "vincent_trade_manager_http_price_failures_total", reason="not_found"
            )
            skipped = _sample(worker, "vincent_trade_manager_http_price_skipped_total")
            backing_off = _sample(worker, "vincent_trade_manager_http_price_tokens_backing_off")
            failed_ticks = _sample(
                worker, "vincent_trade_manager_poll_ticks_total", result="failed"
            )

            exchange.step_price(ids.yes, "0.35")
            await _tick(worker)
            await worker.wait_for_executions(1)

    assert (status.consecutive_failures, status.circuit_breaker_until) == (0, None)
    assert failed_ticks == 0
    assert failures == 1  # asked once, then left to back off
    assert skipped >= 2
    assert backing_off == 1
    assert await executed_sells(session_factory, careful.secret_id) == [Decimal("7")]


async def test_the_breaker_still_opens_when_the_whole_exchange_fails(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    await make_rule(wallet.secret_id, ids.no, TradeRuleType.STOP_LOSS, "0.10")
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
        trade_manager_breaker_failures=2,
    )
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await _tick(worker)
            exchange.fail_next("/book", count=1000, status=503)
            await _tick(worker)
            await _tick(worker)
            status = worker.status()
            exchange.clear_faults()

    assert status.consecutive_failures >= 2
    assert status.circuit_breaker_until is not None
