"""Owner-side policy management: set (one per type and secret), list, delete.

Only the owner's front ends (``vincent policies``, the admin API) call this; an agent's
API key never reaches it. Configs are validated before they are stored.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import utcnow
from vincent.db.models import Policy, Secret
from vincent.enums import PolicyType
from vincent.errors import NotFound, SecretNotFound, ValidationFailed
from vincent.policies.config import config_to_json, parse_config
from vincent.wire_time import iso


class PolicyNotFound(NotFound):
    default_message = "Policy not found"


def parse_policy_type(raw: str) -> PolicyType:
    try:
        return PolicyType(raw.upper())
    except ValueError as error:
        allowed = ", ".join(t.value for t in PolicyType)
        raise ValidationFailed(f"policyType must be one of {allowed}, was {raw!r}") from error


async def _require_secret(session: AsyncSession, secret_id: str) -> None:
    secret = await session.get(Secret, secret_id)
    if secret is None or secret.deleted_at is not None:
        raise SecretNotFound()


async def set_policy(
    session: AsyncSession, secret_id: str, policy_type: PolicyType, config: dict[str, Any]
) -> Policy:
    """Create or replace the secret's policy of ``policy_type``; commits."""
    await _require_secret(session, secret_id)
    stored = config_to_json(parse_config(policy_type, config))
    policy = await session.scalar(
        sa.select(Policy).where(Policy.secret_id == secret_id, Policy.policy_type == policy_type)
    )
    if policy is None:
        policy = Policy(secret_id=secret_id, policy_type=policy_type, config=stored)
        session.add(policy)
    else:
        policy.config = stored
        policy.updated_at = utcnow()
    await session.commit()
    return policy


async def list_policies(session: AsyncSession, secret_id: str | None = None) -> list[Policy]:
    statement = sa.select(Policy).order_by(Policy.secret_id, Policy.policy_type)
    if secret_id is not None:
        statement = statement.where(Policy.secret_id == secret_id)
    return list((await session.scalars(statement)).all())


async def delete_policy(session: AsyncSession, secret_id: str, policy_type: PolicyType) -> None:
    """Remove the secret's policy of ``policy_type``; ``PolicyNotFound`` if none; commits."""
    result = await session.execute(
        sa.delete(Policy).where(Policy.secret_id == secret_id, Policy.policy_type == policy_type)
    )
    if not getattr(result, "rowcount", 0):
        raise PolicyNotFound()
    await session.commit()


def policy_json(policy: Policy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "secretId": policy.secret_id,
        "policyType": policy.policy_type.value,
        "config": policy.config,
        "createdAt": iso(policy.created_at),
        "updatedAt": iso(policy.updated_at),
    }
