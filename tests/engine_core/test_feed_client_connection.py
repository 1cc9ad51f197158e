"""FeedClientConnection: messages handed over from ``data_received`` keep their order.

The connection is fed the server's frames directly (no socket), as ``bench.feed_replay``
does: whole text messages go to ``direct`` unless one is already queued or ``direct``
refuses; everything else (fragments, binary, refused) takes websockets' queue, read by a
reader as the feed's is (``recv(False)``).
"""

from __future__ import annotations

import asyncio

from bench.feed_replay import SwallowingTransport
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import OP_BINARY, OP_CONT, OP_TEXT, Frame
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from vincent.services.trade_manager.feed_connection import FeedClientConnection


def _open_connection() -> FeedClientConnection:
    ws = FeedClientConnection(ClientProtocol(parse_uri("ws://feed/"), state=State.OPEN))
    ws.connection_made(SwallowingTransport())
    ws.response = Response(101, "Switching Protocols", Headers())  # the handshake, done
    return ws


def _frames(number: int, kind: str) -> list[bytes]:
    """Message ``number`` as the server's unmasked frames: whole text, two fragments or
    binary."""
    data = f'{{"n": {number}}}'.encode()
    if kind == "fragmented":
        half = len(data) // 2
        return [
            Frame(OP_TEXT, data[:half], fin=False).serialize(mask=False),
            Frame(OP_CONT, data[half:]).serialize(mask=False),
        ]
    opcode = OP_BINARY if kind == "binary" else OP_TEXT
    return [Frame(opcode, data).serialize(mask=False)]


async def test_a_whole_text_message_is_handled_as_its_bytes_arrive() -> None:
    ws = _open_connection()
    handled: list[bytes] = []
    ws.direct = lambda data: handled.append(data) is None

    ws.data_received(b"".join(_frames(1, "whole") + _frames(2, "whole")))

    # Before any turn of the loop, and nothing left for a reader.
    assert handled == [b'{"n": 1}', b'{"n": 2}']
    assert not ws.recv_messages.frames.queue


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["whole", "whole", "fragmented", "binary"]), max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=40), min_size=1),
    refusals=st.lists(st.booleans(), min_size=1),
    turns=st.lists(st.integers(min_value=0, max_value=2), min_size=1),
)
def test_messages_are_handled_in_the_order_sent_whichever_way_each_takes(
    kinds: list[str], cuts: list[int], refusals: list[bool], turns: list[int]
) -> None:
    async def scenario() -> list[int]:
        ws = _open_connection()
        seen: list[int] = []
        all_seen = asyncio.Event()
        asked = 0

        def see(data: bytes) -> None:
            seen.append(int(data.split(b" ")[1].rstrip(b"}")))
            if len(seen) == len(kinds):
                all_seen.set()

        def direct(data: bytes) -> bool:
            nonlocal asked
            refuse = refusals[asked % len(refusals)]
            asked += 1
            if refuse:
                return False  # the reader's turn (a fire on its way, the share spent)
            see(data)
            return True

        async def reader() -> None:
            while True:
                see(await ws.recv(False))

        ws.direct = direct
        task = asyncio.create_task(reader())
        stream = b"".join(frame for n, kind in enumerate(kinds) for frame in _frames(n, kind))
        start, read = 0, 0
        while start < len(stream):  # the stream in reads of random sizes
            end = start + cuts[read % len(cuts)]
            ws.data_received(stream[start:end])
            for _ in range(turns[read % len(turns)]):  # the loop may or may not turn between
                await asyncio.sleep(0)
            start, read = end, read + 1
        if kinds:
            async with asyncio.timeout(5):  # the reader drains what was queued
                await all_seen.wait()
        task.cancel()
        return seen

    assert asyncio.run(scenario()) == list(range(len(kinds)))
