"""The dashboard's pages and actions under ``/dashboard``: HTML in, the API's services out.

Pages redirect to the sign-in page without a session; actions and the event stream answer
401 in the Vincent envelope. Actions call the same services, with the same validation, as
the API routes (``rule_manager``, ``approvals``) and tell the worker the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from vincent.api.deps import SessionDep, StateDep
from vincent.api.envelope import ok
from vincent.api.errors import status_for
from vincent.api.rule_changes import notify_rule_change
from vincent.api.schemas import UpdateRuleBody, as_decimal
from vincent.dashboard import read_models
from vincent.dashboard.charts import token_chart
from vincent.dashboard.hub import DashboardHub
from vincent.dashboard.read_models import RuleRow, Scope
from vincent.dashboard.rendering import market_label, render_rule_row, templates
from vincent.dashboard.sessions import (
    SignInRefused,
    Viewer,
    check_credential,
    check_csrf,
    check_same_origin,
    clear_session_cookie,
    set_session_cookie,
    viewer_from_request,
)
from vincent.db.base import utcnow
from vincent.enums import TradeRuleStatus
from vincent.errors import (
    ConfigurationError,
    Forbidden,
    InvalidStatusFilter,
    NotFound,
    Unauthorized,
    VincentError,
)
from vincent.services import approvals
from vincent.services.trade_manager import rule_manager
from vincent.skills.polymarket import PolymarketSkill

router = APIRouter(prefix="/dashboard", include_in_schema=False)
DECIDED_BY = "dashboard"
STATUSES = [s.value for s in TradeRuleStatus]
# Only the dashboard's own files may run or load; no framing (clickjacking on Approve).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    # "no-referrer" would make Chromium send "Origin: null" on the sign-in form's POST.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def hub_of(request: Request) -> DashboardHub:
    hub: DashboardHub = request.app.state.dashboard_hub
    return hub


def scope_of(viewer: Viewer) -> Scope:
    return None if viewer.is_owner else [viewer.secret_id or ""]


async def require_viewer(request: Request, session: SessionDep) -> Viewer:
    viewer = await viewer_from_request(request, session)
    if viewer is None:
        raise Unauthorized("Sign in to the dashboard first")
    return viewer


def _error_page(request: Request, viewer: Viewer, error: VincentError) -> HTMLResponse:
    """A refused page as HTML (status and code as the API would answer them)."""
    status = status_for(error)
    response = _page(
        request, "error.html", viewer, status=status, code=error.code, message=error.message
    )
    response.status_code = status
    return response


PageBody = Callable[[Viewer], Awaitable[Response]]


async def _signed_in_page(request: Request, session: SessionDep, body: PageBody) -> Response:
    """Run a page for the signed-in viewer: sign-in page without one, an HTML error page
    for a refusal (another tenant's rule, the owner page for an agent)."""
    viewer = await viewer_from_request(request, session)
    if viewer is None:
        return _to_login()
    # The page's event stream starts after the newest entry published before the page read
    # anything, so what is published while the page loads still reaches it.
    request.state.stream_after = hub_of(request).broadcast.head
    try:
        return await body(viewer)
    except VincentError as error:
        return _error_page(request, viewer, error)


def _to_login() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)


def _page(request: Request, name: str, viewer: Viewer | None, **context: Any) -> HTMLResponse:
    stream_after = getattr(request.state, "stream_after", None)
    response = templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "statuses": STATUSES, "stream_after": stream_after, **context},
    )
    response.headers.update(SECURITY_HEADERS)
    return response


# ---------------------------------------------------------------------------- sign-in


@router.get("", response_class=HTMLResponse)
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard/rules", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", None, error=None)


async def _form_field(request: Request, name: str) -> str:
    """One field of an urlencoded form (the two sign-in forms; no multipart needed)."""
    values = parse_qs((await request.body()).decode("utf-8", "replace")).get(name, [""])
    return values[0]


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep, state: StateDep) -> Response:
    check_same_origin(request)
    credential = await _form_field(request, "credential")
    try:
        await check_credential(state, session, credential)
    except SignInRefused as error:
        response = _page(request, "login.html", None, error=error.message)
        response.status_code = 401
        return response
    redirect = RedirectResponse("/dashboard/rules", status_code=303)
    set_session_cookie(redirect, request, credential)
    return redirect


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> RedirectResponse:
    viewer = await viewer_from_request(request, session)
    if viewer is not None:
        check_csrf(request, viewer, await _form_field(request, "csrf"))
    response = _to_login()
    clear_session_cookie(response)
    return response


# ---------------------------------------------------------------------------- rules


def _status_filter(raw: str | None) -> TradeRuleStatus | None:
    if raw is None or not raw.strip() or raw.strip().upper() == "ALL":
        return None
    try:
        return TradeRuleStatus(raw.strip().upper())
    except ValueError:
        raise InvalidStatusFilter(raw) from None


async def _charts(
    session: SessionDep, hub: DashboardHub, scope: Scope, tokens: list[str]
) -> list[dict[str, Any]]:
    charts = []
    since_s = utcnow().timestamp() - hub.history.window_s
    for token_id in tokens:
        rules = await read_models.token_rules(session, scope, token_id)
        if not rules:
            continue
        described = await read_models.describe_rules(session, rules[:1])
        events = await read_models.chart_events(session, [r.id for r in rules])
        points = hub.history.points(token_id, since_s)
        charts.append(token_chart(token_id, market_label(described[0]), rules, events, points))
    return charts


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request, session: SessionDep, state: StateDep, status: str | None = None
) -> Response:
    async def body(viewer: Viewer) -> Response:
        scope = scope_of(viewer)
        wanted = _status_filter(status)
        groups = await read_models.rule_rows(session, scope, wanted)
        hub = hub_of(request)
        since = utcnow() - timedelta(seconds=hub.history.window_s)
        live = groups if wanted is None else await read_models.rule_rows(session, scope, None)
        charts = await _charts(session, hub, scope, read_models.chart_tokens(live, since))
        return _page(
            request,
            "rules.html",
            viewer,
            groups=groups,
            status=None if wanted is None else wanted.value,
            charts=charts,
            has_prices=state.worker is not None,
            render_row=render_rule_row,
        )

    return await _signed_in_page(request, session, body)


@router.get("/rules/{rule_id}", response_class=HTMLResponse)
async def rule_page(
    request: Request, rule_id: str, session: SessionDep, state: StateDep
) -> Response:
    async def body(viewer: Viewer) -> Response:
        scope = scope_of(viewer)
        row = await read_models.rule(session, scope, rule_id)
        events = await read_models.rule_events(session, rule_id)
        charts = await _charts(session, hub_of(request), scope, [row.rule.token_id])
        return _page(
            request,
            "rule.html",
            viewer,
            row=row,
            events=events,
            charts=charts,
            has_prices=state.worker is not None,
            render_row=render_rule_row,
        )

    return await _signed_in_page(request, session, body)


@router.get("/charts/{token_id}")
async def chart_data(
    request: Request, token_id: str, session: SessionDep, state: StateDep
) -> JSONResponse:
    """One token's chart (a page asks when a rule on a new token appears live)."""
    viewer = await require_viewer(request, session)
    charts = await _charts(session, hub_of(request), scope_of(viewer), [token_id])
    if not charts:
        raise NotFound("No rule of yours watches this token")
    return ok(charts[0])


@router.get("/rules/{rule_id}/timeline", response_class=HTMLResponse)
async def rule_timeline(request: Request, rule_id: str, session: SessionDep) -> HTMLResponse:
    viewer = await require_viewer(request, session)
    await read_models.rule(session, scope_of(viewer), rule_id)
    events = await read_models.rule_events(session, rule_id)
    return _page(request, "_timeline.html", viewer, events=events)


async def _own_rule(session: SessionDep, viewer: Viewer, rule_id: str) -> RuleRow:
    return await read_models.rule(session, scope_of(viewer), rule_id)


async def _row_json(session: SessionDep, viewer: Viewer, rule_id: str) -> JSONResponse:
    row = await _own_rule(session, viewer, rule_id)
    return ok({"id": rule_id, "html": render_rule_row(row)})


@router.post("/rules/{rule_id}/cancel")
async def cancel_rule(
    request: Request, rule_id: str, session: SessionDep, state: StateDep
) -> JSONResponse:
    viewer = await require_viewer(request, session)
    check_csrf(request, viewer)
    owner_of = (await _own_rule(session, viewer, rule_id)).rule.secret_id
    rule = await rule_manager.cancel_rule(session, owner_of, rule_id)
    if state.notify_rule_changes:
        await notify_rule_change(session, rule.id)
    await session.commit()
    state.rule_listener.rule_removed(rule.id, rule.token_id)
    return await _row_json(session, viewer, rule_id)


@router.post("/rules/{rule_id}/trigger")
async def move_trigger(
    request: Request, rule_id: str, body: UpdateRuleBody, session: SessionDep, state: StateDep
) -> JSONResponse:
    viewer = await require_viewer(request, session)
    check_csrf(request, viewer)
    owner_of = (await _own_rule(session, viewer, rule_id)).rule.secret_id
    rule = await rule_manager.update_rule(session, owner_of, rule_id, as_decimal(body.triggerPrice))
    if state.notify_rule_changes:
        await notify_rule_change(session, rule.id)
    await session.commit()
    state.rule_listener.rule_upserted(rule_manager.to_snapshot(rule))
    return await _row_json(session, viewer, rule_id)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def audit_page(request: Request, order_id: str, session: SessionDep) -> Response:
    async def body(viewer: Viewer) -> Response:
        row = await read_models.audit_row_by_order(session, scope_of(viewer), order_id)
        return _page(request, "audit.html", viewer, row=row)

    return await _signed_in_page(request, session, body)


# ---------------------------------------------------------------------------- owner


def _require_owner(viewer: Viewer) -> None:
    if not viewer.is_owner:
        raise Forbidden("Only the owner (VINCENT_ADMIN_TOKEN) may do this")


@router.get("/owner", response_class=HTMLResponse)
async def owner_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    async def body(viewer: Viewer) -> Response:
        _require_owner(viewer)
        now = utcnow()
        await approvals.expire_due(session, now)
        return _page(
            request,
            "owner.html",
            viewer,
            approvals=hub_of(request).valued(await read_models.pending_approvals(session, now)),
            policies=await read_models.policies_by_secret(session),
            names=await read_models.secret_names(session, None),
            status=state.worker_status(),
            has_worker=state.worker is not None,
        )

    return await _signed_in_page(request, session, body)


@router.post("/approvals/{approval_id}/approve")
async def approve(
    request: Request, approval_id: str, session: SessionDep, state: StateDep
) -> JSONResponse:
    """Approve and execute once: ``services.approvals.approve``, as ``vincent approvals``."""
    viewer = await require_viewer(request, session)
    _require_owner(viewer)
    check_csrf(request, viewer)
    skill = state.skill
    if not isinstance(skill, PolymarketSkill):
        raise ConfigurationError("The Polymarket skill is not configured in this process")
    outcome = await approvals.approve(
        state.session_factory, skill, approval_id, decided_by=DECIDED_BY, now=utcnow()
    )
    if state.worker is not None:  # the paused rule settles on the next tick: run it now
        state.worker.request_tick()
    if outcome.approval.rule_id is not None:
        hub_of(request).rule_changed(outcome.approval.rule_id)
    data: dict[str, Any] = {"approval": approvals.approval_json(outcome.approval)}
    if outcome.result is not None:
        data["result"] = approvals.bet_result_json(outcome.result)
    else:
        data["error"] = {"code": outcome.error_code, "message": outcome.error_message}
    return ok(data)


@router.post("/approvals/{approval_id}/deny")
async def deny(
    request: Request, approval_id: str, session: SessionDep, state: StateDep
) -> JSONResponse:
    viewer = await require_viewer(request, session)
    _require_owner(viewer)
    check_csrf(request, viewer)
    denied = await approvals.deny(session, approval_id, decided_by=DECIDED_BY, now=utcnow())
    if state.worker is not None:
        state.worker.request_tick()
    return ok({"approval": approvals.approval_json(denied)})
