"""Request limits: per API key for authenticated requests, per client address otherwise.

A deliberate difference from the original (one limit per address on every route): one
agent that floods must not get every other agent on its host (or behind its NAT) refused,
and a client must not dodge its limit by writing a new ``X-Forwarded-For`` per request.

* ``GcraLimiter`` is pure (``now`` is passed in): a token bucket kept as one float per
  key (the generic cell rate algorithm), O(1) per request, at most ``max_keys`` keys.
* ``RateLimitMiddleware`` charges requests without credentials to their address, and lets
  a request with ``Authorization: Bearer`` through to its auth dependency, which charges
  the key it resolves (``charge_key``) or, for a bad key, the address (``charge_address``):
  guessing keys is as slow as any unauthenticated request.
* ``/health`` and ``/metrics`` are never limited (load balancers and probes call them), nor
  the dashboard's static files.
* ``/mcp`` with a Bearer key is charged like ``/api/``: to the key its endpoint resolves. The
  REST calls an MCP tool makes in process carry ``INTERNAL_HEADER`` with this process's
  random ``INTERNAL_TOKEN`` and are not charged again (one tool call, one request).
* Refusals are 429 ``RATE_LIMIT_EXCEEDED`` in the envelope with ``Retry-After``; every
  limited response carries the ``RateLimit-*`` headers (IETF draft 6).
* With ``--api-workers N`` each process admits its share (``limit // N``), so the service
  as a whole never admits more than the limit (less when uvicorn spreads a client unevenly).
"""

from __future__ import annotations

import ipaddress
import json
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vincent.api.envelope import error_body
from vincent.errors import VincentError

UNLIMITED_PATHS = frozenset({"/health", "/metrics"})
# The dashboard's own scripts and stylesheet: files a page loads with every view, never work.
UNLIMITED_PREFIX = "/dashboard/static/"
# Paths whose Bearer requests are charged by their own auth (to the key), not here.
_KEY_CHARGED_PREFIXES = ("/api/", "/mcp")
# In-process requests already charged (an MCP tool's REST call): a per-process random value
# that never leaves the process, so no client can present it.
INTERNAL_HEADER = b"x-vincent-internal"
INTERNAL_TOKEN = secrets.token_urlsafe(24)
# Past this many keys (or addresses) the least recently seen are forgotten.
DEFAULT_MAX_KEYS = 100_000
_TICKET = "vincent.rate_limit"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RequestLimitExceeded(VincentError):
    """Too many requests from one API key or one address (429)."""

    code = "RATE_LIMIT_EXCEEDED"
    default_message = "Too many requests"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # until the next request would be allowed (0 when allowed)


class GcraLimiter:
    """``limit`` requests per ``window_s`` per key, up to ``burst`` of them at once.

    One number per key: the time its bucket is "paid up to" (theoretical arrival time).
    A key whose time has passed holds a full bucket, so forgetting it loses nothing.
    """

    __slots__ = ("_interval_s", "_keys", "_tolerance_s", "burst", "limit", "max_keys", "window_s")

    def __init__(
        self, limit: int, window_s: float, burst: int, *, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, was {limit}")
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, was {window_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, was {burst}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, was {max_keys}")
        self.limit = limit
        self.window_s = window_s
        self.burst = burst
        self.max_keys = max_keys
        self._interval_s = window_s / limit
        self._tolerance_s = (burst - 1) * self._interval_s
        self._keys: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def hit(self, key: str, now: float) -> Decision:
        """Count one request of ``key`` at ``now`` (seconds, monotonic) and decide it."""
        keys = self._keys
        paid_until = max(keys.get(key, now), now)
        # (A nanosecond of slack: float sums of intervals must not refuse an on-time hit.)
        if paid_until - now > self._tolerance_s + 1e-9:
            keys.move_to_end(key)
            retry_after_s = paid_until - self._tolerance_s - now
            return Decision(False, self.limit, 0, paid_until - now, retry_after_s)
        paid_until += self._interval_s
        keys[key] = paid_until
        keys.move_to_end(key)
        self._forget_oldest(now)
        backlog = (paid_until - now) / self._interval_s
        remaining = max(0, math.floor(self.burst - backlog + 1e-9))
        return Decision(True, self.limit, remaining, paid_until - now, 0.0)

    def _forget_oldest(self, now: float) -> None:
        keys = self._keys
        # One full bucket is dropped per hit (amortized cleanup); past max_keys the least
        # recently seen go even if not full (bounded memory wins).
        oldest = next(iter(keys))
        if keys[oldest] <= now:
            del keys[oldest]
        while len(keys) > self.max_keys:
            keys.popitem(last=False)


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, ::1"`` → networks; raises ``ValueError`` naming a bad entry."""
    networks = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR: {item!r}") from None
    return tuple(networks)


def _address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        return None


def _trusted(raw: str, networks: Iterable[Network]) -> bool:
    address = _address(raw)
    return address is not None and any(address in network for network in networks)


def client_address(scope: Scope, trusted_proxies: tuple[Network, ...] | None) -> str:
    """The client's address. ``trusted_proxies=None``: the peer, whatever it sends.

    Behind trusted proxies: walk ``X-Forwarded-For`` from the right (the entries our own
    proxies appended) and take the first hop that is not one of them. Entries left of it
    were written by the client and are never believed.
    """
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if trusted_proxies is None or not _trusted(peer, trusted_proxies):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            hops.extend(bytes(value).decode("latin-1").split(","))
    address = peer
    for hop in reversed(hops[-32:]):  # a bounded walk, however long the header
        hop = hop.strip()
        if not hop:
            continue
        address = hop[:64]
        if not _trusted(hop, trusted_proxies):
            break
    return address


class RateLimits:
    """The two limiters of one process, and the headers they publish."""

    def __init__(
        self,
        per_key: GcraLimiter | None,
        per_address: GcraLimiter | None,
        clock: Callable[[], float],
        trusted_proxies: tuple[Network, ...] | None,
    ) -> None:
        self.per_key = per_key
        self.per_address = per_address
        self.clock = clock
        self.trusted_proxies = trusted_proxies


@dataclass(slots=True)
class _Ticket:
    """One request's charge: decided in the middleware, or deferred to its auth."""

    limits: RateLimits
    address: str
    decision: Decision | None = None
    limiter: GcraLimiter | None = None

    def charge(self, limiter: GcraLimiter | None, key: str) -> Decision | None:
        if self.decision is not None or limiter is None:
            return self.decision
        self.limiter = limiter
        self.decision = limiter.hit(key, self.limits.clock())
        return self.decision


def _ticket(request: Request) -> _Ticket | None:
    ticket = request.scope.get(_TICKET)
    return ticket if isinstance(ticket, _Ticket) else None


def _enforce(decision: Decision | None) -> None:
    if decision is not None and not decision.allowed:
        raise RequestLimitExceeded(decision.retry_after_s)


def charge_key(request: Request, key_id: str) -> None:
    """Charge a request to the API key (or owner) it authenticated as; 429 past the limit."""
    ticket = _ticket(request)
    if ticket is not None:
        _enforce(ticket.charge(ticket.limits.per_key, key_id))


def charge_address(request: Request) -> None:
    """Charge a request whose credentials failed to its address; 429 past the limit."""
    ticket = _ticket(request)
    if ticket is not None:
        _enforce(ticket.charge(ticket.limits.per_address, ticket.address))


def charge_unclaimed(request: Request) -> RequestLimitExceeded | None:
    """For a credentialed request that reached no auth (a 404, a 405): charge its address.

    Returns the refusal to answer instead, if the address is over its limit.
    """
    ticket = _ticket(request)
    if ticket is None or ticket.decision is not None:
        return None
    decision = ticket.charge(ticket.limits.per_address, ticket.address)
    if decision is None or decision.allowed:
        return None
    return RequestLimitExceeded(decision.retry_after_s)


def _policy(limiter: GcraLimiter) -> bytes:
    return f"{limiter.limit};w={math.ceil(limiter.window_s)};burst={limiter.burst}".encode()


def _headers(ticket: _Ticket) -> list[tuple[bytes, bytes]]:
    decision, limiter = ticket.decision, ticket.limiter
    if decision is None or limiter is None:
        return []
    return [
        (b"ratelimit-policy", _policy(limiter)),
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(math.ceil(decision.reset_s)).encode()),
    ]


class RateLimitMiddleware:
    """Charge requests to their address or leave them to their auth; refuse with 429."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in UNLIMITED_PATHS
            or scope["path"].startswith(UNLIMITED_PREFIX)
            or _header(scope, INTERNAL_HEADER) == _INTERNAL_TOKEN_BYTES
        ):
            await self.app(scope, receive, send)
            return
        ticket = _Ticket(self.limits, client_address(scope, self.limits.trusted_proxies))
        if not _has_bearer(scope) or not scope["path"].startswith(_KEY_CHARGED_PREFIXES):
            decision = ticket.charge(self.limits.per_address, ticket.address)
            if decision is not None and not decision.allowed:
                await _refuse(send, _headers(ticket), decision)
                return
        scope[_TICKET] = ticket

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if ticket.decision is None:
                    # A credentialed request no auth dependency looked at (an unknown path):
                    # it still counts against its address.
                    ticket.charge(self.limits.per_address, ticket.address)
                message["headers"] = [*message.get("headers", []), *_headers(ticket)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_INTERNAL_TOKEN_BYTES = INTERNAL_TOKEN.encode()


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value)
    return None


def _has_bearer(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bytes(value[:7]).lower() == b"bearer "
    return False


def retry_after_header(retry_after_s: float) -> str:
    return str(max(1, math.ceil(retry_after_s)))


async def _refuse(send: Send, headers: list[tuple[bytes, bytes]], decision: Decision) -> None:
    body = error_body(RequestLimitExceeded.code, RequestLimitExceeded.default_message, None, None)
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", retry_after_header(decision.retry_after_s).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def build_rate_limits(
    *,
    per_key: int,
    per_address: int,
    window_s: float,
    burst_s: float,
    processes: int,
    clock: Callable[[], float],
    trusted_proxies: tuple[Network, ...] | None,
) -> RateLimits:
    """Limiters for one of ``processes`` API processes (each admits its share; 0 = off)."""

    def limiter(total: int) -> GcraLimiter | None:
        if total <= 0:
            return None
        share = max(1, total // processes)
        burst = max(1, math.ceil(share * burst_s / window_s))
        return GcraLimiter(share, window_s, min(burst, share))

    return RateLimits(limiter(per_key), limiter(per_address), clock, trusted_proxies)
