"""The owner's admin API (``/api/admin``): approvals and policies.

Authenticated with ``Authorization: Bearer <VINCENT_ADMIN_TOKEN>`` by its own dependency;
an agent's API key is refused even if it were configured as the token, so an agent can
neither approve its own actions nor loosen its own limits.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from vincent.api.auth import parse_bearer
from vincent.api.deps import SessionDep
from vincent.api.envelope import ok
from vincent.api.rate_limit import charge_address, charge_key
from vincent.api.routes.polymarket_trading import Skill
from vincent.api.schemas import IdParam
from vincent.api.state import AppState, app_state
from vincent.crypto import API_KEY_PREFIX, constant_time_equal
from vincent.db.base import utcnow
from vincent.enums import ApprovalStatus
from vincent.errors import Forbidden, Unauthorized, ValidationFailed
from vincent.services import approvals, policies

ADMIN_ACTOR = "admin-api"


async def require_owner(request: Request) -> str:
    """Check the owner token; return who decides (for ``decided_by``).

    The owner is limited like an API key; a wrong token counts against its address.
    """
    try:
        token = parse_bearer(request.headers.get("authorization"))
        configured = app_state(request).settings.vincent_admin_token
        if configured is None:
            raise Forbidden("The admin API is disabled: set VINCENT_ADMIN_TOKEN")
        if token.startswith(API_KEY_PREFIX):
            raise Forbidden("Agent API keys cannot use the admin API")
        if not constant_time_equal(token, configured.get_secret_value()):
            raise Unauthorized("Invalid admin token")
    except (Forbidden, Unauthorized):
        charge_address(request)
        raise
    charge_key(request, ADMIN_ACTOR)
    return ADMIN_ACTOR


Owner = Annotated[str, Depends(require_owner)]
router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_owner)])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "UNAUTHORIZED: missing or wrong admin token"},
    403: {"description": "FORBIDDEN: admin API disabled, or an agent API key"},
    404: {"description": "NOT_FOUND"},
    409: {"description": "APPROVAL_NOT_PENDING: already decided or expired"},
}


def _approval_status(raw: str | None) -> ApprovalStatus | None:
    if raw is None or raw.upper() == "ALL":
        return None
    try:
        return ApprovalStatus(raw.upper())
    except ValueError as error:
        allowed = ", ".join(s.value for s in ApprovalStatus)
        raise ValidationFailed(f"status must be ALL or one of {allowed}, was {raw!r}") from error


@router.get("/approvals", responses=_ERRORS)
async def list_approvals(
    session: SessionDep, status: str | None = "PENDING", secret_id: IdParam | None = None
) -> JSONResponse:
    found = await approvals.list_approvals(
        session, utcnow(), status=_approval_status(status), secret_id=secret_id
    )
    return ok({"approvals": [approvals.approval_json(a) for a in found]})


def _settle_waiting_rule(state: AppState) -> None:
    """A trade rule paused on this approval finishes on the worker's next tick: run it now."""
    if state.worker is not None:
        state.worker.request_tick()


@router.post("/approvals/{approval_id}/approve", responses=_ERRORS)
async def approve(
    approval_id: IdParam, request: Request, owner: Owner, skill: Skill
) -> JSONResponse:
    """Approve, and execute the stored action now (once)."""
    state = app_state(request)
    outcome = await approvals.approve(
        state.session_factory, skill, approval_id, decided_by=owner, now=utcnow()
    )
    _settle_waiting_rule(state)
    data: dict[str, Any] = {"approval": approvals.approval_json(outcome.approval)}
    if outcome.result is not None:
        data["result"] = approvals.bet_result_json(outcome.result)
    else:
        data["error"] = {"code": outcome.error_code, "message": outcome.error_message}
    return ok(data)


@router.post("/approvals/{approval_id}/deny", responses=_ERRORS)
async def deny(
    approval_id: IdParam, request: Request, session: SessionDep, owner: Owner
) -> JSONResponse:
    denied = await approvals.deny(session, approval_id, decided_by=owner, now=utcnow())
    _settle_waiting_rule(app_state(request))
    return ok({"approval": approvals.approval_json(denied)})


@router.get("/policies", responses=_ERRORS)
async def list_policies(session: SessionDep, secret_id: IdParam | None = None) -> JSONResponse:
    found = await policies.list_policies(session, secret_id)
    return ok({"policies": [policies.policy_json(p) for p in found]})


@router.put("/secrets/{secret_id}/policies/{policy_type}", responses=_ERRORS)
async def set_policy(
    secret_id: IdParam,
    policy_type: str,
    session: SessionDep,
    config: Annotated[dict[str, Any], Body()],
) -> JSONResponse:
    """Create or replace the secret's policy of this type (config as in the wire contract)."""
    policy = await policies.set_policy(
        session, secret_id, policies.parse_policy_type(policy_type), config
    )
    return ok({"policy": policies.policy_json(policy)})


@router.delete("/secrets/{secret_id}/policies/{policy_type}", responses=_ERRORS)
async def delete_policy(secret_id: IdParam, policy_type: str, session: SessionDep) -> JSONResponse:
    await policies.delete_policy(session, secret_id, policies.parse_policy_type(policy_type))
    return ok({"deleted": True})
