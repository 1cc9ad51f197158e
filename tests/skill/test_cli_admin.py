"""``vincent approvals`` and ``vincent policies``: the owner's CLI, against a real database."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.skill.conftest import MarketIds, Wallet, collateral_of
from vincent.cli_admin import approvals_app, policies_app
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import BetRequest, BetStatus


@pytest.fixture
def env(exchange: LocalExchange, database_url: str, encryption_key: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "VINCENT_ENCRYPTION_KEY": encryption_key,
        "POLYMARKET_CLOB_URL": exchange.clob_url,
        "POLYMARKET_WS_URL": exchange.ws_url,
        "POLYMARKET_DATA_API_URL": exchange.data_api_url,
        "POLYMARKET_GAMMA_URL": exchange.gamma_url,
        "POLYMARKET_RELAYER_URL": exchange.relayer_url,
    }


async def run(app: Any, env: dict[str, str], *args: str) -> Any:
    # The CLI runs its own event loop; a thread keeps this loop serving the exchange.
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_policies_set_list_delete(env: dict[str, str], wallet: Wallet) -> None:
    created = await run(
        policies_app, env, "set", wallet.secret_id, "spending_limit_daily", '{"maxUsd": 25}'
    )
    listed = await run(policies_app, env, "list", "--secret-id", wallet.secret_id)
    deleted = await run(policies_app, env, "delete", wallet.secret_id, "SPENDING_LIMIT_DAILY")

    assert created["policyType"] == "SPENDING_LIMIT_DAILY"
    assert created["config"] == {"maxUsd": 25.0, "approvalOverride": False}
    assert [p["id"] for p in listed] == [created["id"]]
    assert deleted == {"deleted": True}
    assert await run(policies_app, env, "list") == []


async def test_policies_set_refuses_a_bad_config(env: dict[str, str], wallet: Wallet) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        policies_app,
        ["set", wallet.secret_id, "SPENDING_LIMIT_PER_TX", '{"maxUsd": -1}'],
        env=env,
    )

    assert result.exit_code == 1
    assert "Validation failed" in result.output


async def test_approvals_list_approve_and_deny(
    env: dict[str, str],
    exchange: LocalExchange,
    skill: PolymarketSkill,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, collateral="100")
    await run(policies_app, env, "set", wallet.secret_id, "REQUIRE_APPROVAL", '{"enabled": true}')
    first, second = [
        await skill.place_bet(
            BetRequest(
                secret_id=wallet.secret_id, token_id=market.yes, side="BUY", amount=Decimal(10)
            )
        )
        for _ in range(2)
    ]
    assert first.status is second.status is BetStatus.PENDING_APPROVAL

    listed = await run(approvals_app, env, "list")
    denied = await run(approvals_app, env, "deny", str(second.pending_approval_id))
    approved = await run(approvals_app, env, "approve", str(first.pending_approval_id))

    assert {a["id"] for a in listed} == {first.pending_approval_id, second.pending_approval_id}
    assert denied["status"] == "DENIED"
    assert denied["decidedBy"].startswith("cli:")
    assert approved["result"]["status"] == "executed"
    assert Decimal(90) <= collateral_of(exchange, wallet.funder) < Decimal("90.01")
    assert await run(approvals_app, env, "list") == []
