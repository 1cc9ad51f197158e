"""Cancel beats approve: a rule cancelled while paused on PENDING_APPROVAL never sells.

The rule is paused by the real worker on the local exchange; the agent cancels through
the API, the owner approves through the admin API and the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.engine.conftest import MakeRule
from tests.engine.live import is_connected, open_market, rule_row, shares_of, worker_settings
from tests.helpers import TEST_ENCRYPTION_KEY, Tenant, make_tenant
from tests.skill.conftest import set_policy
from vincent.app import create_app
from vincent.cli_admin import approvals_app
from vincent.db.models import PendingApproval, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import (
    ApprovalStatus,
    PolicyType,
    TradeRuleStatus,
    TradeRuleType,
    TransactionStatus,
)
from vincent.services.trade_manager import TradeMonitoringWorker, rule_manager
from vincent.sim import LocalExchange

TIMEOUT_S = 20.0
OWNER = {"Authorization": "Bearer owner-token"}
RULES = "/api/skills/polymarket/rules"


@dataclass(frozen=True)
class Paused:
    tenant: Tenant
    rule_id: str
    approval_id: str


@dataclass(frozen=True)
class Harness:
    client: httpx.AsyncClient
    worker: TradeMonitoringWorker
    paused: list[Paused]
    token_id: str


@asynccontextmanager
async def paused_rules(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
    count: int,
) -> AsyncIterator[Harness]:
    """``count`` tenants, each holding 6 shares and a stop-loss paused on its approval."""
    tenants = []
    async with session_factory() as session:
        for n in range(count):
            tenants.append(await make_tenant(session, f"tenant-{n}"))
        await session.commit()
    ids = open_market(exchange, "0.50")
    rules = []
    for tenant in tenants:
        exchange.credit(tenant.address, token_id=ids.yes, shares="6", avg_price="0.5")
        await set_policy(
            session_factory, tenant.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
        )
        rules.append(await make_rule(tenant.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45"))
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
            await worker.wait_for_executions(count)
        async with session_factory() as session:
            approvals = {a.rule_id: a.id for a in await session.scalars(sa.select(PendingApproval))}
        for rule in rules:
            assert (await rule_row(session_factory, rule.id)).status is (
                TradeRuleStatus.PENDING_APPROVAL
            )
        paused = [
            Paused(tenant, rule.id, approvals[rule.id])
            for tenant, rule in zip(tenants, rules, strict=True)
        ]
        yield Harness(client, worker, paused, ids.yes)


def cli_env(exchange: LocalExchange, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "VINCENT_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "POLYMARKET_CLOB_URL": exchange.clob_url,
        "POLYMARKET_WS_URL": exchange.ws_url,
        "POLYMARKET_DATA_API_URL": exchange.data_api_url,
        "POLYMARKET_GAMMA_URL": exchange.gamma_url,
        "POLYMARKET_RELAYER_URL": exchange.relayer_url,
    }


async def cli_approve(exchange: LocalExchange, database_url: str, approval_id: str) -> str:
    """Run ``vincent approvals approve``; it must fail. Returns its output."""
    result = await asyncio.to_thread(
        CliRunner().invoke,
        approvals_app,
        ["approve", approval_id],
        env=cli_env(exchange, database_url),
    )
    assert result.exit_code == 1, result.output
    return result.output


async def approval_and_log(
    session_factory: SessionFactory, approval_id: str
) -> tuple[PendingApproval, TransactionLog]:
    async with session_factory() as session:
        approval = await session.get(PendingApproval, approval_id)
        assert approval is not None
        log = await session.get(TransactionLog, approval.transaction_log_id)
        assert log is not None
    return approval, log


async def test_cancelling_a_paused_rule_denies_its_approval(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    async with paused_rules(exchange, session_factory, database_url, make_rule, 1) as harness:
        [paused] = harness.paused
        canceled = await harness.client.delete(
            f"{RULES}/{paused.rule_id}", headers=paused.tenant.headers
        )
        approved = await harness.client.post(
            f"/api/admin/approvals/{paused.approval_id}/approve", headers=OWNER
        )
        cli_output = await cli_approve(exchange, database_url, paused.approval_id)

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["data"]["status"] == "CANCELED"
    approval, log = await approval_and_log(session_factory, paused.approval_id)
    assert approval.status is ApprovalStatus.DENIED
    assert approval.decided_by == rule_manager.CANCEL_ACTOR
    assert log.status is TransactionStatus.DENIED
    assert approved.status_code == 409, approved.text
    assert approved.json()["error"]["code"] == "APPROVAL_NOT_PENDING"
    assert "DENIED" in cli_output
    assert (await rule_row(session_factory, paused.rule_id)).status is TradeRuleStatus.CANCELED
    assert shares_of(exchange, paused.tenant.address, harness.token_id) == 6
    assert exchange.order_receipts() == ()


async def test_approving_for_a_rule_no_longer_waiting_is_refused(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    async with paused_rules(exchange, session_factory, database_url, make_rule, 1) as harness:
        [paused] = harness.paused
        # The rule stopped waiting without its approval being decided.
        async with session_factory() as session, session.begin():
            assert await rule_manager.mark_rule_failed(session, paused.rule_id, "gave up")
        approved = await harness.client.post(
            f"/api/admin/approvals/{paused.approval_id}/approve", headers=OWNER
        )
        cli_output = await cli_approve(exchange, database_url, paused.approval_id)

    assert approved.status_code == 409, approved.text
    error = approved.json()["error"]
    assert error["code"] == "APPROVAL_RULE_NOT_WAITING"
    assert error["message"].startswith(f"Rule {paused.rule_id} is no longer waiting")
    assert error["details"] == {"ruleId": paused.rule_id, "ruleStatus": "FAILED"}
    assert "no longer waiting" in cli_output
    approval, log = await approval_and_log(session_factory, paused.approval_id)
    assert approval.status is ApprovalStatus.PENDING
    assert log.status is TransactionStatus.PENDING_APPROVAL
    assert shares_of(exchange, paused.tenant.address, harness.token_id) == 6
    assert exchange.order_receipts() == ()


async def test_a_cancel_racing_an_approve_never_both_win(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    races = 4
    async with paused_rules(exchange, session_factory, database_url, make_rule, races) as harness:
        answers = await asyncio.gather(
            *(
                asyncio.gather(
                    harness.client.delete(f"{RULES}/{p.rule_id}", headers=p.tenant.headers),
                    harness.client.post(
                        f"/api/admin/approvals/{p.approval_id}/approve", headers=OWNER
                    ),
                )
                for p in harness.paused
            )
        )

    for paused, (canceled, approved) in zip(harness.paused, answers, strict=True):
        sold = shares_of(exchange, paused.tenant.address, harness.token_id) == 0
        # Exactly one wins, and the answers tell the truth about which.
        assert (canceled.status_code, approved.status_code) in ((200, 409), (400, 200)), (
            canceled.text,
            approved.text,
        )
        if canceled.status_code == 200:
            assert not sold
            approval, _ = await approval_and_log(session_factory, paused.approval_id)
            assert approval.status is ApprovalStatus.DENIED
        else:
            assert sold
            assert approved.json()["data"]["result"]["status"] == "executed"
