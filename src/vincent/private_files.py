"""Where Vincent keeps tenant data and keys on disk: directories 0700, files 0600.

``var/`` holds the encryption key, the SQLite database and the worker status; none of it
is anyone else's business on a shared machine. No other module picks these modes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by this user only.

    A directory that already exists keeps its mode: it may be shared on purpose (``/tmp``,
    a mounted volume); only the ones created here are private.
    """
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
        # mkdir's mode passes through the umask; chmod makes it exact.
        os.chmod(directory, DIR_MODE)


def make_private_file(path: Path) -> None:
    """Create ``path`` empty (if missing) and make it readable by this user only."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
    os.close(fd)
    with contextlib.suppress(PermissionError):  # someone else's file: leave it be
        os.chmod(path, FILE_MODE)
