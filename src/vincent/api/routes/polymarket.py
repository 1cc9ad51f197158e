"""``/api/skills/polymarket``: every route behind API-key auth, the trade rules mounted in it.

Auth runs before anything else, unknown sub-paths included (they answer 401 without a
valid key, 404 with one), as in the original.
"""

from __future__ import annotations

from fastapi import APIRouter

from vincent.api.auth import CurrentSecret
from vincent.api.routes import trade_rules
from vincent.errors import NotFound

router = APIRouter(prefix="/api/skills/polymarket")
router.include_router(trade_rules.router)


def include_catch_all(target: APIRouter) -> None:
    """Add the authenticated 404 for unknown sub-paths; call after every other route."""

    @target.api_route(
        "/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def unknown_path(path: str, secret: CurrentSecret) -> None:
        raise NotFound(f"No route {path}")
