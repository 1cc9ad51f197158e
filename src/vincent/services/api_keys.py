"""Agent API keys: issue, resolve by hash, revoke. The key itself is never stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.crypto import API_KEY_PREFIX, api_key_display_prefix, hash_api_key, new_api_key
from vincent.db.base import utcnow
from vincent.db.models import ApiKey, Secret
from vincent.enums import SecretType
from vincent.errors import NotFound

# last_used_at is refreshed at most this often, so reads do not become writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Bounds of the in-process cache of resolved keys (see ``ApiKeyCache``).
DEFAULT_CACHE_TTL_S = 2.0
DEFAULT_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class AuthenticatedSecret:
    """The caller's secret as handlers see it: no private key, no credentials."""

    id: str
    type: SecretType
    name: str
    eoa_address: str
    funder_address: str
    signature_type: int
    api_key_id: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: str
    secret_id: str
    key: str
    prefix: str
    created_at: datetime


async def issue_api_key(
    session: AsyncSession, secret_id: str, name: str | None = None
) -> IssuedKey:
    """Create a key for ``secret_id``; the plaintext is returned once and never stored."""
    secret = await session.get(Secret, secret_id)
    if secret is None or secret.deleted_at is not None:
        raise NotFound("Secret not found")
    key = new_api_key()
    row = ApiKey(
        secret_id=secret_id,
        key_hash=hash_api_key(key),
        key_prefix=api_key_display_prefix(key),
        name=name,
    )
    session.add(row)
    await session.flush()
    return IssuedKey(row.id, secret_id, key, row.key_prefix, row.created_at)


async def revoke_api_key(session: AsyncSession, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound("API key not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def list_api_keys(session: AsyncSession, secret_id: str) -> list[ApiKey]:
    statement = sa.select(ApiKey).where(ApiKey.secret_id == secret_id).order_by(ApiKey.created_at)
    return list((await session.scalars(statement)).all())


class ApiKeyCache:
    """Keys resolved in the last ``ttl_s`` seconds, by SHA-256 digest: auth without a query.

    Only successful lookups are kept (an unknown key always reaches the database, so a new
    key works at once and guessing cannot fill the cache). A key revoked (``vincent keys
    revoke``), or a secret deleted, is refused at most ``ttl_s`` seconds later: the entry
    expires and the next lookup reads the database. ``ttl_s=0`` turns the cache off. At most
    ``max_entries`` keys are held; past that the oldest entry is dropped.

    ``load`` single-flights misses: requests that miss on a key while a lookup of it is
    running wait for that lookup instead of each making their own (a burst of N first
    requests makes one query and holds at most one connection for it).
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_CACHE_TTL_S,
        max_entries: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, AuthenticatedSecret]] = {}
        self._loading: dict[str, asyncio.Task[AuthenticatedSecret | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> AuthenticatedSecret | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, secret: AuthenticatedSecret) -> None:
        if self.ttl_s <= 0:
            return
        self._entries.pop(digest, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = (self._clock() + self.ttl_s, secret)

    def clear(self) -> None:
        self._entries.clear()

    async def load(
        self, digest: str, lookup: Callable[[], Awaitable[AuthenticatedSecret | None]]
    ) -> AuthenticatedSecret | None:
        """The cached secret, else the result of ``lookup`` (kept when not None), shared
        with every caller that misses on ``digest`` while it runs.

        The lookup runs in its own task: a caller that is cancelled (its client went away)
        leaves it running for the others.
        """
        if (cached := self.get(digest)) is not None:
            return cached
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.create_task(self._load(digest, lookup), name="api-key-lookup")
            self._loading[digest] = task
            task.add_done_callback(lambda done: self._loaded(digest, done))
        return await asyncio.shield(task)

    async def _load(
        self, digest: str, lookup: Callable[[], Awaitable[AuthenticatedSecret | None]]
    ) -> AuthenticatedSecret | None:
        resolved = await lookup()
        if resolved is not None:
            self.put(digest, resolved)
        return resolved

    def _loaded(self, digest: str, task: asyncio.Task[AuthenticatedSecret | None]) -> None:
        if self._loading.get(digest) is task:
            del self._loading[digest]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone; theirs to raise


async def resolve_api_key(
    session: AsyncSession, key: str, cache: ApiKeyCache | None = None
) -> AuthenticatedSecret | None:
    """The live secret behind ``key``, or None if unknown, revoked or its secret is deleted.

    Keys are compared by SHA-256 hash (an indexed equality lookup of the digest). With a
    ``cache``, a key resolved less than ``cache.ttl_s`` ago is answered without a query.
    The lookup runs in ``session``; see ``authenticate_api_key`` for requests.
    """
    if not key.startswith(API_KEY_PREFIX):
        return None
    digest = hash_api_key(key)
    if cache is not None and (cached := cache.get(digest)) is not None:
        return cached
    resolved = await _lookup(session, digest)
    if cache is not None and resolved is not None:
        cache.put(digest, resolved)
    return resolved


async def authenticate_api_key(
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    key: str,
    cache: ApiKeyCache,
) -> AuthenticatedSecret | None:
    """``resolve_api_key`` for a request: a miss is looked up in a session of its own,
    closed (its connection back in the pool) before this returns, and shared with the
    concurrent misses on the same key (``ApiKeyCache.load``).

    So authentication never holds a connection while the request takes another: a burst
    of requests larger than the pool cannot each hold one and wait for a second.
    """
    if not key.startswith(API_KEY_PREFIX):
        return None

    async def lookup() -> AuthenticatedSecret | None:
        async with sessions() as session:
            return await _lookup(session, digest)

    digest = hash_api_key(key)
    return await cache.load(digest, lookup)


async def _lookup(session: AsyncSession, digest: str) -> AuthenticatedSecret | None:
    statement = (
        sa.select(ApiKey, Secret)
        .join(Secret, Secret.id == ApiKey.secret_id)
        .where(
            ApiKey.key_hash == digest,
            ApiKey.revoked_at.is_(None),
            Secret.deleted_at.is_(None),
        )
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    api_key, secret = row[0], row[1]
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(
            sa.update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now)
        )
        await session.commit()
    return AuthenticatedSecret(
        id=secret.id,
        type=secret.type,
        name=secret.name,
        eoa_address=secret.eoa_address,
        funder_address=secret.funder_address,
        signature_type=secret.signature_type,
        api_key_id=api_key.id,
    )
