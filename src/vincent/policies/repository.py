"""Policy reads for one secret: its rules and its rolling spending windows.

Every query is scoped by ``secret_id``. Spending counts only EXECUTED actions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import Policy, TransactionLog
from vincent.enums import TransactionStatus
from vincent.policies.config import parse_config
from vincent.policies.evaluator import PolicyRule, SpendingWindows

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


async def load_rules(session: AsyncSession, secret_id: str) -> list[PolicyRule]:
    rows = (await session.scalars(sa.select(Policy).where(Policy.secret_id == secret_id))).all()
    return [
        PolicyRule(row.id, row.policy_type, parse_config(row.policy_type, row.config))
        for row in rows
    ]


async def executed_usd_since(session: AsyncSession, secret_id: str, since: datetime) -> Decimal:
    total = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(TransactionLog.usd_value), 0)).where(
            TransactionLog.secret_id == secret_id,
            TransactionLog.status == TransactionStatus.EXECUTED,
            TransactionLog.created_at >= since,
        )
    )
    # SQLite sums NUMERIC as binary floats: back to micro-dollars.
    return Decimal(str(total or 0)).quantize(Decimal("0.000001"))


async def spending_windows(session: AsyncSession, secret_id: str, now: datetime) -> SpendingWindows:
    return SpendingWindows(
        daily_usd=await executed_usd_since(session, secret_id, now - DAY),
        weekly_usd=await executed_usd_since(session, secret_id, now - WEEK),
    )
