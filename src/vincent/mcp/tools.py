"""The MCP tools and the ``rules://`` resource: each one REST call, REST field names.

A tool's optional arguments left out are left out of the request too, so the REST API's
defaults and checks apply unchanged. Results are structured content (the envelope's
``data``); errors are tool errors (``isError``) whose structured content is the envelope's
``{"code", "message", "details"}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from vincent import __version__
from vincent.mcp.rest_client import RestAnswer, RestError, VincentRestClient, path_segment

# The REST client for the caller of this tool call (HTTP: its own key; stdio: the key given).
ClientFor = Callable[[Context[Any, Any]], AbstractAsyncContextManager[VincentRestClient]]
# The caller's secret id where the transport knows it (HTTP), else None.
SecretIdFor = Callable[[Context[Any, Any]], str | None]

INSTRUCTIONS = """\
Vincent Trade Manager: exit rules (stop-loss, take-profit, trailing stop) that sell your
Polymarket positions when the price crosses a trigger, plus holdings, order books and bets.
Prices are probabilities strictly between 0 and 1 (0.42 = 42 cents a share). BUY amounts are
in US dollars, SELL amounts and SELL_PARTIAL amounts in shares. marketId is the market's
condition id, tokenId the outcome token (see the holdings tool). Errors carry the REST API's
code (VALIDATION_ERROR, NOT_FOUND, ...) and message.
"""

READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
CHANGES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)


def _result(answer: RestAnswer) -> CallToolResult:
    data = answer.data if isinstance(answer.data, dict) else {"result": answer.data}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data))], structured_content=data
    )


def _error(error: RestError) -> CallToolResult:
    envelope: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        envelope["details"] = error.details
    text = f"{error.code}: {error.message}"
    if error.details is not None:
        text += "\n" + json.dumps(error.details)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=envelope,
        is_error=True,
    )


def _present(**fields: Any) -> dict[str, Any]:
    """The arguments the caller gave (None = left out, so the REST default applies)."""
    return {k: v for k, v in fields.items() if v is not None}


def _arg(description: str, **schema: Any) -> Any:
    """A tool argument the REST API validates: declared loosely (any JSON value, default
    absent) so a wrong or missing one gets the REST API's VALIDATION_ERROR, not the SDK's;
    ``schema`` still tells the agent its JSON type."""
    return Field(default=None, description=description, json_schema_extra=schema)


def _segment(name: str, value: Any) -> str:
    """A path argument (the REST API sees no body field for it): a non-empty string."""
    if isinstance(value, str) and value:
        return path_segment(value)
    received = "undefined" if value is None else type(value).__name__
    issue = {
        "expected": "string",
        "code": "invalid_type",
        "path": [name],
        "message": f"Invalid input: expected string, received {received}",
    }
    raise RestError(400, "VALIDATION_ERROR", "Validation failed", [issue])


RULE_ID = "The rule's id (the `id` of a rule object)"
TOKEN_ID = "Outcome token id (decimal string)"
PRICE_RANGE = "strictly between 0 and 1 (0.4 = 40 cents a share)"
# Required arguments per tool, as the REST API requires them (declared, checked by REST).
REQUIRED = {
    "create_rule": ["ruleType", "marketId", "tokenId", "triggerPrice", "action"],
    "create_bracket": ["marketId", "tokenId", "stopLoss", "takeProfit", "action"],
    "get_rule": ["ruleId"],
    "update_rule": ["ruleId", "triggerPrice"],
    "cancel_rule": ["ruleId"],
    "orderbook": ["tokenId"],
    "midpoint": ["tokenId"],
    "place_bet": ["tokenId", "side", "amount"],
}


def build_mcp_server(client_for: ClientFor, secret_id_for: SecretIdFor) -> MCPServer:
    """The MCP server with every tool; ``client_for`` binds a call to its caller's key."""

    async def call(
        ctx: Context[Any, Any],
        method: str,
        path: str,
        *,
        segments: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> CallToolResult:
        try:
            for name, value in (segments or {}).items():
                path = path.replace("{" + name + "}", _segment(name, value))
            async with client_for(ctx) as client:
                answer = await client.request(method, path, json=body, params=params)
        except RestError as error:
            return _error(error)
        return _result(answer)

    async def create_rule(
        ctx: Context[Any, Any],
        ruleType: Any = _arg(
            "STOP_LOSS (sell when price <= triggerPrice), TAKE_PROFIT (sell when price >= "
            "triggerPrice) or TRAILING_STOP (the trigger follows the highest price seen, "
            "trailingPercent below it, and never falls)",
            type="string",
            enum=["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"],
        ),
        marketId: Any = _arg("The market's condition id (0x...)", type="string"),
        tokenId: Any = _arg(TOKEN_ID, type="string"),
        triggerPrice: Any = _arg(f"Trigger price, {PRICE_RANGE}", type="number"),
        action: Any = _arg(
            '{"type": "SELL_ALL"} (every share held) or {"type": "SELL_PARTIAL", "amount": N} '
            "(N shares)",
            type="object",
        ),
        trailingPercent: Any = _arg(
            "TRAILING_STOP only, and required there: distance below the high, in % (0-100)",
            type="number",
        ),
        triggerSource: Any = _arg(
            "Price watched: MIDPOINT (default), BEST_BID or LAST_TRADE", type="string"
        ),
        expiresAt: Any = _arg("Optional ISO-8601 time when the rule expires", type="string"),
    ) -> CallToolResult:
        """Create an exit rule on a position you hold; it sells through Vincent (policies
        and audit log apply) when the price crosses triggerPrice. Returns the rule."""
        body = _present(
            ruleType=ruleType,
            marketId=marketId,
            tokenId=tokenId,
            triggerPrice=triggerPrice,
            action=action,
            trailingPercent=trailingPercent,
            triggerSource=triggerSource,
            expiresAt=expiresAt,
        )
        return await call(ctx, "POST", "/rules", body=body)

    async def create_bracket(
        ctx: Context[Any, Any],
        marketId: Any = _arg("The market's condition id (0x...)", type="string"),
        tokenId: Any = _arg(TOKEN_ID, type="string"),
        stopLoss: Any = _arg(
            '{"triggerPrice": P} (sell when price <= P), or a trailing stop: '
            '{"trailingPercent": X} (X % below the high) or {"trailingAmount": A} (A price '
            'units below the high), with an optional "triggerPrice" floor and '
            f'"activationPrice" (dormant until the price reaches it); prices {PRICE_RANGE}',
            type="object",
        ),
        takeProfit: Any = _arg(
            '{"triggerPrice": P}: sell when price >= P (above the stop-loss)', type="object"
        ),
        action: Any = _arg(
            '{"type": "SELL_ALL"} (every share held) or {"type": "SELL_PARTIAL", "amount": N} '
            "(N shares), for both rules",
            type="object",
        ),
        triggerSource: Any = _arg(
            "Price watched: MIDPOINT (default), BEST_BID or LAST_TRADE", type="string"
        ),
        expiresAt: Any = _arg("Optional ISO-8601 time when both rules expire", type="string"),
    ) -> CallToolResult:
        """Create a stop-loss and a take-profit that cancel each other (OCO): when one's
        sell fills, the other is CANCELED. Returns {"ocoGroupId", "rules": [stop, take]}."""
        body = _present(
            marketId=marketId,
            tokenId=tokenId,
            stopLoss=stopLoss,
            takeProfit=takeProfit,
            action=action,
            triggerSource=triggerSource,
            expiresAt=expiresAt,
        )
        return await call(ctx, "POST", "/rules/bracket", body=body)

    async def list_rules(
        ctx: Context[Any, Any],
        status: Any = _arg(
            "Only rules in this status: ACTIVE, TRIGGERED, PENDING_APPROVAL, CANCELED, "
            "EXPIRED or FAILED (default all)",
            type="string",
        ),
    ) -> CallToolResult:
        """Your rules, newest first: {"rules": [rule, ...]}."""
        return await call(ctx, "GET", "/rules", params={"status": status})

    async def get_rule(
        ctx: Context[Any, Any], ruleId: Any = _arg(RULE_ID, type="string")
    ) -> CallToolResult:
        """One of your rules (NOT_FOUND for an unknown id or another agent's rule)."""
        return await call(ctx, "GET", "/rules/{ruleId}", segments={"ruleId": ruleId})

    async def update_rule(
        ctx: Context[Any, Any],
        ruleId: Any = _arg(RULE_ID, type="string"),
        triggerPrice: Any = _arg(f"New trigger price, {PRICE_RANGE}", type="number"),
    ) -> CallToolResult:
        """Move an ACTIVE rule's trigger price. Returns the rule."""
        body = _present(triggerPrice=triggerPrice)
        return await call(ctx, "PATCH", "/rules/{ruleId}", segments={"ruleId": ruleId}, body=body)

    async def cancel_rule(
        ctx: Context[Any, Any], ruleId: Any = _arg(RULE_ID, type="string")
    ) -> CallToolResult:
        """Cancel a rule (ACTIVE, FAILED or PENDING_APPROVAL): it will never sell."""
        return await call(ctx, "DELETE", "/rules/{ruleId}", segments={"ruleId": ruleId})

    async def rule_events(
        ctx: Context[Any, Any],
        ruleId: Any = _arg("Only this rule's events (default all yours)", type="string"),
        limit: Any = _arg("At most this many, 1-500 (default 100)", type="integer"),
        offset: Any = _arg("Skip this many (default 0)", type="integer"),
    ) -> CallToolResult:
        """What happened to your rules, newest first: {"events": [{id, ruleId, eventType,
        data, createdAt}, ...]} (RULE_CREATED, RULE_EVALUATED, ACTION_EXECUTED, ...)."""
        params = {"ruleId": ruleId, "limit": limit, "offset": offset}
        return await call(ctx, "GET", "/rules/events", params=params)

    async def positions(ctx: Context[Any, Any]) -> CallToolResult:
        """The positions the monitor watches for your active rules (quantity in shares,
        prices 0-1): {"positions": [...]}."""
        return await call(ctx, "GET", "/rules/positions")

    async def status(ctx: Context[Any, Any]) -> CallToolResult:
        """The monitoring worker's health and your active-rule count."""
        return await call(ctx, "GET", "/rules/status")

    async def holdings(ctx: Context[Any, Any]) -> CallToolResult:
        """Your wallet's Polymarket positions: tokenId, conditionId (= marketId), shares,
        averageEntryPrice and currentPrice (0-1), pnl in dollars."""
        return await call(ctx, "GET", "/holdings")

    async def orderbook(
        ctx: Context[Any, Any], tokenId: Any = _arg(TOKEN_ID, type="string")
    ) -> CallToolResult:
        """A token's order book as Polymarket returns it (bids and asks: price 0-1, size in
        shares)."""
        return await call(ctx, "GET", "/orderbook/{tokenId}", segments={"tokenId": tokenId})

    async def midpoint(
        ctx: Context[Any, Any], tokenId: Any = _arg(TOKEN_ID, type="string")
    ) -> CallToolResult:
        """A token's midpoint price (0-1, as a decimal string; null without a book)."""
        return await call(ctx, "GET", "/midpoint/{tokenId}", segments={"tokenId": tokenId})

    async def place_bet(
        ctx: Context[Any, Any],
        tokenId: Any = _arg(TOKEN_ID, type="string"),
        side: Any = _arg("BUY or SELL", type="string", enum=["BUY", "SELL"]),
        amount: Any = _arg("BUY: dollars to spend. SELL: shares to sell. Above 0", type="number"),
        price: Any = _arg(
            "Limit price 0.001-0.999 (a resting GTC order); default a market order",
            type="number",
        ),
        orderType: Any = _arg("FOK, FAK, GTC or GTD (default by price)", type="string"),
        worstPrice: Any = _arg("Market orders: the worst price accepted, 0-1", type="number"),
        idempotencyKey: Any = _arg("Same key = same order, never a second one", type="string"),
    ) -> CallToolResult:
        """Buy or sell through Vincent: the owner's policies and approvals apply exactly as
        for /bet. Result status: executed, pending_approval (the owner must approve) or
        denied (reason says why)."""
        body = _present(
            tokenId=tokenId,
            side=side,
            amount=amount,
            price=price,
            orderType=orderType,
            worstPrice=worstPrice,
            idempotencyKey=idempotencyKey,
        )
        return await call(ctx, "POST", "/bet", body=body)

    annotations: dict[Callable[..., Any], ToolAnnotations] = {
        create_rule: CHANGES,
        create_bracket: CHANGES,
        list_rules: READ_ONLY,
        get_rule: READ_ONLY,
        update_rule: CHANGES,
        cancel_rule: ToolAnnotations(destructiveHint=True, openWorldHint=False),
        rule_events: READ_ONLY,
        positions: READ_ONLY,
        status: READ_ONLY,
        holdings: READ_ONLY,
        orderbook: READ_ONLY,
        midpoint: READ_ONLY,
        place_bet: ToolAnnotations(destructiveHint=True, openWorldHint=True),
    }
    tools = []
    for fn, hints in annotations.items():
        tool = Tool.from_function(fn, annotations=hints)
        required = REQUIRED.get(tool.name, [])
        tool.parameters["required"] = required
        for name in required:
            tool.parameters["properties"][name].pop("default", None)
        tools.append(tool)

    # The SDK's constructor calls logging.basicConfig; logging is the entry point's to set up.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = MCPServer(
        "vincent-trade-manager", instructions=INSTRUCTIONS, version=__version__, tools=tools
    )
    root.handlers[:] = handlers
    root.setLevel(level)

    @server.resource(
        "rules://{secretId}",
        name="rules",
        description="Your rule list (secretId: yours, as in any rule's secretId)",
        mime_type="application/json",
    )
    async def rules_resource(secretId: str, ctx: Context[Any, Any]) -> str:
        known = secret_id_for(ctx)
        if known is not None and known != secretId:
            raise ResourceNotFoundError(f"No rule list rules://{secretId} for this API key")
        try:
            async with client_for(ctx) as client:
                answer = await client.request("GET", "/rules")
        except RestError as error:
            raise ResourceError(f"{error.code}: {error.message}") from error
        rules = answer.data["rules"]
        if any(rule["secretId"] != secretId for rule in rules):
            raise ResourceNotFoundError(f"No rule list rules://{secretId} for this API key")
        return json.dumps({"rules": rules})

    return server
