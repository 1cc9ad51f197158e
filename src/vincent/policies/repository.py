"""Policy reads for one secret: its rules and its rolling spending windows.

Every query is scoped by ``secret_id``. Spending counts every action that may spend:
executed ones and those still in flight (PENDING, UNKNOWN, ...), from the moment they
passed the policy check; a FAILED, DENIED or still unapproved action spends nothing.
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


# Listed by what does NOT spend, so an in-flight status added later counts (the safe side).
NOT_SPENDING = (
    TransactionStatus.FAILED,
    TransactionStatus.DENIED,
    TransactionStatus.PENDING_APPROVAL,
)


async def spent_usd_since(session: AsyncSession, secret_id: str, since: datetime) -> Decimal:
    """USD of the secret's executed and in-flight actions created since ``since``."""
    total = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(TransactionLog.usd_value), 0)).where(
            TransactionLog.secret_id == secret_id,
            TransactionLog.status.not_in(NOT_SPENDING),
            TransactionLog.created_at >= since,
        )
    )
    # SQLite sums NUMERIC as binary floats: back to micro-dollars.
    return Decimal(str(total or 0)).quantize(Decimal("0.000001"))


async def spending_windows(session: AsyncSession, secret_id: str, now: datetime) -> SpendingWindows:
    return SpendingWindows(
        daily_usd=await spent_usd_since(session, secret_id, now - DAY),
        weekly_usd=await spent_usd_since(session, secret_id, now - WEEK),
    )
