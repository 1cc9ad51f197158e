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
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
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

RuleId = Annotated[str, Field(description="The rule's id (the `id` of a rule object)")]
TokenId = Annotated[str, Field(description="Outcome token id (decimal string)")]


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


def build_mcp_server(client_for: ClientFor, secret_id_for: SecretIdFor) -> MCPServer:
    """The MCP server with every tool; ``client_for`` binds a call to its caller's key."""
    # The SDK's constructor calls logging.basicConfig; logging is the entry point's to set up.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = MCPServer("vincent-trade-manager", instructions=INSTRUCTIONS, version=__version__)
    root.handlers[:] = handlers
    root.setLevel(level)

    async def call(
        ctx: Context[Any, Any],
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> CallToolResult:
        try:
            async with client_for(ctx) as client:
                answer = await client.request(method, path, json=body, params=params)
        except RestError as error:
            return _error(error)
        return _result(answer)

    @server.tool(annotations=CHANGES)
    async def create_rule(
        ctx: Context[Any, Any],
        ruleType: Annotated[
            str,
            Field(
                description="STOP_LOSS (sell when price <= triggerPrice), TAKE_PROFIT (sell "
                "when price >= triggerPrice) or TRAILING_STOP (trigger follows the highest "
                "price seen at trailingPercent below it, never down)"
            ),
        ],
        marketId: Annotated[str, Field(description="The market's condition id (0x...)")],
        tokenId: TokenId,
        triggerPrice: Annotated[
            float, Field(description="Trigger price, strictly between 0 and 1 (0.4 = 40 cents)")
        ],
        action: Annotated[
            dict[str, Any],
            Field(
                description='{"type": "SELL_ALL"} (every share held) or {"type": '
                '"SELL_PARTIAL", "amount": N} (N shares)'
            ),
        ],
        trailingPercent: Annotated[
            float | None,
            Field(description="TRAILING_STOP only (required there): distance in %, 0-100"),
        ] = None,
        triggerSource: Annotated[
            str | None,
            Field(description="Price watched: MIDPOINT (default), BEST_BID or LAST_TRADE"),
        ] = None,
        expiresAt: Annotated[
            str | None, Field(description="Optional ISO-8601 time after which the rule expires")
        ] = None,
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

    @server.tool(annotations=READ_ONLY)
    async def list_rules(
        ctx: Context[Any, Any],
        status: Annotated[
            str | None,
            Field(
                description="Only rules in this status: ACTIVE, TRIGGERED, PENDING_APPROVAL, "
                "CANCELED, EXPIRED or FAILED (default all)"
            ),
        ] = None,
    ) -> CallToolResult:
        """Your rules, newest first: {"rules": [rule, ...]}."""
        return await call(ctx, "GET", "/rules", params={"status": status})

    @server.tool(annotations=READ_ONLY)
    async def get_rule(ctx: Context[Any, Any], ruleId: RuleId) -> CallToolResult:
        """One of your rules (NOT_FOUND for an unknown id or another agent's rule)."""
        return await call(ctx, "GET", f"/rules/{path_segment(ruleId)}")

    @server.tool(annotations=CHANGES)
    async def update_rule(
        ctx: Context[Any, Any],
        ruleId: RuleId,
        triggerPrice: Annotated[
            float, Field(description="New trigger price, strictly between 0 and 1")
        ],
    ) -> CallToolResult:
        """Move an ACTIVE rule's trigger price. Returns the rule."""
        body = {"triggerPrice": triggerPrice}
        return await call(ctx, "PATCH", f"/rules/{path_segment(ruleId)}", body=body)

    @server.tool(annotations=ToolAnnotations(destructiveHint=True, openWorldHint=False))
    async def cancel_rule(ctx: Context[Any, Any], ruleId: RuleId) -> CallToolResult:
        """Cancel a rule (ACTIVE, FAILED or PENDING_APPROVAL): it will never sell."""
        return await call(ctx, "DELETE", f"/rules/{path_segment(ruleId)}")

    @server.tool(annotations=READ_ONLY)
    async def rule_events(
        ctx: Context[Any, Any],
        ruleId: Annotated[
            str | None, Field(description="Only this rule's events (default all yours)")
        ] = None,
        limit: Annotated[int | None, Field(description="At most this many, 1-500 (100)")] = None,
        offset: Annotated[int | None, Field(description="Skip this many (0)")] = None,
    ) -> CallToolResult:
        """What happened to your rules, newest first: {"events": [{id, ruleId, eventType,
        data, createdAt}, ...]} (RULE_CREATED, RULE_EVALUATED, ACTION_EXECUTED, ...)."""
        params = {"ruleId": ruleId, "limit": limit, "offset": offset}
        return await call(ctx, "GET", "/rules/events", params=params)

    @server.tool(annotations=READ_ONLY)
    async def positions(ctx: Context[Any, Any]) -> CallToolResult:
        """The positions the monitor watches for your active rules (quantity in shares,
        prices 0-1): {"positions": [...]}."""
        return await call(ctx, "GET", "/rules/positions")

    @server.tool(annotations=READ_ONLY)
    async def status(ctx: Context[Any, Any]) -> CallToolResult:
        """The monitoring worker's health and your active-rule count."""
        return await call(ctx, "GET", "/rules/status")

    @server.tool(annotations=READ_ONLY)
    async def holdings(ctx: Context[Any, Any]) -> CallToolResult:
        """Your wallet's Polymarket positions: tokenId, conditionId (= marketId), shares,
        averageEntryPrice and currentPrice (0-1), pnl in dollars."""
        return await call(ctx, "GET", "/holdings")

    @server.tool(annotations=READ_ONLY)
    async def orderbook(ctx: Context[Any, Any], tokenId: TokenId) -> CallToolResult:
        """A token's order book as Polymarket returns it (bids and asks: price 0-1, size in
        shares)."""
        return await call(ctx, "GET", f"/orderbook/{path_segment(tokenId)}")

    @server.tool(annotations=READ_ONLY)
    async def midpoint(ctx: Context[Any, Any], tokenId: TokenId) -> CallToolResult:
        """A token's midpoint price (0-1, as a decimal string; null without a book)."""
        return await call(ctx, "GET", f"/midpoint/{path_segment(tokenId)}")

    @server.tool(annotations=ToolAnnotations(destructiveHint=True, openWorldHint=True))
    async def place_bet(
        ctx: Context[Any, Any],
        tokenId: TokenId,
        side: Annotated[Literal["BUY", "SELL"], Field(description="BUY or SELL")],
        amount: Annotated[
            float, Field(description="BUY: dollars to spend. SELL: shares to sell. Above 0")
        ],
        price: Annotated[
            float | None,
            Field(description="Limit price 0.001-0.999 (a resting GTC order); default market"),
        ] = None,
        orderType: Annotated[
            str | None, Field(description="FOK, FAK, GTC or GTD (default by price)")
        ] = None,
        worstPrice: Annotated[
            float | None, Field(description="Market orders: worst price accepted, 0-1")
        ] = None,
        idempotencyKey: Annotated[
            str | None, Field(description="Same key = same order, never a second one")
        ] = None,
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
