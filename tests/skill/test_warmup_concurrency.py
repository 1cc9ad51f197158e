"""Warm-ups run a few at a time, and warming a token the SDK already holds fetches nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from tests.skill.conftest import MarketIds, Wallet
from vincent.enums import TradeRuleType, TransactionStatus
from vincent.services.trade_manager.skill_warmup import WARMUP_CONCURRENCY, SkillWarmup
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.types import (
    ActionClaim,
    ApprovalResolution,
    AttemptResolution,
    BetRequest,
    BetResult,
    ExecutedRow,
    Holding,
    OrderBook,
    Settlement,
)


class GatedSkill:
    """The skill's outermost edge: ``prepare`` waits at a gate, counting how many wait."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = 0
        self.most_at_once = 0
        self.arrived = asyncio.Condition()

    async def prepare(self, secret_id: str, token_id: str) -> None:
        async with self.arrived:
            self.waiting += 1
            self.most_at_once = max(self.most_at_once, self.waiting)
            self.arrived.notify_all()
        await self.gate.wait()
        self.waiting -= 1

    async def place_bet(self, request: BetRequest) -> BetResult:
        raise NotImplementedError

    async def get_holdings(self, secret_id: str) -> list[Holding]:
        raise NotImplementedError

    async def get_midpoint(self, token_id: str) -> Decimal | None:
        raise NotImplementedError

    async def get_order_book(self, token_id: str) -> OrderBook:
        raise NotImplementedError

    async def resolve_attempt(self, idempotency_key: str) -> AttemptResolution:
        raise NotImplementedError

    async def resolve_approvals(
        self, approval_ids: Collection[str], *, now: datetime
    ) -> dict[str, ApprovalResolution]:
        raise NotImplementedError

    async def lookup_market_slug(self, condition_id: str) -> str | None:
        raise NotImplementedError

    async def keep_warm(self, token_ids: Collection[str]) -> None:
        raise NotImplementedError

    async def warm_claim(self, claim: ActionClaim) -> None:
        raise NotImplementedError

    async def follow_settlement(
        self, transaction_log_id: str, recorded: ExecutedRow | None = None
    ) -> Settlement:
        raise NotImplementedError

    async def settle_unknown_actions(
        self, *, older_than: datetime, limit: int = 100
    ) -> list[tuple[str, TransactionStatus]]:
        raise NotImplementedError


def snapshot(secret_id: str, token_id: str) -> RuleSnapshot:
    return RuleSnapshot(
        id=f"{secret_id}-{token_id}",
        secret_id=secret_id,
        rule_type=TradeRuleType.STOP_LOSS,
        market_id="m",
        token_id=token_id,
        trigger_price=Decimal("0.4"),
        trailing_percent=None,
        action=RuleAction(ActionType.SELL_ALL),
    )


async def test_warm_ups_run_four_at_a_time() -> None:
    skill = GatedSkill()
    warmup = SkillWarmup(skill)
    warmup.want([snapshot("s", f"t{i}") for i in range(6)])

    async with asyncio.timeout(5), asyncio.TaskGroup() as group:
        group.create_task(warmup.run())
        async with skill.arrived:
            await skill.arrived.wait_for(lambda: skill.waiting == WARMUP_CONCURRENCY)
        assert warmup.pending == 6  # four running, two queued behind them
        skill.gate.set()
        warmup.close()

    assert skill.most_at_once == WARMUP_CONCURRENCY
    assert warmup.pending == 0


async def test_warming_a_market_the_sdk_holds_fetches_nothing(
    exchange: LocalExchange, skill: PolymarketSkill, wallet: Wallet, market: MarketIds
) -> None:
    await skill.prepare(wallet.secret_id, market.yes)
    for path in (f"/clob-markets/{market.condition_id}", f"/markets-by-token/{market.yes}"):
        exchange.fail_next(path, count=3, status=500)
    armed = exchange.status()["faults"]

    await skill.prepare(wallet.secret_id, market.yes)

    assert exchange.status()["faults"] == armed  # no request reached the exchange
