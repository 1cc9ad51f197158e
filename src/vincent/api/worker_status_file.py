"""The worker's status shared with API-only processes on the same host, through a file.

``vincent worker`` rewrites ``WORKER_STATUS_FILE`` every second (write to a temporary file,
then rename: a reader never sees half a file). An API process without a worker of its own
answers ``GET /rules/status`` from it; a file older than ``STALE_AFTER_S`` (the worker is
gone) reads as a stopped worker. With standby workers only the leader writes it, so the
file names the leader (``worker_id``) and a standby never overwrites it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from vincent.private_files import make_private_dir
from vincent.services.trade_manager.types import WorkerStatus

WRITE_INTERVAL_S = 1.0
STALE_AFTER_S = 5.0
_DATES = ("last_sync_time", "circuit_breaker_until")


def write_status(path: Path, status: WorkerStatus) -> None:
    data: dict[str, Any] = asdict(status)
    for name in _DATES:
        if data[name] is not None:
            data[name] = data[name].isoformat()
    data["written_at"] = time.time()
    make_private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def read_status(path: Path, now: float | None = None) -> WorkerStatus:
    """The status in ``path``; a stopped worker when missing, unreadable or stale."""
    now = time.time() if now is None else now
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        age_s = now - float(data.pop("written_at"))
    except (OSError, ValueError, KeyError, TypeError):
        return WorkerStatus()
    if not 0 <= age_s <= STALE_AFTER_S:
        return WorkerStatus()
    for name in _DATES:
        if data.get(name) is not None:
            data[name] = datetime.fromisoformat(data[name])
    if data.get("last_message_age_s") is not None:
        data["last_message_age_s"] = round(data["last_message_age_s"] + age_s, 3)
    try:
        return WorkerStatus(**data)
    except TypeError:
        return WorkerStatus()


class StatusReader:
    """``read_status`` at most once per ``max_age_s`` per process."""

    def __init__(self, path: Path, max_age_s: float = 0.5) -> None:
        self.path = path
        self._max_age_s = max_age_s
        self._read_at = float("-inf")
        self._status = WorkerStatus()

    def status(self) -> WorkerStatus:
        now = time.monotonic()
        if now - self._read_at >= self._max_age_s:
            self._status = read_status(self.path)
            self._read_at = now
        return self._status


async def publish_status(
    path: Path, status: Callable[[], WorkerStatus], stop: asyncio.Event
) -> None:
    """Write ``status()`` to ``path`` every second while it leads, until ``stop``.

    At the end the file is removed if it is still this worker's (a standby that took over
    meanwhile writes its own).
    """
    worker_id = None
    try:
        while not stop.is_set():
            current = status()
            worker_id = current.worker_id or worker_id
            if current.leader:
                write_status(path, current)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WRITE_INTERVAL_S)
    finally:
        if read_status(path).worker_id in (None, worker_id):
            remove_status(path)


def remove_status(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
