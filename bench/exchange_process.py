"""The local exchange in its own process, driven through its HTTP control API (/_sim).

The benchmark measures the worker's event loop alone: the exchange publishes from another
process, and its one clock (``perf_counter_ns`` there) times both the price sends and the
order receipts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import free_port

READY_TIMEOUT_S = 30.0
# The exchange's event loop, when set (``python -m vincent.sim --loop``: uvloop or asyncio;
# round 12's A/B of the two). Unset: the exchange's default.
LOOP_ENV = "BENCH_SIM_LOOP"


@dataclass(frozen=True, slots=True)
class ExchangeProcess:
    """URLs of the running exchange, its pid and a control client."""

    base_url: str
    pid: int
    control: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws/market"

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.control.request(method, path, json=body)
        if response.status_code != 200:
            raise RuntimeError(
                f"{method} /_sim{path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    async def timing(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", "/timing")
        return result


@contextlib.asynccontextmanager
async def exchange_process(
    host: str = "127.0.0.1", wrapper: tuple[str, ...] = ()
) -> AsyncIterator[ExchangeProcess]:
    """``python -m vincent.sim`` on a free port; ready once it prints its ready line.

    ``wrapper``: a command the exchange runs under (``valgrind --tool=callgrind ...``)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        "-m",
        "vincent.sim",
        "--host",
        host,
        "--port",
        str(port),
        *(("--loop", os.environ[LOOP_ENV]) if os.environ.get(LOOP_ENV) else ()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S * (10 if wrapper else 1)):
            while True:
                line = await process.stdout.readline()
                if not line:
                    error = b"" if process.stderr is None else await process.stderr.read()
                    raise RuntimeError(f"exchange exited early: {error.decode()[-2000:]}")
                if line.startswith(b"local exchange ready"):
                    break
        base_url = f"http://{host}:{port}"
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(
            base_url=f"{base_url}/_sim", timeout=60, limits=limits
        ) as control:
            yield ExchangeProcess(base_url, process.pid, control)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def run_all(calls: Iterable[Callable[[], Awaitable[Any]]], concurrency: int = 16) -> None:
    """Run control calls with bounded concurrency (setup of thousands of markets)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await call()

    async with asyncio.TaskGroup() as group:
        for call in calls:
            group.create_task(one(call))
