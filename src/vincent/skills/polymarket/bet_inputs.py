"""What a bet reads before it decides, in one session: the secret's wallet (a deleted
secret is refused), its policy rules, the action already recorded under the idempotency
key and (for a position handed in by the caller) whether the secret acted since it was
read (one statement), then the spending windows only when a policy needs them.

A rule's sell (issue 14) reads none of it before the POST when ``InputsCache`` holds the
secret's wallet and policies. The claim's own UPDATE then also requires (``inputs_guard``,
no statement of its own) that the policies are the ones decided with
(``policies_version``, raised by the database on every change, from any process), that the
secret still exists and that it has not bought into the position since it was read; when
the claim is lost, ``inputs_current`` tells which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vincent.db.driver_statement import equals_any
from vincent.db.models import Policy, Secret, TransactionLog
from vincent.enums import TransactionStatus
from vincent.errors import SecretNotFound
from vincent.policies import repository as policy_repository
from vincent.policies.config import parse_config
from vincent.policies.evaluator import PolicyRule, SpendingWindows, needs_spending_windows
from vincent.skills.polymarket.clients import WALLET_COLUMNS, WalletRef, wallet_of
from vincent.skills.polymarket.types import ClaimGuard

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


def _acted_since(with_buys: bool, prefix: str = "") -> sa.ColumnElement[bool]:
    """Whether the secret (``{prefix}secret_id``) wrote a BUY of ``{prefix}token_id`` after
    ``{prefix}since`` (bound parameters)."""
    if not with_buys:
        return sa.false()
    moved = aliased(TransactionLog)  # not the inputs' outer-joined row
    return sa.exists().where(
        moved.secret_id == sa.bindparam(f"{prefix}secret_id"),
        equals_any(moved.status, _POSITION_MOVING),  # part of the claim's statement
        moved.updated_at > sa.bindparam(f"{prefix}since", type_=TransactionLog.updated_at.type),
        # Only a BUY can make a position larger than the one read; a size too large
        # (a sale since) is refused by the exchange and re-read then.
        moved.request_data["side"].as_string() == "BUY",
        moved.request_data["tokenId"].as_string() == sa.bindparam(f"{prefix}token_id"),
    )


def _inputs_statement(with_buys: bool) -> Any:  # a Select of wallet, policy, row, flag
    """The one read, built once with bound parameters (``secret_id``, ``key``; ``since``
    and ``token_id`` with the BUY check): a bet's hot path neither builds nor re-keys it."""
    return (
        sa.select(
            *WALLET_COLUMNS,
            Secret.policies_version,
            Policy,
            TransactionLog,
            _acted_since(with_buys).label("acted_since"),
        )
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
    # The secret's ``policies_version`` the rules were read at.
    version: int = 0


@dataclass(frozen=True, slots=True)
class SecretInputs:
    """What a bet of the secret decides with that changes only with its policies."""

    wallet: WalletRef
    rules: list[PolicyRule]
    version: int


class InputsCache:
    """Each secret's wallet and policies as last read, for the trade manager's sells.

    Never trusted on its own: the claim's UPDATE requires the version it was read at
    (``inputs_guard``), and a mismatch drops the entry. Bounded: past ``max_secrets`` the oldest
    entries go first.
    """

    def __init__(self, max_secrets: int = 100_000) -> None:
        self._max = max_secrets
        self._inputs: dict[str, SecretInputs] = {}

    def get(self, secret_id: str) -> SecretInputs | None:
        return self._inputs.get(secret_id)

    def remember(self, secret_id: str, inputs: BetInputs) -> None:
        self._inputs.pop(secret_id, None)  # re-inserted last: the newest entry
        self._inputs[secret_id] = SecretInputs(inputs.wallet, inputs.rules, inputs.version)
        while len(self._inputs) > self._max:
            del self._inputs[next(iter(self._inputs))]

    def forget(self, secret_id: str) -> None:
        self._inputs.pop(secret_id, None)

    def __len__(self) -> int:
        return len(self._inputs)


def _guard(with_buys: bool) -> sa.ColumnElement[bool]:
    """``inputs_guard``'s condition, built once with bound parameters (``guard_*``):
    building it per fire cost more CPU than signing the order."""
    current = sa.exists().where(
        Secret.id == sa.bindparam("guard_secret_id"),
        Secret.policies_version == sa.bindparam("guard_version"),
        Secret.deleted_at.is_(None),
    )
    if not with_buys:
        return current
    return sa.and_(current, ~_acted_since(True, prefix="guard_"))


_GUARD = _guard(with_buys=False)
_GUARD_AND_BUYS = _guard(with_buys=True)


def inputs_guard(
    secret_id: str,
    version: int,
    *,
    positions_read_at: datetime | None = None,
    token_id: str = "",
) -> ClaimGuard:
    """The condition for the claim's UPDATE, with its values: the secret exists, its
    policies are still at ``version`` and (with ``positions_read_at``) it wrote no BUY of
    ``token_id`` since then (less ``POSITION_SETTLE``)."""
    params: dict[str, object] = {"guard_secret_id": secret_id, "guard_version": version}
    if positions_read_at is None:
        return ClaimGuard(_GUARD, params)
    params.update(guard_since=positions_read_at - POSITION_SETTLE, guard_token_id=token_id)
    return ClaimGuard(_GUARD_AND_BUYS, params)


async def inputs_current(session: AsyncSession, guard: ClaimGuard) -> bool:
    """Whether ``guard`` holds now (asked after a lost claim: was it the inputs?)."""
    return bool(await session.scalar(sa.select(guard.condition), guard.params))


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
        wallet,
        rules,
        windows,
        rows[0].TransactionLog,
        acted_since=bool(rows[0].acted_since),
        version=rows[0].policies_version,
    )
