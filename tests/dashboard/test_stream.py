"""Where a page's event stream starts and ends, against a real hub ring (no server)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from vincent.api.state import AppState
from vincent.dashboard import stream
from vincent.dashboard.hub import Audience, DashboardHub
from vincent.dashboard.sessions import Viewer, ViewerKind

ALICE = Viewer(ViewerKind.AGENT, "alice", "csrf", secret_id="secret-a")


def test_a_reconnect_resumes_after_its_last_event_id_else_after_the_rendered_page() -> None:
    assert stream._cursor(9, "7", "3") == 7  # the browser's Last-Event-ID wins
    assert stream._cursor(9, "", "3") == 3  # first connection: where the page was rendered
    assert stream._cursor(9, "", None) == 9  # neither: from now on
    assert stream._cursor(9, "12", "x") == 9  # ids the ring never had count for nothing


async def test_entries_published_while_the_page_loaded_reach_it_and_the_end_moves_the_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = DashboardHub(cast(AppState, object()))
    rendered_at = hub.broadcast.head
    # Published after the page read its data, before its browser opened the stream:
    await hub.broadcast.publish(Audience.TOKEN, "tok-a", "price", {"tokenId": "tok-a"})
    await hub.broadcast.publish(Audience.TOKEN, "tok-b", "price", {"tokenId": "tok-b"})
    monkeypatch.setattr(stream, "STREAM_LIFETIME_S", 0.2)  # a bounded stream, short here

    frames: list[Any] = [
        frame
        async for frame in stream._events(
            hub, ALICE, {"tok-a"}, stream._cursor(hub.broadcast.head, "", str(rendered_at))
        )
    ]

    assert frames[0].startswith("retry: ")
    assert frames[1] == 'id: 1\nevent: price\ndata: {"tokenId": "tok-a"}\n\n'
    # tok-b is not alice's to see; the last frame still moves her Last-Event-ID past it.
    assert frames[2:] == ["id: 2\n\n"]
