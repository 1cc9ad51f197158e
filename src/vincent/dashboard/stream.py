"""``GET /dashboard/stream``: the page's server-sent events, filtered to what the viewer may see.

A stream lives at most ``STREAM_LIFETIME_S`` and then ends; the browser's ``EventSource``
reconnects after ``retry`` with ``Last-Event-ID`` and resumes where it was (the hub keeps a
ring of recent entries). Bounded streams keep a server stop from waiting on open pages
(uvicorn waits for every response to finish before it shuts down) and re-check the
session on every reconnect. Events: ``price``, ``rule``, ``approvals``, ``health``, and
``resync`` (reload: the page fell behind the ring).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from vincent.api.deps import SessionDep
from vincent.dashboard import read_models
from vincent.dashboard.hub import Audience, DashboardHub, Entry
from vincent.dashboard.routes import hub_of, require_viewer
from vincent.dashboard.sessions import Viewer

router = APIRouter(prefix="/dashboard", include_in_schema=False)

STREAM_LIFETIME_S = 15.0
RETRY_MS = 1000


def _visible(entry: Entry, viewer: Viewer, tokens: set[str]) -> bool:
    if viewer.is_owner:
        return True
    if entry.audience is Audience.SECRET:
        return entry.key == viewer.secret_id
    if entry.audience is Audience.TOKEN:
        return entry.key in tokens
    return False


def _frame(entry: Entry) -> str:
    return f"id: {entry.seq}\nevent: {entry.event}\ndata: {entry.data}\n\n"


async def _events(
    hub: DashboardHub, viewer: Viewer, tokens: set[str], cursor: int
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    deadline = time.monotonic() + STREAM_LIFETIME_S
    with hub.listening(owner=viewer.is_owner):
        while (remaining := deadline - time.monotonic()) > 0:
            entries, lost = await hub.broadcast.wait_after(cursor, remaining)
            if lost:
                yield f"id: {hub.broadcast.head}\nevent: resync\ndata: {{}}\n\n"
                return
            for entry in entries:
                cursor = entry.seq
                if entry.token_id is not None and entry.key == viewer.secret_id:
                    # A new rule of the viewer's: its token's prices are now theirs to see.
                    tokens.add(entry.token_id)
                if _visible(entry, viewer, tokens):
                    yield _frame(entry)
    # An id without data moves the browser's Last-Event-ID past the entries this viewer was
    # not shown, so the reconnect resumes here (and a quiet page never falls behind the ring).
    yield f"id: {cursor}\n\n"


def _cursor(head: int, last_event_id: str, after: str | None) -> int:
    """Where a stream starts: after the browser's ``Last-Event-ID`` on a reconnect, else
    after the entry the page was rendered at (``?after=``), else after the newest entry."""
    for raw in (last_event_id, after or ""):
        if raw.isdigit() and int(raw) <= head:
            return int(raw)
    return head


@router.get("/stream")
async def stream(
    request: Request, session: SessionDep, after: str | None = None
) -> StreamingResponse:
    viewer = await require_viewer(request, session)
    hub = hub_of(request)
    tokens: set[str] = set()
    if viewer.secret_id is not None:
        tokens = await read_models.token_ids_of(session, viewer.secret_id)
    await session.close()  # the stream holds no database connection
    cursor = _cursor(hub.broadcast.head, request.headers.get("last-event-id", ""), after)
    return StreamingResponse(
        _events(hub, viewer, tokens, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
