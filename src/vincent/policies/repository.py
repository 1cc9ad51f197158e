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


def _micro_dollars(total: object) -> Decimal:
    # SQLite sums NUMERIC as binary floats: back to micro-dollars.
    return Decimal(str(total or 0)).quantize(Decimal("0.000001"))


async def spending_windows(session: AsyncSession, secret_id: str, now: datetime) -> SpendingWindows:
    """The rolling 24 h and 7 day spend of the secret, in one query (one round trip: it
    runs under the secret's spend lock)."""
    day_start = now - DAY
    daily = sa.func.sum(
        sa.case((TransactionLog.created_at >= day_start, TransactionLog.usd_value), else_=0)
    )
    weekly = sa.func.sum(TransactionLog.usd_value)
    row = (
        await session.execute(
            sa.select(daily, weekly).where(
                TransactionLog.secret_id == secret_id,
                TransactionLog.status.not_in(NOT_SPENDING),
                TransactionLog.created_at >= now - WEEK,
            )
        )
    ).one()
    return SpendingWindows(daily_usd=_micro_dollars(row[0]), weekly_usd=_micro_dollars(row[1]))
