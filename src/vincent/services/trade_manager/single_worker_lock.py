"""One monitoring worker per SQLite database: an exclusive lock file next to the database.

SQLite has no advisory locks to elect a leader with, so a second worker against the same
file refuses to start instead of selling beside the first. The operating system drops the
lock when the holder exits, however it exits. Holds a file descriptor and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from vincent.errors import ConfigurationError


class WorkerAlreadyRunning(ConfigurationError):
    """Another worker holds this SQLite database."""


def lock_path_for(database_url: str) -> Path | None:
    """``<database>.worker.lock``; None for an in-memory database."""
    database = make_url(database_url).database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve().with_name(Path(database).name + ".worker.lock")


class SingleWorkerLock:
    """An exclusive, non-blocking ``flock`` held from ``acquire`` to ``release``."""

    def __init__(self, database_url: str) -> None:
        self.path = lock_path_for(database_url)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock. Raises ``WorkerAlreadyRunning`` naming the holder's pid."""
        if self.path is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkerAlreadyRunning(
                f"another vincent worker (pid {holder}) is already running against this "
                f"SQLite database (lock {self.path}); SQLite allows one worker. Stop it "
                "first, or use PostgreSQL to run standby workers"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)
