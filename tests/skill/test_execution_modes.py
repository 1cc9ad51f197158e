"""Paper and live never cross: every record carries its mode, and runs only in it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.skill.app_client import app_client
from tests.skill.conftest import MarketIds, Wallet, set_policy
from tests.skill.test_cli_admin import env, run  # noqa: F401  (env is a fixture)
from tests.skill.test_routes import admin, new_tenant
from vincent.cli_admin import approvals_app
from vincent.crypto import KeyBox
from vincent.db.models import PendingApproval, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import ApprovalStatus, ExecutionMode, PolicyType, TransactionStatus
from vincent.errors import ExecutionModeMismatch
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import BetRequest, BetStatus


def _buy(wallet: Wallet, token_id: str, usd: str) -> BetRequest:
    return BetRequest(
        secret_id=wallet.secret_id, token_id=token_id, side="BUY", amount=Decimal(usd)
    )


async def _approval(session_factory: SessionFactory, approval_id: str) -> PendingApproval:
    async with session_factory() as session:
        approval = await session.get(PendingApproval, approval_id)
    assert approval is not None
    return approval


async def test_audit_rows_and_approvals_record_their_mode(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    paper_skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, collateral="100")
    live = await skill.place_bet(_buy(wallet, market.yes, "5"))
    paper = await paper_skill.place_bet(_buy(wallet, market.yes, "5"))
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
    )
    pending = await paper_skill.place_bet(_buy(wallet, market.yes, "5"))

    async with session_factory() as session:
        rows = await session.execute(sa.select(TransactionLog.id, TransactionLog.execution_mode))
        modes = dict(rows.all())
    assert modes == {
        live.transaction_log_id: ExecutionMode.LIVE,
        paper.transaction_log_id: ExecutionMode.PAPER,
        pending.transaction_log_id: ExecutionMode.PAPER,
    }
    assert pending.pending_approval_id is not None
    approval = await _approval(session_factory, pending.pending_approval_id)
    assert approval.execution_mode is ExecutionMode.PAPER


async def test_a_paper_approval_is_refused_by_a_live_process_and_stays_pending(
    exchange: LocalExchange,
    paper_skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    database_url: str,
    encryption_key: str,
    env: dict[str, str],  # noqa: F811
) -> None:
    exchange.credit(wallet.funder, collateral="100")
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
    )
    pending = await paper_skill.place_bet(_buy(wallet, market.yes, "10"))
    assert pending.status is BetStatus.PENDING_APPROVAL
    approval_id = str(pending.pending_approval_id)

    # The owner restarted in live mode: neither the admin API nor the CLI may place it.
    async with app_client(exchange, database_url, encryption_key) as live:
        refused = await live.post(f"/api/admin/approvals/{approval_id}/approve", headers=admin())
    cli = await asyncio.to_thread(
        CliRunner().invoke, approvals_app, ["approve", approval_id], env=env
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "EXECUTION_MODE_MISMATCH"
    assert "paper mode" in refused.json()["error"]["message"]
    assert cli.exit_code == 1
    assert "paper mode" in cli.output
    assert (await _approval(session_factory, approval_id)).status is ApprovalStatus.PENDING
    assert exchange.order_receipts() == ()

    # In paper mode it is approved and fills on paper, still never on the exchange.
    approved = await run(approvals_app, {**env, "EXECUTION_MODE": "paper"}, "approve", approval_id)
    assert approved["result"]["status"] == "executed"
    assert approved["approval"]["executionMode"] == "paper"
    assert exchange.order_receipts() == ()


async def test_a_live_approval_is_refused_by_a_paper_process(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
    database_url: str,
    encryption_key: str,
) -> None:
    exchange.credit(wallet.funder, collateral="100")
    await set_policy(
        session_factory, wallet.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
    )
    pending = await skill.place_bet(_buy(wallet, market.yes, "10"))
    approval_id = str(pending.pending_approval_id)

    async with app_client(exchange, database_url, encryption_key, paper=True) as paper:
        refused = await paper.post(f"/api/admin/approvals/{approval_id}/approve", headers=admin())

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "EXECUTION_MODE_MISMATCH"
    assert (await _approval(session_factory, approval_id)).status is ApprovalStatus.PENDING


async def test_an_open_paper_action_is_not_resumed_live(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
    session_factory: SessionFactory,
) -> None:
    exchange.credit(wallet.funder, collateral="100")
    async with session_factory() as session, session.begin():
        # A paper action left open (its process died before it filled on paper).
        session.add(
            TransactionLog(
                secret_id=wallet.secret_id,
                action_type="polymarket_bet",
                request_data={
                    "tokenId": market.yes,
                    "side": "BUY",
                    "amount": "10",
                    "price": None,
                    "orderType": "FOK",
                },
                status=TransactionStatus.PENDING,
                idempotency_key="paper-open-1",
                execution_mode=ExecutionMode.PAPER,
            )
        )
    request = BetRequest(
        secret_id=wallet.secret_id,
        token_id=market.yes,
        side="BUY",
        amount=Decimal(10),
        idempotency_key="paper-open-1",
    )

    with pytest.raises(ExecutionModeMismatch):
        await skill.place_bet(request)

    assert exchange.order_receipts() == ()


async def test_a_paper_sell_without_a_position_is_a_400_like_live(
    exchange: LocalExchange,
    market: MarketIds,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    encryption_key: str,
) -> None:
    tenant = await new_tenant(session_factory, keybox, "alice")
    body = {"tokenId": market.yes, "side": "SELL", "amount": 5}
    answers: dict[str, httpx.Response] = {}
    for mode, paper in (("paper", True), ("live", False)):
        async with app_client(exchange, database_url, encryption_key, paper=paper) as client:
            answers[mode] = await client.post(
                "/api/skills/polymarket/bet", json=body, headers=tenant.headers
            )

    for answer in answers.values():
        assert answer.status_code == 400, answer.text
        assert answer.json()["success"] is False
        assert answer.json()["error"]["code"] == "NO_POSITION"
