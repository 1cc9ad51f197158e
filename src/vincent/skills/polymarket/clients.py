"""One SDK client per secret: created once (≈0.3 s), reused, closed with the skill. All
of them share one CLOB connection pool and one market-metadata cache (``ExchangeLink``).

The private key is decrypted here and nowhere else; the client's L2 API credentials are
cached encrypted in ``Secret.encrypted_api_credentials`` so a restart does not derive
them again. Never logs keys or credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from polymarket import AsyncSecureClient
from polymarket._internal.environment import get_environment_config
from polymarket.environments import Environment
from polymarket.models.clob.api_key import ApiKeyCreds

from vincent.crypto import KeyBox
from vincent.db.models import Secret
from vincent.db.session import SessionFactory, one_statement_session
from vincent.enums import SecretType
from vincent.errors import InvalidSecretType, SecretNotFound
from vincent.skills.polymarket.errors import InvalidOrder, SkillError, WalletError
from vincent.skills.polymarket.exchange_errors import classify_sdk_error
from vincent.skills.polymarket.exchange_link import ExchangeLink, share_default_tls_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WalletRef:
    """A secret's wallet as the skill uses it; holds no key material."""

    secret_id: str
    eoa_address: str
    funder_address: str
    signature_type: int


# What a wallet needs of its secret row (never the encrypted key).
WALLET_COLUMNS = (
    Secret.deleted_at,
    Secret.type,
    Secret.eoa_address,
    Secret.funder_address,
    Secret.signature_type,
)


def wallet_of(secret_id: str, row: Any) -> WalletRef:
    """The wallet in ``row`` (``WALLET_COLUMNS`` of a live secret); ``SecretNotFound``
    if the secret was deleted."""
    if row.deleted_at is not None:
        raise SecretNotFound()
    if row.type is not SecretType.POLYMARKET_WALLET:
        raise InvalidSecretType()
    return WalletRef(secret_id, row.eoa_address, row.funder_address, row.signature_type)


async def load_wallet(session_factory: SessionFactory, secret_id: str) -> WalletRef:
    """The secret's wallet; ``SecretNotFound`` if missing or deleted."""
    async with one_statement_session(session_factory) as session:
        statement = sa.select(*WALLET_COLUMNS).where(Secret.id == secret_id)
        row = (await session.execute(statement)).one_or_none()
    if row is None:
        raise SecretNotFound()
    return wallet_of(secret_id, row)


class Wallets:
    """Each secret's wallet, remembered: its addresses never change for a secret id.

    Whether the secret still exists is never cached (a deleted secret is refused at once):
    ``load`` reads it every time, and callers run that read alongside their own I/O.
    """

    def __init__(self, session_factory: SessionFactory) -> None:
        self._session_factory = session_factory
        self._known: dict[str, WalletRef] = {}

    def known(self, secret_id: str) -> WalletRef | None:
        """The wallet's addresses if seen before; says nothing about whether it is live."""
        return self._known.get(secret_id)

    def remember(self, wallet: WalletRef) -> WalletRef:
        self._known[wallet.secret_id] = wallet
        return wallet

    async def load(self, secret_id: str) -> WalletRef:
        """The live secret's wallet (one read); ``SecretNotFound`` if missing or deleted."""
        return self.remember(await load_wallet(self._session_factory, secret_id))


class ClientRegistry:
    """Creates each secret's ``AsyncSecureClient`` on first use and keeps it."""

    def __init__(
        self,
        environment: Environment,
        session_factory: SessionFactory,
        keybox: KeyBox,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environment = environment
        self._session_factory = session_factory
        self._keybox = keybox
        self._clients: dict[str, AsyncSecureClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        share_default_tls_context()  # a new SDK client builds a dozen httpx clients
        self.link = ExchangeLink(get_environment_config(environment).clob_url, clock=clock)

    @property
    def environment(self) -> Environment:
        return self._environment

    def any_client(self) -> AsyncSecureClient | None:
        """Some secret's client (for what every client shares), or None before the first."""
        return next(iter(self._clients.values()), None)

    async def client_for(self, secret_id: str) -> AsyncSecureClient:
        """The secret's client, created (and its credentials cached) on first use."""
        client = self._clients.get(secret_id)
        if client is not None:
            return client
        lock = self._locks.setdefault(secret_id, asyncio.Lock())
        async with lock:
            client = self._clients.get(secret_id)
            if client is None:
                client = await self._create(secret_id)
                self._clients[secret_id] = client
        return client

    async def discard(self, secret_id: str) -> None:
        """Forget a client whose credentials the exchange refused; the next use recreates it."""
        client = self._clients.pop(secret_id, None)
        if client is not None:
            self.link.release(client)
            await client.close()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            self.link.release(client)
            await client.close()
        await self.link.aclose()

    async def _create(self, secret_id: str) -> AsyncSecureClient:
        async with self._session_factory() as session:
            secret = await session.get(Secret, secret_id)
            if secret is None or secret.deleted_at is not None:
                raise SecretNotFound()
            private_key = self._keybox.decrypt(secret.encrypted_private_key)
            cached = self._cached_credentials(secret)
            funder = secret.funder_address
        try:
            client = await AsyncSecureClient.create(
                private_key=private_key,
                wallet=funder,
                environment=self._environment,
                credentials=cached,
            )
        except SkillError:
            raise
        except Exception as error:
            mapped = classify_sdk_error(error)
            logger.warning(
                "sdk_client_create_failed", extra={"secret_id": secret_id, "error": mapped.code}
            )
            # The SDK refusing the key or wallet as input is a wallet problem here.
            typed = WalletError(mapped.message) if type(mapped) is InvalidOrder else mapped
            raise typed from error
        finally:
            del private_key
        await self.link.adopt(client)
        if cached is None or client.credentials.key != cached.key:
            await self._store_credentials(secret_id, client.credentials)
        logger.info(
            "sdk_client_created",
            extra={"secret_id": secret_id, "wallet_type": client.wallet_type},
        )
        return client

    def _cached_credentials(self, secret: Secret) -> ApiKeyCreds | None:
        if not secret.encrypted_api_credentials:
            return None
        try:
            data = json.loads(self._keybox.decrypt(secret.encrypted_api_credentials))
            return ApiKeyCreds.model_validate(data)
        except ValueError:
            return None

    async def _store_credentials(self, secret_id: str, credentials: ApiKeyCreds) -> None:
        plaintext = json.dumps(
            {
                "apiKey": credentials.key,
                "secret": credentials.secret,
                "passphrase": credentials.passphrase,
            }
        )
        async with self._session_factory() as session, session.begin():
            secret = await session.get(Secret, secret_id)
            if secret is not None:
                secret.encrypted_api_credentials = self._keybox.encrypt(plaintext)
