"""CPU time of the PostgreSQL backends serving one database, for a benchmark's drive.

The server runs on this machine in the benchmarks, so each backend's CPU is read from the
operating system (``psutil``, i.e. ``/proc``): the backends connected to the database
(``pg_stat_activity``) when the drive starts and when it ends, each counted from its
figure at the start (0 for a backend that connected later). A backend that disconnected
during the drive is not counted (the worker's pool keeps its connections for a burst).
None when the server's processes cannot be read (another machine, another user) or for
SQLite, where the database's work is the worker process's own.
"""

from __future__ import annotations

import contextlib

import asyncpg  # type: ignore[import-untyped]
import psutil
from sqlalchemy.engine import make_url

_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"


class DatabaseCpu:
    """``await start()`` before the drive, ``await seconds()`` after it."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._dsn = (
            url.set(drivername="postgresql").render_as_string(hide_password=False)
            if url.get_backend_name() == "postgresql"
            else None
        )
        self._before: dict[int, float] = {}
        self._processes: list[psutil.Process] = []

    @property
    def measured(self) -> bool:
        """Whether there is a database server to measure (PostgreSQL)."""
        return self._dsn is not None

    async def _pids(self) -> list[int]:
        assert self._dsn is not None
        connection = await asyncpg.connect(self._dsn)
        try:
            own = connection.get_server_pid()
            return [row["pid"] for row in await connection.fetch(_BACKENDS) if row["pid"] != own]
        finally:
            await connection.close()

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return float(times.user + times.system)

    async def start(self) -> None:
        if self._dsn is None:
            return
        for pid in await self._pids():
            cpu = self._cpu(pid)
            if cpu is not None:
                self._before[pid] = cpu
                self._processes.append(psutil.Process(pid))

    def so_far_s(self) -> float:
        """The CPU of the backends seen at ``start`` since then (a cheap sample: no query)."""
        total = 0.0
        for process in self._processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system - self._before[process.pid]
        return total

    async def seconds(self) -> float | None:
        if self._dsn is None:
            return None
        total = 0.0
        for pid in await self._pids():
            cpu = self._cpu(pid)
            if cpu is None:
                return None
            total += cpu - self._before.get(pid, 0.0)
        return round(total, 3)
