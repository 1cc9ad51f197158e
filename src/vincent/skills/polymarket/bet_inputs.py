"""What a bet reads before it decides, in one session: the secret's wallet (a deleted
secret is refused), its policy rules, the action already recorded under the idempotency
key and (for a position handed in by the caller) whether the secret acted since it was
read (one statement), then the spending windows only when a policy needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

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


def _inputs_statement(with_buys: bool) -> Any:  # a Select of wallet, policy, row, flag
    """The one read, built once with bound parameters (``secret_id``, ``key``; ``since``
    and ``token_id`` with the BUY check): a bet's hot path neither builds nor re-keys it."""
    acted: sa.ColumnElement[bool] = sa.false()
    if with_buys:
        moved = aliased(TransactionLog)  # not the outer join's row
        acted = sa.exists().where(
            moved.secret_id == sa.bindparam("secret_id"),
            moved.status.in_(_POSITION_MOVING),
            moved.updated_at > sa.bindparam("since", type_=TransactionLog.updated_at.type),
            # Only a BUY can make a position larger than the one read; a size too large
            # (a sale since) is refused by the exchange and re-read then.
            moved.request_data["side"].as_string() == "BUY",
            moved.request_data["tokenId"].as_string() == sa.bindparam("token_id"),
        )
    return (
        sa.select(*WALLET_COLUMNS, Policy, TransactionLog, acted.label("acted_since"))
        .select_from(Secret)
        .outerjoin(Policy, Policy.secret_id == Secret.id)
        .outerjoin(TransactionLog, TransactionLog.idempotency_key == sa.bindparam("key"))
        .where(Secret.id == sa.bindparam("secret_id"))
    )


_NO_KEY = "-" * 129
_INPUTS = _inputs_statement(with_buys=False)
_INPUTS_AND_BUYS = _inputs_statement(with_buys=True)


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
    token_id: str = "",
) -> BetInputs:
    """Read a bet's inputs; ``SecretNotFound`` if the secret is missing or deleted.

    ``positions_read_at``: when the caller read the position of ``token_id`` it hands in;
    ``acted_since`` says whether a BUY of that token by the secret was written since (less
    ``POSITION_SETTLE``), which the position read may not show.
    """
    # Policies are read afresh on every bet: the CLI and the admin API change them from
    # other processes, and nothing would tell this one.
    # Without a key, one no row can hold (longer than the column allows).
    params: dict[str, object] = {"secret_id": secret_id, "key": idempotency_key or _NO_KEY}
    if positions_read_at is None:
        statement = _INPUTS
    else:
        statement = _INPUTS_AND_BUYS
        params.update(since=positions_read_at - POSITION_SETTLE, token_id=token_id)
    rows = (await session.execute(statement, params)).all()
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
