"""Agent-facing fixtures: the local exchange on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vincent.sim import LocalExchange


@pytest.fixture
async def exchange() -> AsyncIterator[LocalExchange]:
    async with LocalExchange.start(host="127.0.0.1", port=0) as ex:
        yield ex
