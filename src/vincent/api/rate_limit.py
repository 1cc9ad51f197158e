"""A per-client request limit, as the original backend's: N requests per fixed window per IP.

``FixedWindowLimiter`` is pure (the caller passes ``now``); ``RateLimitMiddleware`` applies it
to every HTTP request, ``/health`` included, and answers 429 in the Vincent envelope (without
a trace id, as the original does) with the standard ``RateLimit-*`` headers (IETF draft 6,
what express-rate-limit sends with ``standardHeaders: true``). Counts live in the process: with
``--api-workers N`` each process counts its own requests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vincent.api.envelope import error_body

# Past this many clients tracked, expired windows are swept before a new one is added.
_SWEEP_AT = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # seconds until the client's window ends


class FixedWindowLimiter:
    """At most ``limit`` hits per ``window_s`` per key; a key's window starts at its first hit."""

    __slots__ = ("_windows", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, was {limit}")
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, was {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, hits)

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str, now: float) -> Decision:
        """Count one request of ``key`` at ``now`` (seconds, monotonic) and decide it."""
        window = self._windows.get(key)
        if window is None or window[0] <= now:
            if window is None and len(self._windows) >= _SWEEP_AT:
                self._sweep(now)
            window = (now + self.window_s, 0)
        ends_at, hits = window[0], window[1] + 1
        self._windows[key] = (ends_at, hits)
        return Decision(
            allowed=hits <= self.limit,
            limit=self.limit,
            remaining=max(0, self.limit - hits),
            reset_s=ends_at - now,
        )

    def _sweep(self, now: float) -> None:
        self._windows = {k: w for k, w in self._windows.items() if w[0] > now}


def client_key(scope: Scope, *, trust_proxy: bool) -> str:
    """The client's address: the first ``X-Forwarded-For`` entry behind a trusted proxy."""
    if trust_proxy:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                first = bytes(value).decode("latin-1").split(",", 1)[0].strip()
                if first:
                    return first
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Refuse a client's requests past the limit with 429 ``RATE_LIMIT_EXCEEDED``."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: FixedWindowLimiter,
        clock: Callable[[], float],
        *,
        trust_proxy: bool,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.clock = clock
        self.trust_proxy = trust_proxy
        self._policy = f"{limiter.limit};w={math.ceil(limiter.window_s)}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = self.limiter.hit(client_key(scope, trust_proxy=self.trust_proxy), self.clock())
        headers = [
            (b"ratelimit-policy", self._policy),
            (b"ratelimit-limit", str(decision.limit).encode()),
            (b"ratelimit-remaining", str(decision.remaining).encode()),
            (b"ratelimit-reset", str(math.ceil(decision.reset_s)).encode()),
        ]
        if not decision.allowed:
            await _refuse(send, headers, decision)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send, headers: list[tuple[bytes, bytes]], decision: Decision) -> None:
    body = json.dumps(error_body("RATE_LIMIT_EXCEEDED", "Too many requests", None, None))
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(math.ceil(decision.reset_s)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
