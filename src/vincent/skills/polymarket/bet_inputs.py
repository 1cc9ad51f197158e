"""What a bet reads before it decides, in one session: the secret's wallet (a deleted
secret is refused), its policy rules and the action already recorded under the
idempotency key (one statement), then the spending windows only when a policy needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import Policy, Secret, TransactionLog
from vincent.errors import SecretNotFound
from vincent.policies import repository as policy_repository
from vincent.policies.config import parse_config
from vincent.policies.evaluator import PolicyRule, SpendingWindows, needs_spending_windows
from vincent.skills.polymarket.clients import WALLET_COLUMNS, WalletRef, wallet_of

NO_SPENDING = SpendingWindows(Decimal(0), Decimal(0))


@dataclass(frozen=True, slots=True)
class BetInputs:
    wallet: WalletRef
    rules: list[PolicyRule]
    windows: SpendingWindows
    # The row already recorded under the request's idempotency key (any secret's).
    existing: TransactionLog | None


async def read_bet_inputs(
    session: AsyncSession, secret_id: str, idempotency_key: str | None, now: datetime
) -> BetInputs:
    """Read a bet's inputs; ``SecretNotFound`` if the secret is missing or deleted."""
    # Policies are read afresh on every bet: the CLI and the admin API change them from
    # other processes, and nothing would tell this one.
    existing_on = (
        sa.false() if idempotency_key is None else TransactionLog.idempotency_key == idempotency_key
    )
    statement = (
        sa.select(*WALLET_COLUMNS, Policy, TransactionLog)
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
    return BetInputs(wallet, rules, windows, rows[0].TransactionLog)
