"""Trailing raises are coalesced: one write per rule per flush, the latest level wins."""

from __future__ import annotations

from decimal import Decimal

from tests.engine.conftest import MakeRule, MakeSecret
from tests.engine.live import events_of, rule_row
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleEventType, TradeRuleType
from vincent.services.trade_manager.rule_executor import TrailingRaise
from vincent.services.trade_manager.trailing_levels import TrailingLevels


async def test_many_raises_become_one_write_with_the_latest_level(
    session_factory: SessionFactory, make_secret: MakeSecret, make_rule: MakeRule
) -> None:
    secret_id = await make_secret("a")
    rule = await make_rule(
        secret_id, "1", TradeRuleType.TRAILING_STOP, "0.40", trailing_percent="10"
    )
    levels = TrailingLevels()
    for price in ("0.50", "0.55", "0.60"):
        trigger = Decimal(price) * Decimal("0.9")
        levels.record(rule.id, TrailingRaise(trigger, Decimal(price), Decimal(10)))

    assert await levels.flush(session_factory) == {rule.id: Decimal("0.540")}
    assert await levels.flush(session_factory) == {}
    # A stale lower level never lowers the stored one.
    levels.record(rule.id, TrailingRaise(Decimal("0.45"), Decimal("0.5"), Decimal(10)))
    assert await levels.flush(session_factory) == {}

    assert (await rule_row(session_factory, rule.id)).trigger_price == 0.54
    kinds = [e.event_type for e in await events_of(session_factory, rule.id)]
    assert kinds == [
        TradeRuleEventType.RULE_CREATED,
        TradeRuleEventType.RULE_TRAILING_UPDATED,
        TradeRuleEventType.RULE_EVALUATED,
    ]
