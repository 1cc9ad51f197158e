"""Tenants: create, list and claim Polymarket wallet secrets. Private keys are encrypted at
once and never leave this module in clear (agent-created wallets are generated here)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from eth_account import Account
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.crypto import KeyBox
from vincent.db.base import utcnow
from vincent.db.models import Secret
from vincent.enums import SecretType
from vincent.errors import NotFound
from vincent.services.api_keys import IssuedKey, issue_api_key
from vincent.skills.polymarket.wallets import classify_wallet

# The name an agent-created secret gets (its memo, when given, is kept apart).
AGENT_SECRET_NAME = "agent"


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    secret: Secret
    api_key: IssuedKey


async def create_secret(
    session: AsyncSession,
    keybox: KeyBox,
    *,
    name: str,
    private_key: str,
    funder: str | None = None,
    signature_type: int | None = None,
) -> CreatedSecret:
    """Store a wallet secret and issue its first API key (returned once, in clear).

    The wallet type is what the SDK's address derivation says; a ``signature_type`` that
    disagrees raises ``InvalidWallet``.
    """
    wallet = classify_wallet(private_key, funder, signature_type)
    secret = Secret(
        type=SecretType.POLYMARKET_WALLET,
        name=name,
        encrypted_private_key=keybox.encrypt(private_key),
        eoa_address=wallet.eoa_address,
        funder_address=wallet.funder_address,
        signature_type=wallet.signature_type,
    )
    session.add(secret)
    await session.flush()
    key = await issue_api_key(session, secret.id, name="default")
    return CreatedSecret(secret, key)


async def list_secrets(session: AsyncSession) -> list[Secret]:
    statement = sa.select(Secret).where(Secret.deleted_at.is_(None)).order_by(Secret.created_at)
    return list((await session.scalars(statement)).all())


@dataclass(frozen=True, slots=True)
class AgentSecret:
    """A secret created for an agent: its first key and the one-time claim token, in clear."""

    secret: Secret
    api_key: IssuedKey
    claim_token: str


class ClaimTokenInvalid(NotFound):
    default_message = "Invalid or already used claim token"


def _claim_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_agent_secret(
    session: AsyncSession, keybox: KeyBox, *, memo: str | None
) -> AgentSecret:
    """Generate a wallet (an EOA, signature type 0) for an agent and store it like any secret.

    The private key is made here, encrypted by ``create_secret`` and dropped: no caller ever
    sees it. The claim token is returned once; only its SHA-256 is stored.
    """
    private_key = "0x" + bytes(Account.create().key).hex()
    created = await create_secret(
        session, keybox, name=AGENT_SECRET_NAME, private_key=private_key, signature_type=0
    )
    del private_key
    claim_token = new_claim_token()
    created.secret.memo = memo
    created.secret.claim_token_hash = _claim_token_hash(claim_token)
    await session.flush()
    return AgentSecret(created.secret, created.api_key, claim_token)


def new_claim_token() -> str:
    """A URL-safe claim token (32 random bytes) that never starts with ``-``: the owner
    passes it to ``vincent secrets claim TOKEN``, where a leading ``-`` reads as an option
    (1 token in 64 did)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


async def claim_secret(session: AsyncSession, claim_token: str) -> Secret:
    """Mark the secret behind ``claim_token`` claimed; the token works once.

    One conditional UPDATE decides: of two claims with one token, one wins and the other
    gets ``ClaimTokenInvalid``, as does an unknown token or a deleted secret's.
    """
    digest = _claim_token_hash(claim_token.strip())
    secret_id = await session.scalar(
        sa.update(Secret)
        .where(Secret.claim_token_hash == digest, Secret.deleted_at.is_(None))
        .values(claim_token_hash=None, claimed_at=utcnow())
        .returning(Secret.id)
    )
    if secret_id is None:
        raise ClaimTokenInvalid()
    secret = await session.get(Secret, secret_id, populate_existing=True)
    assert secret is not None
    return secret
