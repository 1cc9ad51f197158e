"""Injected REST faults: 5xx, 429 with Retry-After, hang, and withheld or lost answers.

``FaultPlan`` holds the armed faults per request path; ``FaultMiddleware`` is the
outermost ASGI layer and applies them (and tallies every request and the connection it
came on, ``Traffic``, so tests can say what a client sent and over how many connections).
A withheld answer runs the request for real (the order executes and is recorded) and
then never answers, or closes the connection.
A lost answer (``error_after``, ``garble``) also runs the request for real, then answers
a gateway error (5xx, 408, 425) or an unreadable 200 instead of the exchange's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["error", "rate_limit", "hang", "withhold", "error_after", "garble"]
# What a gateway in front of a matcher may answer after the matcher took the request.
LOST_ANSWER_STATUSES = frozenset({*range(500, 600), 408, 425})
WithholdMode = Literal["hang", "close"]


@dataclass(slots=True)
class Fault:
    """One armed fault for the next ``remaining`` calls of a path (any method if None)."""

    kind: FaultKind
    remaining: int
    method: str | None = None
    status: int = 503
    retry_after_s: int = 1
    withhold_mode: WithholdMode = "close"

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "method": self.method,
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "withhold_mode": self.withhold_mode,
        }


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One HTTP request as the exchange received it; ``connection`` is the client's
    address, one per TCP connection."""

    method: str
    path: str
    connection: tuple[str, int] | None


@dataclass(slots=True)
class Traffic:
    """Every HTTP request the exchange received, in order."""

    requests: list[SeenRequest] = field(default_factory=list)

    def saw(self, scope: Scope) -> None:
        client = scope.get("client")
        connection = None if client is None else (str(client[0]), int(client[1]))
        self.requests.append(SeenRequest(scope["method"], scope["path"], connection))


class FaultPlan:
    """Armed faults by exact request path (including its mount prefix, e.g. /data-api/...)."""

    def __init__(self) -> None:
        self._faults: dict[str, list[Fault]] = {}
        self._released = asyncio.Event()
        self.hits = 0
        self.traffic = Traffic()

    def arm(self, path: str, fault: Fault) -> None:
        if fault.kind == "error" and not 500 <= fault.status <= 599:
            raise ValueError(f"status must be 5xx for an error fault, was {fault.status}")
        if fault.kind == "error_after" and fault.status not in LOST_ANSWER_STATUSES:
            raise ValueError(f"status must be 5xx, 408 or 425 for error_after, was {fault.status}")
        self._faults.setdefault(path, []).append(fault)

    def take(self, path: str, method: str) -> Fault | None:
        for fault in self._faults.get(path, ()):
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                self.hits += 1
                return fault
        return None

    def clear(self) -> None:
        """Disarm everything and let hanging requests go (their clients see a disconnect)."""
        self._faults.clear()
        self._released.set()
        self._released = asyncio.Event()

    def armed(self) -> dict[str, list[dict[str, Any]]]:
        return {p: [f.summary() for f in fs if f.remaining > 0] for p, fs in self._faults.items()}

    async def wait_for_release(self, receive: Receive) -> None:
        """Block until the client disconnects or the plan is cleared."""
        released = asyncio.ensure_future(self._released.wait())
        disconnect = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({released, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (released, disconnect):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class FaultMiddleware:
    """Outermost ASGI layer: applies the next armed fault of the request's path."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = None
        if scope["type"] == "http":
            self.plan.traffic.saw(scope)
            fault = self.plan.take(scope["path"], scope["method"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "error":
            await _respond(send, fault.status, {"error": "Internal Server Error"}, [])
        elif fault.kind == "rate_limit":
            headers = [(b"retry-after", str(fault.retry_after_s).encode())]
            await _respond(send, 429, {"error": "Too Many Requests"}, headers)
        elif fault.kind == "hang":
            await self.plan.wait_for_release(receive)
            _close_connection(send)
        elif fault.kind in ("error_after", "garble"):
            await self._lose_answer(fault, scope, receive, send)
        else:
            await self._withhold(fault, scope, receive, send)

    async def _lose_answer(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request for real, then answer as a failing gateway would."""

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        if fault.kind == "garble":
            await _respond_raw(send, 200, b"<html>upstream answer lost</html>", b"text/html")
        else:
            await _respond(send, fault.status, {"error": "Bad Gateway"}, [])

    async def _withhold(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        if fault.withhold_mode == "hang":
            await self.plan.wait_for_release(receive)
        _close_connection(send)


def _close_connection(send: Send) -> None:
    """Close the TCP connection without an answer (uvicorn's ``send`` knows its transport)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()


async def _respond(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    await _respond_raw(send, status, json.dumps(body).encode(), b"application/json", headers)


async def _respond_raw(
    send: Send,
    status: int,
    raw: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(raw)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
