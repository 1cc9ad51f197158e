"""Tenants: create and list Polymarket wallet secrets. The private key is encrypted at once."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.crypto import KeyBox
from vincent.db.models import Secret
from vincent.enums import SecretType
from vincent.services.api_keys import IssuedKey, issue_api_key
from vincent.skills.polymarket.wallets import classify_wallet


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
