"""An owner's decision through the admin API finishes the paused rule at once, not a tick later."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from tests.engine.conftest import MakeRule
from tests.engine.live import is_connected, open_market, rule_row, shares_of, worker_settings
from tests.helpers import TEST_ENCRYPTION_KEY, make_tenant
from tests.skill.conftest import set_policy
from vincent.app import create_app
from vincent.db.models import PendingApproval
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType, TradeRuleStatus, TradeRuleType
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.sim import LocalExchange

TIMEOUT_S = 15.0
OWNER = {"Authorization": "Bearer owner-token"}


async def test_admin_approval_sells_and_denial_fails_without_waiting_for_the_tick(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    async with session_factory() as session:
        alice = await make_tenant(session, "alice")
        bob = await make_tenant(session, "bob")
        await session.commit()
    ids = open_market(exchange, "0.50")
    for tenant in (alice, bob):
        exchange.credit(tenant.address, token_id=ids.yes, shares="6", avg_price="0.5")
        await set_policy(
            session_factory, tenant.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
        )
    approved = await make_rule(alice.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    denied = await make_rule(bob.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    # A poll interval far longer than the test: only the admin API's wake-up can settle rules.
    settings = worker_settings(
        exchange,
        database_url,
        vincent_encryption_key=SecretStr(TEST_ENCRYPTION_KEY),
        vincent_admin_token=SecretStr("owner-token"),
        trade_manager_poll_interval_s=3600.0,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as client,
    ):
        worker: TradeMonitoringWorker = app.state.vincent.worker
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")
            await worker.wait_for_executions(2)
            async with session_factory() as session:
                pending = {
                    a.rule_id: a.id for a in await session.scalars(sa.select(PendingApproval))
                }
            # Ticks run only when woken here, so the first tick to start after a decision is
            # the one its wake-up asked for (a tick still running may have read too early).
            tick = worker.next_tick
            ok = await client.post(
                f"/api/admin/approvals/{pending[approved.id]}/approve", headers=OWNER
            )
            await worker.wait_for_ticks(tick)
            tick = worker.next_tick
            no = await client.post(f"/api/admin/approvals/{pending[denied.id]}/deny", headers=OWNER)
            await worker.wait_for_ticks(tick)

    assert (ok.status_code, no.status_code) == (200, 200)
    row = await rule_row(session_factory, approved.id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert row.trigger_tx_hash == ok.json()["data"]["result"]["orderId"]
    assert shares_of(exchange, alice.address, ids.yes) == 0
    row = await rule_row(session_factory, denied.id)
    assert row.status is TradeRuleStatus.FAILED
    assert shares_of(exchange, bob.address, ids.yes) == 6
    assert len(exchange.order_receipts()) == 1
