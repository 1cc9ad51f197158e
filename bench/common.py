"""Shared benchmark plumbing: percentiles, a throwaway database, a server subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from vincent.db.migrate import upgrade
from vincent.db.session import create_engine

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _asyncpg(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


async def _pg(url: str, statement: str) -> None:
    engine = create_engine(_asyncpg(url))
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def scratch_database(kind: str, pg_url: str = PG_DEFAULT) -> Iterator[str]:
    """A migrated, empty database for one benchmark run, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="vincent-bench-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    name = f"vincent_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg(pg_url, f'CREATE DATABASE "{name}"'))
    url = make_url(_asyncpg(pg_url)).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_pg(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def server_process(
    env: dict[str, str], port: int, *serve_args: str, wrapper: tuple[str, ...] = ()
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``vincent serve [serve_args]`` in a subprocess, ready when /health answers; stopped
    on exit. ``wrapper``: a command it runs under (``valgrind --tool=callgrind ...``; the
    process is then the wrapper's, and it gets 10 times as long to start).

    Its stderr goes to a file, not a pipe: a pipe nobody reads fills up and blocks the
    server's logging (and so the server) in the middle of a run.
    """
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    full_env.setdefault("LOG_LEVEL", "WARNING")
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *wrapper,
            sys.executable,
            "-m",
            "vincent.cli",
            "serve",
            *serve_args,
            env=full_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        try:
            await wait_until_ready(process, port, log, timeout_s=300 if wrapper else 30)
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def wait_until_ready(
    process: asyncio.subprocess.Process, port: int, log: IO[bytes], timeout_s: float = 30
) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            if process.returncode is not None:
                log.seek(0)
                error = log.read().decode(errors="replace")
                raise RuntimeError(f"server exited early: {error[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become ready in {timeout_s:.0f} s")
            await asyncio.sleep(0.05)
