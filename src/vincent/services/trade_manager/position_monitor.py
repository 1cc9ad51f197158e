"""Write the monitored-position cache (``TradeMonitoredPosition``) from live holdings.

Network calls (the skill) happen before a short transaction opens; a row is written only
when something in it changed, so an idle tick writes nothing. Rows are never deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import utcnow
from vincent.db.models import TradeMonitoredPosition, TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleStatus
from vincent.skills.polymarket.types import Holding, TradingSkill

logger = logging.getLogger(__name__)

POSITION_SIDE = "BUY"

# Told of every holdings read: secret id, holdings, when the read started (the worker's
# ``HoldingsCache``, so a fire plans its sell without reading them again).
HoldingsListener = Callable[[str, list[Holding], datetime], None]


def _position_values(holding: Holding) -> dict[str, Any]:
    return {
        "market_slug": holding.market_slug,
        "quantity": float(holding.shares),
        "avg_entry_price": (
            None if holding.average_entry_price is None else float(holding.average_entry_price)
        ),
        "current_price": 0.0 if holding.current_price is None else float(holding.current_price),
        "market_title": holding.market_title,
        "outcome": holding.outcome,
        "end_date": holding.end_date,
        "redeemable": holding.redeemable,
    }


def _monitored(holdings: list[Holding]) -> list[Holding]:
    # As the seed: only live positions (shares > 0, not redeemable) are cached.
    return [h for h in holdings if h.shares > 0 and not h.redeemable]


async def update_positions(
    session_factory: SessionFactory,
    skill: TradingSkill,
    secret_id: str,
    *,
    now: datetime | None = None,
    on_read: HoldingsListener | None = None,
) -> int:
    """Refresh one secret's cached positions from its live holdings; return rows written."""
    read_at = now or utcnow()
    read = await skill.get_holdings(secret_id)
    if on_read is not None:
        on_read(secret_id, read, read_at)
    holdings = _monitored(read)
    if not holdings:
        return 0
    now = now or utcnow()
    written = 0
    async with session_factory() as session, session.begin():
        existing = {
            (row.market_id, row.token_id): row
            for row in await session.scalars(
                sa.select(TradeMonitoredPosition).where(
                    TradeMonitoredPosition.secret_id == secret_id,
                    TradeMonitoredPosition.side == POSITION_SIDE,
                )
            )
        }
        for holding in holdings:
            values = _position_values(holding)
            row = existing.get((holding.condition_id, holding.token_id))
            if row is None:
                session.add(
                    TradeMonitoredPosition(
                        secret_id=secret_id,
                        market_id=holding.condition_id,
                        token_id=holding.token_id,
                        side=POSITION_SIDE,
                        last_updated_at=now,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
                written += 1
            elif any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                row.last_updated_at = now
                row.updated_at = now
                written += 1
    return written


async def secrets_with_active_rules(session: AsyncSession) -> list[str]:
    """Distinct secret ids that own at least one ACTIVE rule."""
    statement = (
        sa.select(TradeRule.secret_id)
        .where(TradeRule.status == TradeRuleStatus.ACTIVE)
        .distinct()
        .order_by(TradeRule.secret_id)
    )
    return list((await session.scalars(statement)).all())


async def update_all_positions(
    session_factory: SessionFactory,
    skill: TradingSkill,
    *,
    now: datetime | None = None,
    on_read: HoldingsListener | None = None,
) -> int:
    """Refresh positions of every secret with ACTIVE rules; return rows written.

    A failing secret is logged and skipped so one tenant cannot starve the others; the
    first error is re-raised at the end so the tick still counts as failed.
    """
    async with session_factory() as session:
        secret_ids = await secrets_with_active_rules(session)
    written = 0
    first_error: Exception | None = None
    for secret_id in secret_ids:
        try:
            written += await update_positions(
                session_factory, skill, secret_id, now=now, on_read=on_read
            )
        except Exception as error:  # contained per tenant; reported below
            logger.warning(
                "position_refresh_failed",
                extra={"secret_id": secret_id, "error": type(error).__name__},
            )
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    return written


async def get_position(
    session: AsyncSession, secret_id: str, market_id: str, token_id: str
) -> TradeMonitoredPosition | None:
    """The cached position of one secret on one token, if any."""
    statement = sa.select(TradeMonitoredPosition).where(
        TradeMonitoredPosition.secret_id == secret_id,
        TradeMonitoredPosition.market_id == market_id,
        TradeMonitoredPosition.token_id == token_id,
        TradeMonitoredPosition.side == POSITION_SIDE,
    )
    return (await session.scalars(statement)).one_or_none()


async def get_current_price(skill: TradingSkill, token_id: str) -> Decimal | None:
    """The token's CLOB midpoint over HTTP (the fallback when the feed is stale), or None."""
    return await skill.get_midpoint(token_id)
