"""Dashboard sign-in: a credential checked once, then carried in an encrypted session cookie.

The cookie holds the credential itself (an agent's API key or the owner's admin token),
Fernet-encrypted with ``VINCENT_ENCRYPTION_KEY``, with an expiry and a CSRF token. It is
``HttpOnly``, ``Secure`` and ``SameSite=Strict`` and never appears in a URL. Every request
checks the credential again (the API's key cache keeps that cheap), so a revoked key or a
changed admin token ends its sessions within ``API_KEY_CACHE_TTL_S``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.api.state import AppState, app_state
from vincent.crypto import API_KEY_PREFIX, KeyBox, constant_time_equal
from vincent.errors import Forbidden, Unauthorized
from vincent.services.api_keys import resolve_api_key

COOKIE_NAME = "vincent_dashboard"
COOKIE_PATH = "/dashboard"
SESSION_TTL_S = 12 * 3600
CSRF_HEADER = "x-csrf-token"


class ViewerKind(StrEnum):
    AGENT = "agent"
    OWNER = "owner"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: an agent (one secret) or the owner (every secret)."""

    kind: ViewerKind
    name: str
    csrf_token: str
    secret_id: str | None = None  # the agent's secret; None for the owner

    @property
    def is_owner(self) -> bool:
        return self.kind is ViewerKind.OWNER

    def can_see(self, secret_id: str) -> bool:
        return self.is_owner or secret_id == self.secret_id


class SignInRefused(Unauthorized):
    default_message = "Unknown, revoked or malformed credential"


def _keybox(state: AppState) -> KeyBox:
    key = state.settings.vincent_encryption_key
    assert key is not None  # create_app refuses to build without one
    return KeyBox(key.get_secret_value())


async def check_credential(
    state: AppState, session: AsyncSession, credential: str
) -> tuple[ViewerKind, str, str | None]:
    """Return (kind, display name, secret id) for a credential; raise ``SignInRefused``."""
    credential = credential.strip()
    if credential.startswith(API_KEY_PREFIX):
        secret = await resolve_api_key(session, credential, state.api_key_cache)
        if secret is None:
            raise SignInRefused()
        return ViewerKind.AGENT, secret.name, secret.id
    configured = state.settings.vincent_admin_token
    if configured is not None and constant_time_equal(credential, configured.get_secret_value()):
        return ViewerKind.OWNER, "owner", None
    raise SignInRefused()


def set_session_cookie(
    response: Response, request: Request, credential: str, *, now_s: float | None = None
) -> None:
    """Put the (already checked) credential into the session cookie."""
    payload = {
        "credential": credential.strip(),
        "csrf": secrets.token_urlsafe(24),
        "expires": int((now_s or time.time()) + SESSION_TTL_S),
    }
    response.set_cookie(
        COOKIE_NAME,
        _keybox(app_state(request)).encrypt(json.dumps(payload)),
        max_age=SESSION_TTL_S,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        COOKIE_NAME, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict"
    )


async def viewer_from_request(request: Request, session: AsyncSession) -> Viewer | None:
    """The signed-in viewer, or None (no cookie, expired, tampered or credential refused)."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    state = app_state(request)
    try:
        payload = json.loads(_keybox(state).decrypt(raw))
        credential = str(payload["credential"])
        csrf_token = str(payload["csrf"])
        expires = int(payload["expires"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires <= time.time():
        return None
    try:
        kind, name, secret_id = await check_credential(state, session, credential)
    except SignInRefused:
        return None
    return Viewer(kind=kind, name=name, csrf_token=csrf_token, secret_id=secret_id)


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request that a browser sent from another site."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser's cross-site form or fetch (those always send Origin)
    expected = f"{request.url.scheme}://{request.url.netloc}"
    if origin != expected:
        raise Forbidden(f"Cross-site request refused: Origin was {origin!r}")


def check_csrf(request: Request, viewer: Viewer, form_token: str | None = None) -> None:
    """A state-changing request must carry the session's CSRF token (header or form field)."""
    check_same_origin(request)
    token = request.headers.get(CSRF_HEADER) or form_token or ""
    if not constant_time_equal(token, viewer.csrf_token):
        raise Forbidden("Missing or wrong CSRF token")
