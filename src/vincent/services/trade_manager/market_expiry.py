"""End the rules of a market that ended: ACTIVE → EXPIRED with ``RULE_EXPIRED``, in one UPDATE.

Also writes the ``RULE_EXPIRED`` events of rules past their ``expiresAt``, marks the cached
positions of a resolved market redeemable, and fails rules whose token is not an outcome of
their market. Never commits; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import TradeMonitoredPosition, TradeRule
from vincent.enums import TradeRuleEventType, TradeRuleStatus
from vincent.services.trade_manager.event_logger import log_event, log_events
from vincent.services.trade_manager.market_endings import (
    EXPIRES_AT,
    RESOLVED,
    MarketEnding,
    misplaced_message,
)


async def expire_market_rules(
    session: AsyncSession, token_ids: Collection[str], ending: MarketEnding, now: datetime
) -> list[str]:
    """Every ACTIVE rule on ``token_ids`` → EXPIRED with the ending's message; return ids.

    Rules paused by an OCO sibling are ACTIVE and end too. Rules being executed (TRIGGERED)
    are left to their execution.
    """
    if not token_ids:
        return []
    result = await session.execute(
        sa.update(TradeRule)
        .where(TradeRule.status == TradeRuleStatus.ACTIVE, TradeRule.token_id.in_(token_ids))
        .values(
            status=TradeRuleStatus.EXPIRED,
            error_message=ending.message,
            oco_paused_by=None,
            updated_at=now,
        )
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )
    expired = list(result.scalars().all())
    await log_expired(session, expired, ending, now)
    if ending.reason == RESOLVED:
        await _mark_redeemable(session, token_ids, ending.winning_token_id, now)
    return expired


async def log_expired(
    session: AsyncSession, rule_ids: Iterable[str], ending: MarketEnding, now: datetime
) -> None:
    """One RULE_EXPIRED per rule, with the ending's reason (and winning token)."""
    data = ending.event_data()
    await log_events(
        session, ((rule_id, TradeRuleEventType.RULE_EXPIRED, data) for rule_id in rule_ids), now
    )


EXPIRED_AT_ENDING = MarketEnding(EXPIRES_AT, "rule expired (expiresAt)")


async def fail_misplaced_rules(
    session: AsyncSession, rules: Iterable[tuple[str, str, str]], now: datetime
) -> list[str]:
    """(rule id, token id, market id) of rules whose token is not an outcome of their market:
    ACTIVE → FAILED with a message saying so and ``RULE_FAILED``; return the ids that moved.

    Only ACTIVE rules: one that fired meanwhile is left to its execution.
    """
    failed = []
    for rule_id, token_id, market_id in rules:
        message = misplaced_message(token_id, market_id)
        result = await session.execute(
            sa.update(TradeRule)
            .where(TradeRule.id == rule_id, TradeRule.status == TradeRuleStatus.ACTIVE)
            .values(
                status=TradeRuleStatus.FAILED,
                error_message=message,
                triggered_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            log_event(session, rule_id, TradeRuleEventType.RULE_FAILED, {"errorMessage": message})
            failed.append(rule_id)
    return failed


async def _mark_redeemable(
    session: AsyncSession, token_ids: Collection[str], winner: str | None, now: datetime
) -> None:
    # The monitor caches only live positions, so it never rewrites these rows after this.
    position = TradeMonitoredPosition
    values: dict[str, object] = {"redeemable": True, "last_updated_at": now, "updated_at": now}
    if winner is not None:
        values["current_price"] = sa.case((position.token_id == winner, 1.0), else_=0.0)
    await session.execute(
        sa.update(position)
        .where(position.token_id.in_(token_ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
