"""What every route reaches through ``request.app.state.sim``: exchange, keys, timing, faults.

Also the small request helpers the route modules share (L2 check, query parameters).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from vincent.sim import placing
from vincent.sim.auth import ApiCredentials, ApiKeyStore
from vincent.sim.errors import SimError
from vincent.sim.exchange import Exchange
from vincent.sim.faults import FaultPlan
from vincent.sim.timing import TimingRecorder


@dataclass(slots=True)
class SimState:
    exchange: Exchange
    keys: ApiKeyStore
    timing: TimingRecorder
    faults: FaultPlan


def sim_state(request: Request) -> SimState:
    """The exchange's state, with time-based changes (matching delays, settlement) applied."""
    state: SimState = request.app.state.sim
    placing.advance(state.exchange, time.monotonic())
    return state


async def require_l2(request: Request) -> ApiCredentials:
    """Verify the L2 headers over ``timestamp + METHOD + path + body``."""
    body = (await request.body()).decode()
    return sim_state(request).keys.l2(
        request.headers, request.method, request.url.path, body, time.time()
    )


def query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise SimError(400, f"{name} is required")
    return value
