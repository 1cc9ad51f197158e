"""The REST API as the MCP tools call it: one request, the envelope unwrapped or raised.

No logic of its own: a tool's arguments become the request, the answer's ``data`` the tool's
result, an error envelope a ``RestError`` that carries the envelope's code and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

API_PREFIX = "/api/skills/polymarket"


class RestError(Exception):
    """An error envelope (or an answer that is not one) from the REST API."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True, slots=True)
class RestAnswer:
    status: int
    data: Any


def path_segment(value: str) -> str:
    """``value`` as one path segment: a rule id never reaches another route."""
    return quote(value, safe="")


class VincentRestClient:
    """Calls ``/api/skills/polymarket/...`` with one API key over ``client``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> RestAnswer:
        """Send one request under ``API_PREFIX``; raise ``RestError`` on an error envelope."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._client.request(
                method, API_PREFIX + path, json=json, params=query or None
            )
        except httpx.HTTPError as error:
            raise RestError(
                503, "SERVER_UNREACHABLE", f"Vincent server unreachable: {type(error).__name__}"
            ) from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "success" not in body:
            raise RestError(
                response.status_code,
                "INTERNAL_ERROR",
                f"Unexpected answer from the Vincent server (HTTP {response.status_code})",
            )
        if body["success"] is not True:
            failure = body.get("error") or {}
            raise RestError(
                response.status_code,
                str(failure.get("code", "INTERNAL_ERROR")),
                str(failure.get("message", "Internal server error")),
                failure.get("details"),
            )
        return RestAnswer(response.status_code, body.get("data"))
