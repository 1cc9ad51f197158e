"""A rule runs only in a worker of its own mode; the worker says how many it leaves alone."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from tests.engine.conftest import MakeSecret, ManualClock
from tests.engine.live import is_connected, open_market, rule_row, shares_of, worker_settings
from tests.engine.scripted_skill import ScriptedSkill
from tests.helpers import TEST_ENCRYPTION_KEY, make_tenant
from vincent.app import create_app
from vincent.db.session import SessionFactory
from vincent.enums import ExecutionMode, TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.services.trade_manager.event_logger import log_event
from vincent.services.trade_manager.reconciliation import reconcile_rules
from vincent.services.trade_manager.rule_executor import ExecutionOutcome, RuleExecutor
from vincent.services.trade_manager.rule_manager import NewRule, create_rule, mark_rule_triggered
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.sim import LocalExchange

TIMEOUT_S = 15.0
STATUS = "/api/skills/polymarket/rules/status"


async def _rule(
    session_factory: SessionFactory, secret_id: str, token_id: str, mode: ExecutionMode
) -> str:
    new = NewRule(
        rule_type=TradeRuleType.STOP_LOSS,
        market_id=f"0xcond-{token_id}",
        token_id=token_id,
        trigger_price=Decimal("0.45"),
        action=RuleAction(ActionType.SELL_ALL),
        execution_mode=mode,
    )
    async with session_factory() as session, session.begin():
        return (await create_rule(session, secret_id, new, max_active_rules=100)).id


async def test_a_live_worker_leaves_paper_rules_alone_and_says_so(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with session_factory() as session:
        alice = await make_tenant(session, "alice")
        bob = await make_tenant(session, "bob")
        await session.commit()
    ids = open_market(exchange, "0.50")
    for tenant in (alice, bob):
        exchange.credit(tenant.address, token_id=ids.yes, shares="6", avg_price="0.5")
    live_rule = await _rule(session_factory, alice.secret_id, ids.yes, ExecutionMode.LIVE)
    # Made while the service ran with EXECUTION_MODE=paper; the service now runs live.
    paper_rule = await _rule(session_factory, bob.secret_id, ids.yes, ExecutionMode.PAPER)
    settings = worker_settings(
        exchange, database_url, vincent_encryption_key=SecretStr(TEST_ENCRYPTION_KEY)
    )
    app = create_app(settings)
    caplog.set_level(logging.INFO, logger="vincent.services.trade_manager.poll_tick")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as client,
    ):
        worker: TradeMonitoringWorker = app.state.vincent.worker
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")
            await worker.wait_for_executions(1)
            await worker.wait_for_idle()
        bob_status = await client.get(STATUS, headers=bob.headers)
        alice_status = await client.get(STATUS, headers=alice.headers)
        bob_rule = await client.get(
            f"/api/skills/polymarket/rules/{paper_rule}", headers=bob.headers
        )

    assert (await rule_row(session_factory, live_rule)).status is TradeRuleStatus.TRIGGERED
    assert shares_of(exchange, alice.address, ids.yes) == 0
    assert (await rule_row(session_factory, paper_rule)).status is TradeRuleStatus.ACTIVE
    assert shares_of(exchange, bob.address, ids.yes) == 6
    assert len(exchange.order_receipts()) == 1
    assert bob_rule.json()["data"]["executionMode"] == "paper"
    assert bob_status.json()["data"]["executionMode"] == "live"
    assert bob_status.json()["data"]["yourOtherModeRulesCount"] == 1
    assert alice_status.json()["data"]["yourOtherModeRulesCount"] == 0
    [report] = [r for r in caplog.records if r.getMessage() == "rules_of_other_mode_left_alone"]
    assert (report.execution_mode, report.rules) == ("live", 1)  # type: ignore[attr-defined]


async def test_a_paper_worker_leaves_live_rules_alone(
    exchange: LocalExchange, session_factory: SessionFactory, database_url: str
) -> None:
    async with session_factory() as session:
        alice = await make_tenant(session, "alice")
        await session.commit()
    ids = open_market(exchange, "0.50")
    exchange.credit(alice.address, token_id=ids.yes, shares="6", avg_price="0.5")
    live_rule = await _rule(session_factory, alice.secret_id, ids.yes, ExecutionMode.LIVE)
    settings = worker_settings(
        exchange,
        database_url,
        vincent_encryption_key=SecretStr(TEST_ENCRYPTION_KEY),
        execution_mode=ExecutionMode.PAPER,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as client,
    ):
        worker: TradeMonitoringWorker = app.state.vincent.worker
        async with asyncio.timeout(TIMEOUT_S):
            exchange.step_price(ids.yes, "0.40")
            # A full tick (reconcile, index sync, HTTP prices of indexed tokens) after the
            # price moved below the stop.
            await worker.wait_for_ticks(worker.request_tick())
            await worker.wait_for_idle()
        status = await client.get(STATUS, headers=alice.headers)
        watched = worker.watched_rule(live_rule)

    assert watched is None
    assert worker.executions_completed == 0
    assert (await rule_row(session_factory, live_rule)).status is TradeRuleStatus.ACTIVE
    assert shares_of(exchange, alice.address, ids.yes) == 6
    assert exchange.order_receipts() == ()
    assert status.json()["data"]["executionMode"] == "paper"
    assert status.json()["data"]["yourOtherModeRulesCount"] == 1


async def test_reconciliation_settles_only_rules_of_its_mode(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
) -> None:
    secret_id = await make_secret("a")
    rules = {
        mode: await _rule(session_factory, secret_id, "111", mode)
        for mode in (ExecutionMode.LIVE, ExecutionMode.PAPER)
    }
    for mode, rule_id in rules.items():
        # Claimed, attempt written, then the process died: the order was never sent.
        async with session_factory() as session, session.begin():
            assert await mark_rule_triggered(session, rule_id)
            log_event(
                session,
                rule_id,
                TradeRuleEventType.ACTION_ATTEMPT,
                {"type": "market_order", "idempotencyKey": f"k-{mode.value}"},
            )
    executor = RuleExecutor(session_factory, skill, clock=clock, retry_delay=lambda n: 1.0)

    report = await reconcile_rules(
        session_factory, skill, executor, now=clock.now(), execution_mode=ExecutionMode.LIVE
    )

    assert dict(report.outcomes) == {rules[ExecutionMode.LIVE]: ExecutionOutcome.RETRY}
    paper = await rule_row(session_factory, rules[ExecutionMode.PAPER])
    assert paper.status is TradeRuleStatus.TRIGGERED
