"""``/api/skills/polymarket/rules``: the trade-rules API. HTTP in, service calls, JSON out."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vincent.api.deps import CurrentSecret, ReadSessionDep, SessionDep, StateDep
from vincent.api.envelope import iso, ok
from vincent.api.rule_changes import CHANNEL as RULE_CHANGES_CHANNEL
from vincent.api.rule_changes import notify_rule_change
from vincent.api.schemas import (
    BracketEnvelope,
    CreateBracketBody,
    CreateRuleBody,
    IdParam,
    RuleEnvelope,
    UpdateRuleBody,
    as_decimal,
    expiry_issues,
    id_issues,
    render_event,
    render_position,
    render_rule,
    render_rule_row,
)
from vincent.api.state import AppState
from vincent.db.base import utcnow
from vincent.enums import TradeRuleStatus, TradeRuleType, TriggerSource
from vincent.errors import InvalidStatusFilter, ValidationFailed
from vincent.services.trade_manager import event_logger, oco, positions, rule_manager
from vincent.services.trade_manager.market_membership import check_token_in_market
from vincent.services.trade_manager.trailing import STEP

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/rules", tags=["trade rules"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Validation failed, or the rule cannot be changed in its status"},
    401: {"description": "Missing, malformed, unknown or revoked API key"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"description": "No such rule for this API key (another tenant's rule is a 404)"},
}
_LEADING_INT = re.compile(r"^\s*([+-]?\d+)")
# A market's slug never changes: remember it an hour. No slug (unknown market, Gamma down)
# is asked again after a minute. At most this many markets are remembered.
SLUG_TTL_S = 3600.0
NO_SLUG_TTL_S = 60.0
SLUG_CACHE_SIZE = 10_000


# Past this an offset is a mistake (or a probe): refused, never sent to the database.
MAX_EVENTS_OFFSET = 1_000_000


def js_parse_int(raw: str | None, default: int) -> int:
    """``parseInt`` semantics of the original: leading digits, else the default.

    At most 20 digits are read: a longer run is as refused as its first 20.
    """
    match = _LEADING_INT.match((raw or "")[:24])
    return int(match.group(1)) if match else default


@router.post(
    "",
    status_code=201,
    responses={201: {"model": RuleEnvelope, "description": "The rule"}, **_ERRORS},
    summary="Create a rule",
    description=(
        "TRAILING_STOP takes exactly one of trailingPercent / trailingAmount, and optionally "
        "activationPrice (dormant until reached). ocoGroupId joins rules of the same key and "
        "token into a one-cancels-the-other group."
    ),
)
async def create_rule(
    body: CreateRuleBody,
    request: Request,
    secret: CurrentSecret,
    session: SessionDep,
    state: StateDep,
) -> JSONResponse:
    sent = set(body.model_fields_set)
    issues = body.trailing_issues(sent)
    for field in ("trailingPercent", "trailingAmount", "activationPrice"):
        if field in sent and getattr(body, field) is None:
            issues = [
                {
                    "expected": "number",
                    "code": "invalid_type",
                    "path": [field],
                    "message": "Invalid input: expected number, received null",
                }
            ]
            break
    issues += body.expiry_issues(utcnow())
    if issues:
        raise ValidationFailed(details=issues)
    new = rule_manager.NewRule(
        rule_type=TradeRuleType(body.ruleType),
        market_id=body.marketId,
        token_id=body.tokenId,
        side=body.side,
        trigger_price=as_decimal(body.triggerPrice),
        trailing_percent=None if body.trailingPercent is None else as_decimal(body.trailingPercent),
        action=body.rule_action(),
        trigger_source=TriggerSource(body.triggerSource),
        expires_at=body.expiresAt,
        execution_mode=state.settings.execution_mode,
        trailing_amount=_optional_decimal(body.trailingAmount),
        activation_price=_optional_decimal(body.activationPrice),
        oco_group_id=body.ocoGroupId,
    )
    payload = body.model_dump(mode="json", exclude_none=True, exclude={"expiresAt"})
    if body.triggerSource == "MIDPOINT" and "triggerSource" not in sent:
        payload.pop("triggerSource", None)
    if body.ocoGroupId is not None:
        await oco.check_group_token(session, secret.id, body.ocoGroupId, body.tokenId)
    await _check_token_market(state, body.marketId, body.tokenId)
    slug = await _market_slug(state, body.marketId)
    rule = await rule_manager.create_rule(
        session,
        secret.id,
        new,
        max_active_rules=state.settings.trade_manager_max_rules_per_secret,
        market_slug=slug,
        payload=payload,
        notify_channel=RULE_CHANGES_CHANNEL if state.notify_rule_changes else None,
    )
    await session.commit()
    state.rule_listener.rule_upserted(rule_manager.to_snapshot(rule))
    logger.info("rule created", extra={"rule_id": rule.id, "secret_id": secret.id})
    return ok(render_rule(rule), status_code=201)


@router.post(
    "/bracket",
    status_code=201,
    responses={201: {"model": BracketEnvelope, "description": "Both rules"}, **_ERRORS},
    summary="Create a stop-loss and a take-profit that cancel each other (OCO)",
    description=(
        "Creates both rules in one transaction and answers "
        '`{"ocoGroupId", "rules": [stopLoss, takeProfit]}`. When one fires the other stops '
        "watching; when its sell fills the other becomes CANCELED (RULE_CANCELED "
        '`{"reason": "oco", "firedRuleId"}`); when it ends without selling the other '
        "watches again. Each rule counts toward the per-key rule limit."
    ),
)
async def create_bracket(
    body: CreateBracketBody, secret: CurrentSecret, session: SessionDep, state: StateDep
) -> JSONResponse:
    issues = body.issues() + expiry_issues(body.expiresAt, utcnow())
    if issues:
        raise ValidationFailed(details=issues)
    stop = body.stopLoss
    common: dict[str, Any] = {
        "market_id": body.marketId,
        "token_id": body.tokenId,
        "action": body.rule_action(),
        "trigger_source": TriggerSource(body.triggerSource),
        "expires_at": body.expiresAt,
        "execution_mode": state.settings.execution_mode,
    }
    if stop.is_trailing:
        # No floor given: the lowest trigger, raised to price less the trail by the first price.
        floor = STEP if stop.triggerPrice is None else as_decimal(stop.triggerPrice)
        stop_rule = rule_manager.NewRule(
            rule_type=TradeRuleType.TRAILING_STOP,
            trigger_price=floor,
            trailing_percent=_optional_decimal(stop.trailingPercent),
            trailing_amount=_optional_decimal(stop.trailingAmount),
            activation_price=_optional_decimal(stop.activationPrice),
            **common,
        )
    else:
        assert stop.triggerPrice is not None
        stop_rule = rule_manager.NewRule(
            rule_type=TradeRuleType.STOP_LOSS, trigger_price=as_decimal(stop.triggerPrice), **common
        )
    take_rule = rule_manager.NewRule(
        rule_type=TradeRuleType.TAKE_PROFIT,
        trigger_price=as_decimal(body.takeProfit.triggerPrice),
        **common,
    )
    await _check_token_market(state, body.marketId, body.tokenId)
    slug = await _market_slug(state, body.marketId)
    group_id, rules = await rule_manager.create_bracket(
        session,
        secret.id,
        stop_rule,
        take_rule,
        max_active_rules=state.settings.trade_manager_max_rules_per_secret,
        market_slug=slug,
        payload=body.model_dump(mode="json", exclude_none=True, exclude={"expiresAt"}),
    )
    if state.notify_rule_changes:
        for rule in rules:
            await notify_rule_change(session, rule.id)
    await session.commit()
    for rule in rules:
        state.rule_listener.rule_upserted(rule_manager.to_snapshot(rule))
    logger.info("bracket created", extra={"oco_group_id": group_id, "secret_id": secret.id})
    return ok({"ocoGroupId": group_id, "rules": [render_rule(r) for r in rules]}, status_code=201)


async def _check_token_market(state: AppState, market_id: str, token_id: str) -> None:
    """400 when the exchange says the token is not an outcome of the market (issue 15)."""
    if state.skill is not None:
        await check_token_in_market(
            state.skill, market_id, token_id, timeout_s=state.settings.polymarket_http_timeout_s
        )


def _optional_decimal(value: float | None) -> Decimal | None:
    return None if value is None else as_decimal(value)


async def _market_slug(state: AppState, market_id: str) -> str | None:
    """Gamma lookup with a short timeout, cached per market; any failure leaves it null."""
    if state.skill is None:
        return None
    cached = state.market_slugs.get(market_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    slug: str | None = None
    try:
        async with asyncio.timeout(state.settings.gamma_lookup_timeout_s):
            slug = await state.skill.lookup_market_slug(market_id)
    except Exception:  # the slug is cosmetic: never fail the create over it
        logger.warning("market slug lookup failed", extra={"market_id": market_id})
    slugs = state.market_slugs
    slugs.pop(market_id, None)
    while len(slugs) >= SLUG_CACHE_SIZE:
        del slugs[next(iter(slugs))]
    slugs[market_id] = (time.monotonic() + (NO_SLUG_TTL_S if slug is None else SLUG_TTL_S), slug)
    return slug


@router.get("", responses=_ERRORS, summary="List the caller's rules, newest first")
async def list_rules(
    request: Request, secret: CurrentSecret, session: ReadSessionDep
) -> JSONResponse:
    values = request.query_params.getlist("status")
    status = None
    if len(values) == 1 and values[0].strip():
        try:
            status = TradeRuleStatus(values[0].strip().upper())
        except ValueError:
            raise InvalidStatusFilter(values[0]) from None
    rules = await rule_manager.read_rules(session, secret.id, status)
    return ok({"rules": [render_rule_row(r) for r in rules]})


@router.get(
    "/events",
    responses=_NOT_FOUND,
    summary="The caller's rule events, newest first",
    description=(
        "eventType is one of RULE_CREATED, RULE_EVALUATED, RULE_TRIGGERED, RULE_FAILED, "
        "RULE_CANCELED (data {} when canceled by hand, "
        '{"reason": "oco", "firedRuleId"} when its OCO group\'s sell filled), '
        "RULE_TRAILING_UPDATED ({triggerPrice, currentPrice, trailingPercent | trailingAmount}, "
        'plus "activated": true when it woke a dormant stop), RULE_EXPIRED ({"reason": '
        '"market_resolved" | "market_closed" | "expiresAt", "winningTokenId"?}), '
        "ACTION_ATTEMPT, ACTION_PENDING_APPROVAL, ACTION_EXECUTED, ACTION_FAILED."
    ),
)
async def list_events(
    request: Request, secret: CurrentSecret, session: ReadSessionDep
) -> JSONResponse:
    params = request.query_params
    rule_id = params.get("ruleId") or None
    if rule_id is not None and (issues := id_issues("ruleId", rule_id)):
        raise ValidationFailed(details=issues)
    limit = js_parse_int(params.get("limit"), event_logger.DEFAULT_EVENTS_LIMIT)
    offset = js_parse_int(params.get("offset"), 0)
    if offset > MAX_EVENTS_OFFSET:
        raise ValidationFailed(
            details=[
                {
                    "origin": "number",
                    "code": "too_big",
                    "maximum": MAX_EVENTS_OFFSET,
                    "inclusive": True,
                    "path": ["offset"],
                    "message": f"offset must be at most {MAX_EVENTS_OFFSET}, was {offset}",
                }
            ]
        )
    if rule_id is not None:
        await rule_manager.read_rule(session, secret.id, rule_id)
    events = await event_logger.get_events(session, secret.id, rule_id, limit, offset)
    return ok({"events": [render_event(e) for e in events]})


@router.get("/positions", responses=_ERRORS, summary="The caller's monitored positions")
async def list_positions(secret: CurrentSecret, session: ReadSessionDep) -> JSONResponse:
    rows = await positions.list_positions(session, secret.id)
    return ok({"positions": [render_position(p) for p in rows]})


@router.get("/status", responses=_ERRORS, summary="Worker health and the caller's rule count")
async def worker_status(
    secret: CurrentSecret, session: ReadSessionDep, state: StateDep
) -> JSONResponse:
    status = state.worker_status()
    mode = state.settings.execution_mode
    data: dict[str, Any] = {
        "running": status.running,
        "yourActiveRulesCount": await rule_manager.count_active_rules(session, secret.id),
        # Added: this process's mode, and the caller's rules of the other mode it leaves alone.
        "executionMode": mode.value,
        "yourOtherModeRulesCount": await rule_manager.count_other_mode_rules(
            session, secret.id, mode
        ),
    }
    if status.last_sync_time is not None:
        data["lastSyncTime"] = iso(status.last_sync_time)
    data["webSocketConnected"] = status.web_socket_connected
    data["consecutiveFailures"] = status.consecutive_failures
    if status.circuit_breaker_until is not None:
        data["circuitBreakerUntil"] = iso(status.circuit_breaker_until)
    data["webSocketSubscriptions"] = status.web_socket_subscriptions
    data["webSocketConnections"] = status.web_socket_connections
    data["lastMessageAgeSeconds"] = status.last_message_age_s
    if state.worker is not None:
        data["leader"] = status.leader
        data["workerId"] = status.worker_id
    else:  # API-only: the leader as its status file names it (None: no leader seen)
        data["leader"] = status.worker_id if status.leader else None
        data["workerId"] = None
    return ok(data)


@router.get(
    "/{rule_id}",
    responses={200: {"model": RuleEnvelope, "description": "The rule"}, **_NOT_FOUND},
    summary="One rule",
)
async def get_rule(
    rule_id: IdParam, secret: CurrentSecret, session: ReadSessionDep
) -> JSONResponse:
    return ok(render_rule_row(await rule_manager.read_rule(session, secret.id, rule_id)))


@router.patch("/{rule_id}", responses=_NOT_FOUND, summary="Move an ACTIVE rule's trigger")
async def update_rule(
    rule_id: IdParam,
    body: UpdateRuleBody,
    secret: CurrentSecret,
    session: SessionDep,
    state: StateDep,
) -> JSONResponse:
    rule = await rule_manager.update_rule(
        session, secret.id, rule_id, as_decimal(body.triggerPrice)
    )
    if state.notify_rule_changes:
        await notify_rule_change(session, rule.id)
    await session.commit()
    state.rule_listener.rule_upserted(rule_manager.to_snapshot(rule))
    return ok(render_rule(rule))


@router.delete("/{rule_id}", responses=_NOT_FOUND, summary="Cancel a rule")
async def cancel_rule(
    rule_id: IdParam, secret: CurrentSecret, session: SessionDep, state: StateDep
) -> JSONResponse:
    rule = await rule_manager.cancel_rule(session, secret.id, rule_id)
    # OCO: a canceled rule that was waiting on its sell's approval no longer pauses its group.
    released = await oco.release_paused_siblings(session, rule.id)
    if state.notify_rule_changes:
        await notify_rule_change(session, rule.id)
        for sibling_id in released:
            await notify_rule_change(session, sibling_id)
    await session.commit()
    state.rule_listener.rule_removed(rule.id, rule.token_id)
    if released:
        for sibling in await rule_manager.get_rules_by_ids(session, released):
            state.rule_listener.rule_upserted(rule_manager.to_snapshot(sibling))
    return ok(render_rule(rule))
