"""A burst of fired rules runs at most MAX_CONCURRENT_EXECUTIONS sells at once, of which at
most MAX_CONCURRENT_BEFORE_POST on their way to the POST; all complete."""

from __future__ import annotations

import asyncio

from tests.engine.conftest import MakeRule, MakeSecret
from tests.engine.live import is_connected, open_market, running_worker, worker_settings
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager.fire_lanes import MAX_CONCURRENT_BEFORE_POST
from vincent.services.trade_manager.price_dispatch import MAX_CONCURRENT_EXECUTIONS
from vincent.sim import LocalExchange
from vincent.skills.polymarket.types import BetRequest, BetResult, ExecutedRow, Settlement

TIMEOUT_S = 20.0
RULES = MAX_CONCURRENT_EXECUTIONS + 4


class GatedSellSkill(ScriptedSkill):
    """Holds every sell at the exchange until released; tracks how many are on their way
    to their POST (signing, writing) and how many wait for the exchange, at once."""

    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(sessions)
        self.release = asyncio.Event()
        self.preparing = 0
        self.most_preparing = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived = asyncio.Condition()

    async def place_bet(self, request: BetRequest) -> BetResult:
        self.preparing += 1
        self.most_preparing = max(self.most_preparing, self.preparing)
        await asyncio.sleep(0)  # a real fire yields on its way (the durable write)
        self.preparing -= 1
        if request.stored is not None:
            request.stored()  # on record: the POST is what waits now
        async with self.arrived:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.arrived.notify_all()
        await self.release.wait()
        self.in_flight -= 1
        return await super().place_bet(request)


async def test_a_burst_of_fires_is_bounded_and_every_rule_sells(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    ids = open_market(exchange, "0.50")
    skill = GatedSellSkill(session_factory)
    for n in range(RULES):
        secret_id = await make_secret(f"tenant-{n}")
        skill.hold(secret_id, ids.yes, "10")
        await make_rule(secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")
            async with skill.arrived:
                await skill.arrived.wait_for(lambda: skill.in_flight == MAX_CONCURRENT_EXECUTIONS)
            skill.release.set()
            await worker.wait_for_executions(RULES)
    assert skill.most_in_flight == MAX_CONCURRENT_EXECUTIONS
    # Only the pre-POST lane's few work toward their POST at once: the first order of a
    # burst does not share the CPU with all the others.
    assert skill.most_preparing == MAX_CONCURRENT_BEFORE_POST
    assert len(skill.requests) == RULES


class GatedSettlementSkill(ScriptedSkill):
    """Sells at once; holds every settlement follow (the recording after the POST)."""

    def __init__(self, sessions: SessionFactory, expected: int) -> None:
        super().__init__(sessions)
        self.release = asyncio.Event()
        self.follows = 0
        self.expected = expected
        self.all_sold = asyncio.Event()

    async def place_bet(self, request: BetRequest) -> BetResult:
        result = await super().place_bet(request)
        if len(self.requests) >= self.expected:
            self.all_sold.set()
        return result

    async def follow_settlement(
        self, transaction_log_id: str, recorded: ExecutedRow | None = None
    ) -> Settlement:
        self.follows += 1
        await self.release.wait()
        return await super().follow_settlement(transaction_log_id, recorded)


async def test_recording_never_holds_a_fire_slot(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    """Twice as many fires as slots: every order goes out while no outcome can be recorded."""
    ids = open_market(exchange, "0.50")
    fires = 2 * MAX_CONCURRENT_EXECUTIONS
    skill = GatedSettlementSkill(session_factory, fires)
    for n in range(fires):
        secret_id = await make_secret(f"tenant-{n}")
        skill.hold(secret_id, ids.yes, "10")
        await make_rule(secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            exchange.step_price(ids.yes, "0.40")
            await skill.all_sold.wait()
            assert worker.executions_completed == 0  # nothing recorded yet
            skill.release.set()
            await worker.wait_for_executions(fires)
    assert skill.follows == fires
