"""TRADE_MANAGER_MAX_RULES_PER_SECRET holds under parallel creates (real app, both DBs)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from tests.api.conftest import RULES, api_settings, stop_loss
from tests.helpers import make_tenant
from vincent.app import create_app
from vincent.db.session import create_engine, create_session_factory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager import rule_manager
from vincent.services.trade_manager.types import ActionType, RuleAction

MAX_RULES = 100
HELD = 90
PARALLEL_CREATES = 30


async def test_parallel_creates_never_pass_the_rule_cap(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            tenant = await make_tenant(session)
            await session.commit()
            for _ in range(HELD):
                await rule_manager.create_rule(
                    session,
                    tenant.secret_id,
                    rule_manager.NewRule(
                        rule_type=TradeRuleType.STOP_LOSS,
                        market_id="0x" + "ab" * 32,
                        token_id="1234567890",
                        trigger_price=Decimal("0.4"),
                        action=RuleAction(ActionType.SELL_ALL),
                    ),
                    max_active_rules=MAX_RULES,
                )
            await session.commit()
        app = create_app(
            api_settings(database_url, trade_manager_max_rules_per_secret=MAX_RULES),
            skill_factory=None,
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://vincent") as http:
                # The key is resolved once first, as any agent's first call would: 30 cold
                # lookups at once would each hold a read connection besides the write one.
                warm = await http.get(RULES, headers=tenant.headers)
                assert warm.status_code == 200
                answers = await asyncio.gather(
                    *(
                        http.post(RULES, json=stop_loss(), headers=tenant.headers)
                        for _ in range(PARALLEL_CREATES)
                    )
                )
        async with sessions() as session:
            active = await rule_manager.count_active_rules(session, tenant.secret_id)
    finally:
        await engine.dispose()

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201] * (MAX_RULES - HELD) + [400] * (PARALLEL_CREATES - MAX_RULES + HELD)
    assert active == MAX_RULES
