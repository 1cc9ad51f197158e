"""The one place that maps error classes to HTTP statuses and writes the error envelope.

Three handlers: ``VincentError`` (found along the exception's MRO), request validation
(rendered as Zod-style issues like the original), and a last-resort 500 with no trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vincent.api.envelope import error_body
from vincent.api.middleware import trace_id_var
from vincent.api.rate_limit import RequestLimitExceeded, charge_unclaimed, retry_after_header
from vincent.api.schemas import ENUM_VALUES, FIELD_TYPES
from vincent.errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidSecretType,
    NotFound,
    NotImplementedHere,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    VincentError,
)
from vincent.skills.polymarket.errors import (
    ExchangeTimeout,
    ExchangeUnavailable,
    InsufficientBalance,
    InvalidOrder,
    MarketClosed,
    NoLiquidity,
    NoPosition,
    RateLimited,
    SkillError,
    UnknownOutcome,
)
from vincent.skills.polymarket.http import InvalidPathSegment

logger = logging.getLogger(__name__)

# Most specific class first; the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[VincentError], int], ...] = (
    (ValidationFailed, 400),
    (BadRequest, 400),
    (InvalidSecretType, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidPathSegment, 400),
    # What the request asked cannot be done with this wallet or market: the caller's
    # to change, so a 4xx (the original answered 500).
    (InsufficientBalance, 400),
    (NoPosition, 400),
    (InvalidOrder, 400),
    (MarketClosed, 409),
    (NoLiquidity, 409),
    (RateLimited, 429),
    (RequestLimitExceeded, 429),
    (TooManyRequests, 429),
    (NotImplementedHere, 501),
    (UnknownOutcome, 502),
    (ExchangeUnavailable, 503),
    (ExchangeTimeout, 504),
    (SkillError, 500),
    (ConfigurationError, 500),
)


def status_for(error: VincentError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 500


def _json_value(value: Any) -> Any:
    """Constraint values (Decimal, float, ...) as plain JSON numbers."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return int(number) if number.is_integer() else number


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_EXPECTED_BY_TYPE = {
    "string_type": "string",
    "float_type": "number",
    "float_parsing": "number",
    "int_type": "number",
    "int_parsing": "number",
    "bool_type": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "datetime_type": "string",
    "datetime_parsing": "datetime",
    "datetime_from_date_parsing": "datetime",
    "finite_number": "number",
}


def zod_issue(error: Any) -> dict[str, Any]:
    """Render one Pydantic error as the original's Zod v4 issue object."""
    loc: Sequence[Any] = error.get("loc", ())
    path = [p for p in loc[1:] if not (isinstance(p, str) and p in {"SELL_ALL", "SELL_PARTIAL"})]
    field = ".".join(str(p) for p in path)
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    given = error.get("input")
    if kind == "json_invalid":
        message = f"Malformed JSON body: {ctx.get('error', 'invalid JSON')}"
        return {"code": "invalid_json", "path": [], "message": message}
    if kind == "missing" and field in ENUM_VALUES:
        kind = "literal_error"
    if kind in ("literal_error", "enum") or (kind == "missing" and field in ENUM_VALUES):
        values = ENUM_VALUES.get(field, [])
        options = "|".join(f'"{v}"' for v in values)
        message = (
            f"Invalid input: expected {options}"
            if len(values) == 1
            else f"Invalid option: expected one of {options}"
        )
        return {"code": "invalid_value", "values": values, "path": path, "message": message}
    if kind == "missing":
        expected = FIELD_TYPES.get(field, "object" if not path else "string")
        return {
            "expected": expected,
            "code": "invalid_type",
            "path": path,
            "message": f"Invalid input: expected {expected}, received undefined",
        }
    if kind in _EXPECTED_BY_TYPE:
        expected = _EXPECTED_BY_TYPE[kind]
        return {
            "expected": expected,
            "code": "invalid_type",
            "path": path,
            "message": f"Invalid input: expected {expected}, received {_json_type(given)}",
        }
    if kind in ("greater_than", "greater_than_equal"):
        bound = _json_value(ctx.get("gt", ctx.get("ge")))
        inclusive = kind == "greater_than_equal"
        op = ">=" if inclusive else ">"
        return {
            "origin": "number",
            "code": "too_small",
            "minimum": bound,
            "inclusive": inclusive,
            "path": path,
            "message": f"Too small: expected number to be {op}{bound}, was {_json_value(given)}",
        }
    if kind in ("less_than", "less_than_equal"):
        bound = _json_value(ctx.get("lt", ctx.get("le")))
        inclusive = kind == "less_than_equal"
        op = "<=" if inclusive else "<"
        return {
            "origin": "number",
            "code": "too_big",
            "maximum": bound,
            "inclusive": inclusive,
            "path": path,
            "message": f"Too big: expected number to be {op}{bound}, was {_json_value(given)}",
        }
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        return {
            "origin": "string",
            "code": "too_small",
            "minimum": minimum,
            "inclusive": True,
            "path": path,
            "message": f"Too small: expected string to have >={minimum} characters",
        }
    if kind in ("datetime_parsing", "datetime_from_date_parsing") and isinstance(given, str):
        kind, ctx = "invalid_format", {"expected": "an ISO-8601 date and time"}
    if kind == "invalid_format":
        expected = str(ctx.get("expected", "valid"))
        return {
            "origin": "string",
            "code": "invalid_format",
            "format": expected,
            "path": path,
            "message": f"{field or 'value'} must be {expected}, was {_shown(given)}",
        }
    if kind == "string_too_long":
        maximum = ctx.get("max_length")
        return {
            "origin": "string",
            "code": "too_big",
            "maximum": maximum,
            "inclusive": True,
            "path": path,
            "message": f"Too big: expected string to have <={maximum} characters",
        }
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else ""
        return {
            "code": "unrecognized_keys",
            "keys": [key],
            "path": path[:-1],
            "message": f'Unrecognized key: "{key}"',
        }
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = ctx.get("tag", given)
        return {
            "code": "invalid_union",
            "path": path,
            "message": f"Invalid input: {field}.type must be SELL_ALL or SELL_PARTIAL, was {tag}",
        }
    message = str(error.get("msg", "Invalid input"))
    return {"code": "custom", "path": path, "message": f"{field or 'value'}: {message}"}


def _shown(value: Any) -> str:
    """A received value as quoted in a message: long ones cut, never the whole input."""
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _envelope(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(code, message, details, trace_id_var.get())
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the three handlers (plus one for Starlette's own 404/405)."""

    async def on_vincent_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, VincentError)
        headers = None
        if isinstance(error, RateLimited) and error.retry_after_s is not None:
            headers = {"Retry-After": str(max(1, round(error.retry_after_s)))}
        if isinstance(error, RequestLimitExceeded):
            headers = {"Retry-After": retry_after_header(error.retry_after_s)}
        return _envelope(status_for(error), error.code, error.message, error.details, headers)

    async def on_validation_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        issues = [zod_issue(e) for e in error.errors()]
        return _envelope(400, ValidationFailed.code, ValidationFailed.default_message, issues)

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        refused = charge_unclaimed(request)
        if refused is not None:
            return await on_vincent_error(request, refused)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, "HTTP_ERROR")
        return _envelope(error.status_code, code, str(error.detail))

    async def on_unexpected(_request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"error_type": type(error).__name__})
        return _envelope(500, "INTERNAL_ERROR", "Internal server error")

    app.add_exception_handler(VincentError, on_vincent_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
