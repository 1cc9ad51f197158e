"""The Vincent response envelope and the wire format of dates."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from vincent.wire_time import iso

__all__ = ["error_body", "iso", "ok"]


def ok(data: Any, status_code: int = 200) -> JSONResponse:
    """``{"success": true, "data": ...}`` with the route's status code."""
    return JSONResponse({"success": True, "data": data}, status_code=status_code)


def error_body(
    code: str, message: str, details: Any = None, trace_id: str | None = None
) -> dict[str, Any]:
    """``{"success": false, "error": {...}}``; ``details``/``traceId`` only when set."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    body: dict[str, Any] = {"success": False, "error": error}
    if trace_id is not None:
        body["traceId"] = trace_id
    return body
