"""The control API under /_sim: HTTP front end over ``SimControl`` (see docs/local-exchange.md).

Thin: parses JSON bodies and calls the same methods in-process tests call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vincent.sim.control import SimControl
from vincent.sim.errors import SimError


def _control(request: Request) -> SimControl:
    control: SimControl = request.app.state.control
    return control


def call_operation(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a control operation; a bad argument is the caller's 400, not our 500."""
    try:
        return operation(*args, **kwargs)
    except (TypeError, KeyError, ValueError, ArithmeticError) as error:
        raise SimError(400, f"invalid control request: {error}") from error


async def _body(request: Request) -> dict[str, Any]:
    return parse_body(await request.body())


def parse_body(raw: bytes) -> dict[str, Any]:
    """A control request's JSON object (an empty body is ``{}``)."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as error:
        raise SimError(400, "body must be JSON") from error
    if not isinstance(body, dict):
        raise SimError(400, f"body must be a JSON object, was {type(body).__name__}")
    return body


def _ok(**extra: Any) -> Response:
    return JSONResponse({"ok": True, **extra})


async def create_market(request: Request) -> Response:
    body = await _body(request)
    try:
        condition_id, token_ids = body.pop("condition_id"), body.pop("token_ids")
        market = call_operation(_control(request).create_market, condition_id, token_ids, **body)
    except (KeyError, TypeError) as error:
        raise SimError(400, f"invalid market: {error}") from error
    return JSONResponse(market.clob_detail())


async def set_book(request: Request) -> Response:
    body = await _body(request)
    call_operation(
        _control(request).set_book,
        request.path_params["token_id"],
        body.get("bids", []),
        body.get("asks", []),
    )
    return _ok()


async def step_price(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).step_price, request.path_params["token_id"], **body)
    return _ok()


async def start_path(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).start_path, request.path_params["token_id"], **body)
    return _ok()


async def start_random_walk(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).start_random_walk, request.path_params["token_id"], **body)
    return _ok()


async def set_tick_size(request: Request) -> Response:
    body = await _body(request)
    call_operation(
        _control(request).set_tick_size, request.path_params["token_id"], body.get("tick_size")
    )
    return _ok()


async def credit(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).credit, **body)
    return _ok()


async def balances(request: Request) -> Response:
    return JSONResponse(_control(request).balances(request.path_params["address"]))


async def resolve(request: Request) -> Response:
    body = await _body(request)
    call_operation(
        _control(request).resolve, body.get("condition_id"), body.get("winning_token_id")
    )
    return _ok()


async def set_version(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).set_version, body.get("version"))
    return _ok(version=body.get("version"))


async def deposit_wallet_only(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).require_deposit_wallet, body.get("enabled", True))
    return _ok(enabled=_control(request).state.exchange.deposit_wallet_only)


async def ws_drop(request: Request) -> Response:
    return _ok(dropped=_control(request).drop_websockets())


async def ws_stall(request: Request) -> Response:
    _control(request).stall_websockets()
    return _ok()


async def ws_resume(request: Request) -> Response:
    _control(request).resume_websockets()
    return _ok()


async def arm_fault(request: Request) -> Response:
    body = await _body(request)
    control = _control(request)
    kind, path = body.get("kind"), body.get("path")
    count, method = int(body.get("count", 1)), body.get("method")
    if not isinstance(path, str):
        raise SimError(400, f"path must be a string, was {path!r}")
    if kind == "error":
        control.fail_next(path, count, int(body.get("status", 503)), method)
    elif kind == "rate_limit":
        control.rate_limit_next(path, count, int(body.get("retry_after_s", 1)), method)
    elif kind == "hang":
        control.hang_next(path, count, method)
    elif kind == "withhold":
        control.withhold_next(path, count, body.get("mode", "close"), method or "POST")
    elif kind == "error_after":
        call_operation(
            control.fail_after_next, path, count, int(body.get("status", 502)), method or "POST"
        )
    elif kind == "garble":
        control.garble_next(path, count, method or "POST")
    else:
        raise SimError(
            400,
            f"kind must be error, rate_limit, hang, withhold, error_after or garble, was {kind!r}",
        )
    return _ok(faults=control.state.faults.armed())


async def defer_orders(request: Request) -> Response:
    body = await _body(request)
    call_operation(_control(request).defer_next_orders, **body)
    return _ok()


async def settlement(request: Request) -> Response:
    body = await _body(request)
    control = _control(request)
    if "delay_s" in body:
        call_operation(control.set_settlement_delay, body["delay_s"])
    if "fail_next" in body:
        call_operation(control.fail_settlement_next, body["fail_next"])
    return _ok(trades=control.trade_statuses())


async def stale_balance(request: Request) -> Response:
    _control(request).stale_balance_cache(request.path_params["address"])
    return _ok()


async def clear_faults(request: Request) -> Response:
    _control(request).clear_faults()
    return _ok()


async def list_faults(request: Request) -> Response:
    return JSONResponse(_control(request).state.faults.armed())


async def timing(request: Request) -> Response:
    control = _control(request)
    return JSONResponse(
        {
            "clock": "perf_counter_ns",
            "price_sends": [asdict(s) for s in control.price_sends()],
            "order_receipts": [asdict(o) for o in control.order_receipts()],
        }
    )


async def clear_timing(request: Request) -> Response:
    _control(request).clear_timing()
    return _ok()


async def status(request: Request) -> Response:
    return JSONResponse(_control(request).status())


ROUTES = [
    Route("/status", status, methods=["GET"]),
    Route("/markets", create_market, methods=["POST"]),
    Route("/books/{token_id}", set_book, methods=["PUT"]),
    Route("/prices/{token_id}", step_price, methods=["POST"]),
    Route("/paths/{token_id}", start_path, methods=["POST"]),
    Route("/random-walks/{token_id}", start_random_walk, methods=["POST"]),
    Route("/tick-sizes/{token_id}", set_tick_size, methods=["POST"]),
    Route("/credits", credit, methods=["POST"]),
    Route("/balances/{address}", balances, methods=["GET"]),
    Route("/resolutions", resolve, methods=["POST"]),
    Route("/version", set_version, methods=["PUT"]),
    Route("/deposit-wallet-only", deposit_wallet_only, methods=["PUT"]),
    Route("/ws/drop", ws_drop, methods=["POST"]),
    Route("/ws/stall", ws_stall, methods=["POST"]),
    Route("/ws/resume", ws_resume, methods=["POST"]),
    Route("/faults", arm_fault, methods=["POST"]),
    Route("/faults", clear_faults, methods=["DELETE"]),
    Route("/faults", list_faults, methods=["GET"]),
    Route("/deferred-orders", defer_orders, methods=["POST"]),
    Route("/settlement", settlement, methods=["POST"]),
    Route("/stale-balances/{address}", stale_balance, methods=["POST"]),
    Route("/timing", timing, methods=["GET"]),
    Route("/timing", clear_timing, methods=["DELETE"]),
]
