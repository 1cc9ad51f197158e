"""The position cache writes only rows that changed, only for secrets with ACTIVE rules."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import sqlalchemy as sa

from tests.engine.conftest import MakeRule, MakeSecret, ManualClock
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.models import TradeMonitoredPosition
from vincent.db.session import SessionFactory
from vincent.services.trade_manager.position_monitor import (
    get_current_price,
    get_position,
    update_all_positions,
    update_positions,
)


async def _rows(session_factory: SessionFactory) -> list[TradeMonitoredPosition]:
    async with session_factory() as session:
        statement = sa.select(TradeMonitoredPosition).order_by(TradeMonitoredPosition.token_id)
        return list((await session.scalars(statement)).all())


async def test_update_positions_writes_only_changed_live_rows(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
) -> None:
    secret_id = await make_secret("a")
    skill.hold(secret_id, "1", "10", market_title="Rain?", end_date="2030-01-01")
    skill.hold(secret_id, "2", "5")
    skill.hold(secret_id, "3", "4", redeemable=True)  # redeemable: not monitored
    skill.hold(secret_id, "4", "0")  # nothing held

    assert await update_positions(session_factory, skill, secret_id, now=clock.now()) == 2
    assert await update_positions(session_factory, skill, secret_id, now=clock.now()) == 0

    skill.holdings[secret_id][1] = replace(skill.holdings[secret_id][1], shares=Decimal("3"))
    clock.advance(5)
    assert await update_positions(session_factory, skill, secret_id, now=clock.now()) == 1

    rows = await _rows(session_factory)
    assert [(r.token_id, r.quantity, r.market_title, r.end_date) for r in rows] == [
        ("1", 10.0, "Rain?", "2030-01-01"),
        ("2", 3.0, None, None),
    ]
    assert rows[1].last_updated_at == clock.now()
    async with session_factory() as session:
        found = await get_position(session, secret_id, "0xcond-1", "1")
    assert found is not None
    assert found.quantity == 10.0


async def test_update_all_positions_covers_only_secrets_with_active_rules(
    session_factory: SessionFactory,
    skill: ScriptedSkill,
    clock: ManualClock,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    watched = await make_secret("watched")
    idle = await make_secret("idle")
    await make_rule(watched, "1")
    skill.hold(watched, "1", "10")
    skill.hold(idle, "2", "10")

    assert await update_all_positions(session_factory, skill, now=clock.now()) == 1
    assert [r.secret_id for r in await _rows(session_factory)] == [watched]
    assert skill.holdings_calls == 1


async def test_current_price_is_the_http_midpoint(skill: ScriptedSkill) -> None:
    skill.midpoints["1"] = Decimal("0.455")
    assert await get_current_price(skill, "1") == Decimal("0.455")
    assert await get_current_price(skill, "2") is None
