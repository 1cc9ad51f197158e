"""What a bet reads before it decides, in one session: the secret's wallet (a deleted
secret is refused), its policy rules, the action already recorded under the idempotency
key and (for a position handed in by the caller) whether the secret acted since it was
read (one statement), then the spending windows only when a policy needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vincent.db.models import Policy, Secret, TransactionLog
from vincent.enums import TransactionStatus
from vincent.errors import SecretNotFound
from vincent.policies import repository as policy_repository
from vincent.policies.config import parse_config
from vincent.policies.evaluator import PolicyRule, SpendingWindows, needs_spending_windows
from vincent.skills.polymarket.clients import WALLET_COLUMNS, WalletRef, wallet_of

NO_SPENDING = SpendingWindows(Decimal(0), Decimal(0))

# A position read this soon after an action of its wallet may not show it yet (the Data
# API lags the exchange, and processes' clocks differ): such a read counts as stale.
POSITION_SETTLE = timedelta(seconds=5)
# Actions that moved, or may have moved, the wallet's positions.
_POSITION_MOVING = (
    TransactionStatus.EXECUTED,
    TransactionStatus.PENDING,
    TransactionStatus.UNKNOWN,
)


@dataclass(frozen=True, slots=True)
class BetInputs:
    wallet: WalletRef
    rules: list[PolicyRule]
    windows: SpendingWindows
    # The row already recorded under the request's idempotency key (any secret's).
    existing: TransactionLog | None
    # The secret acted (or may have) after the ``positions_read_at`` given: a position
    # read then may be out of date.
    acted_since: bool = False


async def read_bet_inputs(
    session: AsyncSession,
    secret_id: str,
    idempotency_key: str | None,
    now: datetime,
    *,
    positions_read_at: datetime | None = None,
) -> BetInputs:
    """Read a bet's inputs; ``SecretNotFound`` if the secret is missing or deleted.

    ``positions_read_at``: when the caller read the position it hands in; ``acted_since``
    says whether an action of the secret that moves positions was written since (less
    ``POSITION_SETTLE``).
    """
    # Policies are read afresh on every bet: the CLI and the admin API change them from
    # other processes, and nothing would tell this one.
    existing_on = (
        sa.false() if idempotency_key is None else TransactionLog.idempotency_key == idempotency_key
    )
    acted: sa.ColumnElement[bool] = sa.false()
    if positions_read_at is not None:
        moved = aliased(TransactionLog)  # not the outer join's row
        acted = sa.exists().where(
            moved.secret_id == secret_id,
            moved.status.in_(_POSITION_MOVING),
            moved.updated_at > positions_read_at - POSITION_SETTLE,
        )
    statement = (
        sa.select(*WALLET_COLUMNS, Policy, TransactionLog, acted.label("acted_since"))
        .select_from(Secret)
        .outerjoin(Policy, Policy.secret_id == Secret.id)
        .outerjoin(TransactionLog, existing_on)
        .where(Secret.id == secret_id)
    )
    rows = (await session.execute(statement)).all()
    if not rows:
        raise SecretNotFound()
    wallet = wallet_of(secret_id, rows[0])
    policies = {row.Policy.id: row.Policy for row in rows if row.Policy is not None}
    rules = [
        PolicyRule(policy.id, policy.policy_type, parse_config(policy.policy_type, policy.config))
        for policy in policies.values()
    ]
    windows = (
        await policy_repository.spending_windows(session, secret_id, now)
        if needs_spending_windows(rules)
        else NO_SPENDING
    )
    return BetInputs(
        wallet, rules, windows, rows[0].TransactionLog, acted_since=bool(rows[0].acted_since)
    )
