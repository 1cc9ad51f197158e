"""Real ``vincent worker`` processes (failover tests and bench), and their JSON logs.

Each worker is the CLI command itself, configured through the environment as in
production, logging JSON to stderr; ``WorkerProcess.wait_for_log`` waits for a log event (a
condition another process reports), never a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vincent.config import Settings

Entry = dict[str, Any]


def worker_env(settings: Settings, keybox_key: str) -> dict[str, str]:
    """The environment that makes ``vincent worker`` read ``settings`` (JSON logs)."""
    values = settings.model_dump(
        mode="json", exclude={"vincent_encryption_key", "vincent_admin_token"}
    )
    names = {name.upper() for name in values}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    for name, value in values.items():
        if value is not None:
            env[name.upper()] = value if isinstance(value, str) else json.dumps(value)
    env["VINCENT_ENCRYPTION_KEY"] = keybox_key
    env["LOG_FORMAT"] = "json"
    env["TRADE_MANAGER_ENABLED"] = "true"
    return env


class WorkerProcess:
    """One ``vincent worker`` child: its log entries as they arrive."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.logs: list[Entry] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"logs-{name}")

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> None:
        # Chunks, not ``readline``: a line past the stream's limit must not end the reading
        # (the worker would then block on a full pipe).
        stream = self.process.stderr
        assert stream is not None
        pending = b""
        while chunk := await stream.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._add(line.decode(errors="replace").strip())
        if pending:
            self._add(pending.decode(errors="replace").strip())
        self.logs.append({"event": "exited"})
        self._changed.set()

    def _add(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            entry = {"event": "raw", "line": line}
        self.logs.append(entry)
        self._changed.set()

    def find(self, event: str, **fields: Any) -> Entry | None:
        for entry in self.logs:
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry
        return None

    def count(self, event: str) -> int:
        return sum(1 for entry in self.logs if entry.get("event") == event)

    async def wait_for_count(self, event: str, count: int) -> None:
        """Wait until ``event`` was logged ``count`` times; bound it with a timeout."""
        while self.count(event) < count:
            self._changed.clear()
            if self.find("exited") is not None:
                raise AssertionError(f"{self.name} exited before {count} x {event}")
            await self._changed.wait()

    async def wait_for_log(self, event: str, **fields: Any) -> Entry:
        """The first entry named ``event`` with ``fields``; bound it with a timeout."""
        while True:
            self._changed.clear()
            found = self.find(event, **fields)
            if found is not None:
                return found
            if self.find("exited") is not None:
                raise AssertionError(f"{self.name} exited without logging {event}: {self.logs}")
            await self._changed.wait()

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    async def wait(self) -> int:
        code = await self.process.wait()
        await self._reader
        return code

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class WorkerProcesses:
    """Starts workers; every one is killed and reaped when the context ends."""

    def __init__(self, cwd: Path) -> None:
        self._cwd = cwd
        self._started: list[WorkerProcess] = []

    async def start(
        self, name: str, settings: Settings, keybox_key: str, *args: str
    ) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vincent.cli",
            "worker",
            *args,
            cwd=self._cwd,
            env=worker_env(settings, keybox_key),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = WorkerProcess(name, process)
        self._started.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self._started:
            await worker.close()

    def print_logs(self, last: int = 40) -> None:
        for worker in self._started:
            print(f"---- {worker.name} (pid {worker.pid}), last {last} log entries")
            for entry in worker.logs[-last:]:
                print(json.dumps(entry))


@asynccontextmanager
async def worker_processes(cwd: Path) -> AsyncIterator[WorkerProcesses]:
    processes = WorkerProcesses(cwd)
    try:
        yield processes
    except BaseException:
        processes.print_logs()  # what each worker said, for the failure report
        raise
    finally:
        await processes.close()
