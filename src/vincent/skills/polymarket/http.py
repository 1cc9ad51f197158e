"""Shared async HTTP for the exchange's public reads (CLOB, Data API, Gamma).

GETs are idempotent, so they are retried a bounded number of times on connection errors,
5xx and 429; nothing else is retried here. Failures come out as typed skill errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from vincent.errors import NotFound
from vincent.skills.polymarket.errors import (
    ExchangeTimeout,
    ExchangeUnavailable,
    PermanentSkillError,
    RateLimited,
    SkillError,
)

logger = logging.getLogger(__name__)

# Exchange ids are at most ~80 characters; anything far longer is not one.
MAX_PATH_SEGMENT_LENGTH = 200

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries for idempotent GETs: ``attempts`` tries in all, backoff doubling from
    ``base_delay_s`` and capped at ``max_delay_s`` (a server's Retry-After wins, capped too)."""

    attempts: int = 3
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        return min(self.base_delay_s * (2.0**attempt), self.max_delay_s)


class NotFoundOnExchange(PermanentSkillError, NotFound):
    """The exchange answered 404 for what was asked (no book, unknown market or order).

    Also a ``NotFound``, so the API answers 404 rather than 500.
    """

    code = "NOT_FOUND"


class InvalidPathSegment(PermanentSkillError):
    """A value meant for one URL path segment that no exchange id could be."""

    code = "VALIDATION_ERROR"


def path_segment(value: str) -> str:
    """``value`` percent-encoded as ONE path segment (``/``, ``?``, ``#``, ``%`` included).

    Dot segments and empty values are refused: a URL resolver would read them as a move
    to another path, never as an id.
    """
    if value in ("", ".", "..") or len(value) > MAX_PATH_SEGMENT_LENGTH:
        raise InvalidPathSegment(f"not an exchange id: {value[:40]!r}")
    return quote(value, safe="")


def retry_after_of(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return response.text[:200]


class JsonGetter:
    """GET JSON from one base URL through a shared client, with bounded retries."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    async def get(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        timeout_s: float | None = None,
        attempts: int | None = None,
    ) -> Any:
        """Return the decoded JSON body. Raises a ``SkillError`` subclass on failure."""
        url = self._base_url + path
        tries = attempts or self._retry.attempts
        last: SkillError | None = None
        for attempt in range(tries):
            try:
                response = await self._client.get(
                    url,
                    params=dict(params or {}),
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TimeoutException as error:
                last = ExchangeTimeout(f"GET {path} timed out")
                last.__cause__ = error
            except httpx.TransportError as error:
                last = ExchangeUnavailable(f"GET {path} failed: {type(error).__name__}")
                last.__cause__ = error
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise ExchangeUnavailable(f"GET {path} answered non-JSON") from error
                if response.status_code == 429:
                    last = RateLimited(
                        f"GET {path} was rate limited", retry_after_s=retry_after_of(response)
                    )
                elif response.status_code >= 500:
                    last = ExchangeUnavailable(
                        f"GET {path} answered {response.status_code}: {error_text(response)}"
                    )
                elif response.status_code == 404:
                    raise NotFoundOnExchange(error_text(response), details={"path": path})
                else:
                    raise PermanentSkillError(
                        f"GET {path} answered {response.status_code}: {error_text(response)}"
                    )
            if attempt + 1 < tries:
                retry_after = getattr(last, "retry_after_s", None)
                await self._sleep(self._retry.delay_s(attempt, retry_after))
        assert last is not None
        logger.warning("exchange_get_failed", extra={"path": path, "error": last.code})
        raise last
