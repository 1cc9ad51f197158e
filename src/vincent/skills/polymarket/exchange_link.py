"""One link to the exchange's CLOB for every secret's SDK client, kept warm (issue 14).

The SDK gives each client its own HTTP connection pools and its own cache of market
metadata (tick size, neg-risk, fees), kept 10 minutes, as ``MarketData`` keeps ours. The
service holds one client per secret, so a stop that fires long after its secret's last
order would first open a new TCP and TLS connection for its POST, and first read its
market's metadata again (ours, then the SDK's): several round trips on the real network
before the order leaves. Here:

- ``ExchangeLink`` gives every client's two CLOB transports (public and authenticated) one
  connection pool, and every client one metadata cache. What is per secret stays so: the
  authenticated transport still signs each request with its own secret's credentials, in
  its headers; only sockets and public market metadata are shared (the pool keeps no
  cookies). ``ping_if_idle`` keeps
  a connection open while nothing else goes out.
- ``adopt`` also hands the client an ``OrderIdSigner`` (its own key, parsed once), which
  keeps the order id eth_account computed while signing (``signed_orders``).
- ``WarmMarkets`` says which watched tokens' metadata is due to be read again, before it
  ages out of either cache (the skill's ``keep_warm`` reads it).
- The shared pool is ``http_transport.LeanTransport`` (HTTP/1.1 keep-alive connections,
  one write per request, llhttp's parser) under httpx's client: a request cost ~2.0 ms of
  the loop's CPU with httpx's default transport, ~0.9 with it. Behind a proxy set in the
  environment the link keeps httpx's transport.
- ``share_default_tls_context``: a new SDK client builds about a dozen httpx clients (one
  per service it can reach), and httpx loads the whole CA bundle for each (~20 ms of CPU):
  ~0.25 s of the event loop per secret's first client. One default context, built once
  with httpx's own function, serves them all (httpx advises sharing one across clients).

The SDK has no public way to share these: ``adopt`` sets them on the client's context
(the SDK's version is pinned in ``constraints.txt``; ``tests/skill/test_exchange_link.py``
fails if its shape changes).
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Callable, Collection
from collections.abc import Set as AbstractSet
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import httpx._transports.default as httpx_transports
from polymarket import AsyncSecureClient
from polymarket._internal.actions.orders.cache import AsyncOrderMetadataCache
from polymarket.clients._transport import TransportOptions

from vincent.skills.polymarket.http_transport import LeanClient, lean_transport_for
from vincent.skills.polymarket.signed_orders import OrderIdSigner

logger = logging.getLogger(__name__)

_build_ssl_context = httpx.create_ssl_context


@functools.cache
def _default_tls_context(trust_env: bool) -> ssl.SSLContext:
    return _build_ssl_context(verify=True, cert=None, trust_env=trust_env)


def _shared_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
    """httpx's ``create_ssl_context``, built once for the default (verify, no client cert)."""
    if verify is True and cert is None:
        return _default_tls_context(trust_env)
    return _build_ssl_context(verify=verify, cert=cert, trust_env=trust_env)


def share_default_tls_context() -> None:
    """Have every httpx client of this process built with the default TLS settings share
    one context (the same CA bundle and checks; other settings build their own). httpx has
    no setting for it, and the SDK builds its clients itself: its transport module's
    ``create_ssl_context`` is replaced (httpx's version is pinned in ``constraints.txt``;
    ``tests/skill/test_exchange_link.py`` fails if the name goes). Idempotent."""
    setattr(httpx_transports, "create_ssl_context", _shared_ssl_context)  # noqa: B010


# How long the SDK and ``MarketData`` keep a market's metadata.
METADATA_TTL_S = 600.0
# Read again at this age: three minutes before either cache would drop it, so a missed
# ``keep_warm`` call or two changes nothing.
REFRESH_AFTER_S = 420.0
# A ping goes out when nothing went to the CLOB for this long; idle connections are kept
# well beyond it (the exchange's edge keeps them open for minutes).
PING_IDLE_S = 20.0
KEEPALIVE_S = 120.0
# Connections kept open to the CLOB (HTTP/1.1: one per order in flight). On a 20-60 ms round
# trip, ~3 ms of CPU per fire puts about 10-20 orders of a burst in flight at once; the
# first ones find these open, later ones reuse those answered.
WARM_CONNECTIONS = 8


class ExchangeLink:
    """The CLOB connection pool and market-metadata cache all SDK clients share."""

    def __init__(
        self,
        clob_url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        ping_idle_s: float = PING_IDLE_S,
    ) -> None:
        options = TransportOptions()  # the SDK's own timeouts and HTTP version
        self._clock = clock
        self._clob_url = clob_url
        self._ping_idle_s = ping_idle_s
        self._last_request = clock()
        self.transport = transport = lean_transport_for(
            clob_url,
            max_connections=options.limits.max_connections or 100,
            max_keepalive=options.limits.max_keepalive_connections or 20,
            keepalive_expiry=KEEPALIVE_S,
        )
        self.http = LeanClient(
            base_url=clob_url,
            transport=transport,  # None: httpx's own (behind a proxy), with these limits
            timeout=options.timeout,
            limits=httpx.Limits(
                max_connections=options.limits.max_connections,
                max_keepalive_connections=options.limits.max_keepalive_connections,
                keepalive_expiry=KEEPALIVE_S,
            ),
            http2=options.http2,
            event_hooks={"request": [self._sending]},
            # Shared by every tenant: nothing of one secret's may stick to it.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )
        self.metadata = AsyncOrderMetadataCache(clock=clock)

    async def _sending(self, request: httpx.Request) -> None:
        self._last_request = self._clock()

    async def adopt(self, client: AsyncSecureClient) -> None:
        """Make ``client`` use the shared pool for the CLOB and the shared metadata, and
        sign through an ``OrderIdSigner``."""
        ctx = client._ctx
        if not isinstance(ctx.signer, OrderIdSigner):
            object.__setattr__(ctx, "signer", OrderIdSigner(ctx.signer))
        for transport in (ctx.clob, ctx.secure_clob):
            own = transport._client
            if own is not self.http:
                transport._client = self.http
                transport._owns_client = False
                await own.aclose()
        own_metadata = ctx.order_metadata
        if own_metadata is not self.metadata:
            object.__setattr__(ctx, "order_metadata", self.metadata)
            await own_metadata.close()

    def release(self, client: AsyncSecureClient) -> None:
        """Before ``client`` closes: closing it closes its metadata cache, which must not
        cancel loads other clients wait for, so it gets an empty one of its own back."""
        ctx = client._ctx
        if ctx.order_metadata is self.metadata:
            object.__setattr__(ctx, "order_metadata", AsyncOrderMetadataCache())

    async def ping_if_idle(self) -> bool:
        """One cheap request (``GET /time``) if nothing went to the CLOB lately, so a
        connection stays open for the next order, and ``WARM_CONNECTIONS`` open for a
        burst of them; whether a ping was sent. Never raises."""
        if self.transport is not None:
            try:
                await self.transport.keep_open(self._clob_url, WARM_CONNECTIONS)
            except httpx.HTTPError as error:
                logger.info("exchange_connect_failed", extra={"error": type(error).__name__})
        if self._clock() - self._last_request < self._ping_idle_s:
            return False
        try:
            await self.http.get("/time")
        except httpx.HTTPError as error:
            logger.info("exchange_ping_failed", extra={"error": type(error).__name__})
        return True

    async def aclose(self) -> None:
        await self.metadata.close()
        await self.http.aclose()


class WarmMarkets:
    """When each watched token's market metadata was last read; which are due again.

    A token seen for the first time counts as read then (the trade manager's warm-up reads
    it as it starts watching it); one no longer watched is forgotten. The tokens are kept in
    the order of (read at, token), the next due first, given ``now`` moves on between calls
    (a monotonic clock; tokens given the same ``now`` by two calls stay in call order): a
    call costs the tokens it returns, not every token watched (10,000 sorted at each call
    held the loop ~9 ms once they all fell due together).
    """

    def __init__(self, refresh_after_s: float = REFRESH_AFTER_S) -> None:
        self._refresh_after_s = refresh_after_s
        self._read_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._read_at)

    def due(self, watched: Collection[str], now: float, *, limit: int) -> list[str]:
        """Watch exactly ``watched``; at most ``limit`` of its tokens due for a read,
        the longest unread first."""
        read_at = self._read_at
        wanted = watched if isinstance(watched, AbstractSet) else set(watched)
        if read_at.keys() != wanted:
            for gone in read_at.keys() - wanted:
                del read_at[gone]
            for token in sorted(wanted - read_at.keys()):
                read_at[token] = now
        cutoff = now - self._refresh_after_s
        due: list[str] = []
        if limit > 0:
            for token, at in read_at.items():
                if at > cutoff:
                    break
                due.append(token)
                if len(due) == limit:
                    break
        return due

    def read(self, token_ids: Collection[str], now: float) -> None:
        """``token_ids``' metadata was just read (only watched tokens are kept)."""
        read_at = self._read_at
        for token in sorted(token_ids):
            if read_at.pop(token, None) is not None:
                read_at[token] = now  # to the end: read last
