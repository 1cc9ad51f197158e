"""``/api/secrets``: an agent creates its own tenant, as in the original Vincent backend.

No API key (the agent has none yet). The server generates the wallet; the answer carries the
agent's first API key and a claim URL for its human, both shown once, and never the private
key. Limited per client address (the original's 5 per 15 minutes) and switchable off with
``ALLOW_AGENT_SECRETS=false``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vincent.api.deps import SessionDep
from vincent.api.envelope import iso, ok
from vincent.api.rate_limit import GcraLimiter, client_address, parse_networks
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.models import Secret
from vincent.errors import Forbidden, NotImplementedHere, TooManyRequests
from vincent.services.secrets import create_agent_secret
from vincent.skills.polymarket.wallets import SIGNATURE_TYPE_NAMES

logger = logging.getLogger(__name__)

LIMIT_MESSAGE = "Too many secret creation requests. Try again later."
DISABLED_MESSAGE = (
    "Agent secret creation is disabled on this server (ALLOW_AGENT_SECRETS=false): "
    "ask its operator for an API key"
)
RELINK_MESSAGE = (
    "POST /api/secrets/relink is not available on this server: re-link tokens are issued by "
    "the owner's dashboard, which it does not have. The operator can issue a new API key for "
    "the secret with `vincent keys create <secretId>`."
)


class CreateSecretBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["POLYMARKET_WALLET"] = Field(
        description="Only POLYMARKET_WALLET secrets exist on this server"
    )
    memo: str | None = Field(default=None, max_length=1000, description="Free text for you")


def secret_json(secret: Secret) -> dict[str, Any]:
    """The original's secret object, plus which kind of wallet the server made."""
    return {
        "id": secret.id,
        "type": secret.type.value,
        "memo": secret.memo,
        "claimed": secret.claimed_at is not None,
        "claimedAt": None if secret.claimed_at is None else iso(secret.claimed_at),
        "createdAt": iso(secret.created_at),
        "walletAddress": secret.funder_address,
        "walletType": SIGNATURE_TYPE_NAMES[secret.signature_type],
        "signatureType": secret.signature_type,
    }


def claim_url(settings: Settings, secret_id: str, claim_token: str) -> str:
    return f"{settings.public_base_url}/claim/{secret_id}?token={claim_token}"


def create_router(settings: Settings, keybox: KeyBox) -> APIRouter:
    """The routes, with this app's own creation limiter (counts live in the process)."""
    router = APIRouter(prefix="/api/secrets", tags=["secrets"])
    # The original's 5 per 15 minutes, all 5 at once if need be.
    limiter = GcraLimiter(
        settings.agent_secret_limit,
        settings.agent_secret_window_s,
        burst=settings.agent_secret_limit,
    )
    trusted = parse_networks(settings.trusted_proxies) if settings.trust_proxy else None

    async def creation_allowed(request: Request) -> None:
        if not settings.allow_agent_secrets:
            raise Forbidden(DISABLED_MESSAGE)
        client = client_address(request.scope, trusted)
        if not limiter.hit(client, time.monotonic()).allowed:
            raise TooManyRequests(LIMIT_MESSAGE)

    @router.post(
        "",
        status_code=201,
        dependencies=[Depends(creation_allowed)],
        summary="Create a Polymarket wallet secret for an agent (no auth)",
        responses={
            400: {"description": "VALIDATION_ERROR: type is not POLYMARKET_WALLET"},
            403: {"description": "FORBIDDEN: ALLOW_AGENT_SECRETS=false on this server"},
            429: {"description": "RATE_LIMIT_EXCEEDED: 5 creations per address per 15 min"},
        },
    )
    async def create_secret(body: CreateSecretBody, session: SessionDep) -> JSONResponse:
        """Generate a wallet (an EOA, signature type 0; the private key never leaves the
        server), its first API key (shown once) and a claim URL for the agent's owner."""
        created = await create_agent_secret(session, keybox, memo=body.memo)
        await session.commit()
        secret = created.secret
        logger.info(
            "agent secret created",
            extra={"secret_id": secret.id, "wallet_address": secret.funder_address},
        )
        return ok(
            {
                "secret": secret_json(secret),
                "apiKey": {"id": created.api_key.id, "key": created.api_key.key},
                "claimUrl": claim_url(settings, secret.id, created.claim_token),
            },
            status_code=201,
        )

    @router.post(
        "/relink",
        summary="Re-link an agent to its secret (not available here: 501)",
        responses={501: {"description": "NOT_IMPLEMENTED, with what to do instead"}},
    )
    async def relink() -> None:
        raise NotImplementedHere(RELINK_MESSAGE)

    return router
