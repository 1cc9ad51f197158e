"""API-key authentication: ``Authorization: Bearer <key>`` → the caller's secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vincent.api.rate_limit import charge_address, charge_key
from vincent.api.state import AppState, key_lookup_sessions
from vincent.errors import Unauthorized
from vincent.services.api_keys import AuthenticatedSecret, authenticate_api_key


def parse_bearer(header: str | None) -> str:
    """The key from an Authorization header, as the original parses it. Raises Unauthorized."""
    if header is None:
        raise Unauthorized("Missing Authorization header")
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1]:
        raise Unauthorized("Invalid Authorization header format. Expected: Bearer <api_key>")
    return parts[1]


async def require_secret(request: Request) -> AuthenticatedSecret:
    """Resolve the caller's secret, or refuse with 401 in the Vincent envelope.

    A key resolved in the last ``API_KEY_CACHE_TTL_S`` seconds is answered from this
    process's cache (no query). A miss is read in a session of its own, closed before the
    route takes its session: a request never holds one pooled connection while waiting for
    another (``authenticate_api_key``). The request is charged to its key's limit, or to
    its address's when the key is missing or wrong.
    """
    try:
        key = parse_bearer(request.headers.get("authorization"))
    except Unauthorized:
        charge_address(request)
        raise
    state: AppState = request.app.state.vincent
    secret = await authenticate_api_key(key_lookup_sessions(state), key, state.api_key_cache)
    if secret is None:
        # A wrong key counts against the address: guessing keys is slow.
        charge_address(request)
        raise Unauthorized("Invalid or revoked API key")
    charge_key(request, secret.api_key_id)
    return secret


CurrentSecret = Annotated[AuthenticatedSecret, Depends(require_secret)]
