"""Read side of the monitored-position cache (the worker's position monitor writes it)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import TradeMonitoredPosition


async def list_positions(session: AsyncSession, secret_id: str) -> list[TradeMonitoredPosition]:
    """The tenant's monitored positions, most recently updated first."""
    statement = (
        sa.select(TradeMonitoredPosition)
        .where(TradeMonitoredPosition.secret_id == secret_id)
        .order_by(TradeMonitoredPosition.updated_at.desc(), TradeMonitoredPosition.id)
    )
    return list((await session.scalars(statement)).all())
