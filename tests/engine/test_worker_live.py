"""The worker end to end: local exchange over loopback, real skill, real database (both)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.engine.conftest import MakeRule
from tests.engine.live import (
    events_of,
    executed_sells,
    is_connected,
    open_market,
    rule_row,
    running_worker,
    shares_of,
    worker_settings,
)
from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 15.0


async def test_stop_fires_on_the_first_crossing_and_sells_the_held_shares_once(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    exchange.credit(wallet.funder, token_id=ids.yes, shares="37.5", avg_price="0.5")
    rule = await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")

    settings = worker_settings(exchange, database_url)
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            # Best bids; the midpoint is half a tick above: 0.455, 0.425, 0.405, 0.395, 0.345.
            for best_bid in ("0.45", "0.42", "0.40", "0.39", "0.34"):
                exchange.step_price(ids.yes, best_bid)
            await worker.wait_for_executions(1)

    row = await rule_row(session_factory, rule.id)
    assert row.status is TradeRuleStatus.TRIGGERED
    assert row.trigger_tx_hash is not None
    assert shares_of(exchange, wallet.funder, ids.yes) == 0
    assert await executed_sells(session_factory, wallet.secret_id) == [Decimal("37.5")]
    assert len(exchange.order_receipts()) == 1
    events = await events_of(session_factory, rule.id)
    assert [e.event_type for e in events] == [
        TradeRuleEventType.RULE_CREATED,
        TradeRuleEventType.RULE_EVALUATED,
        TradeRuleEventType.ACTION_ATTEMPT,
        TradeRuleEventType.ACTION_EXECUTED,
        TradeRuleEventType.RULE_TRIGGERED,
    ]
    assert events[1].event_data == {
        "currentPrice": 0.395,
        "triggerPrice": 0.4,
        "shouldTrigger": True,
        "source": "websocket",
    }
    assert events[4].event_data == {"result": {"orderId": row.trigger_tx_hash, "executed": True}}
