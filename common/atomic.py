"""Atomic file writes: a reader, or a process restarted after a crash, sees the old file
or the new one, never half of either.

The data goes to a temporary file in the target's folder (a rename is atomic only within
one filesystem), is flushed and fsynced, then renamed over the target; the folder is
fsynced too, because the rename itself is durable only once the directory entry is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

Writer = Callable[[IO[bytes]], object]


def atomic_write(
    path: Path,
    data: bytes | Writer,
    *,
    mode: int | None = None,
    prefix: str | None = None,
    durable: bool = True,
) -> Path:
    """Replace ``path`` with ``data`` (bytes, or a function that writes to the open file).

    ``mode``: permission bits set before any byte is written (0o600 for secrets), so the
    file is never readable by others, not even for a moment. ``prefix``: the temporary
    file's name prefix (default ``.<name>.``), for callers that sweep leftovers of a crash.
    ``durable=False`` skips the fsyncs, for caches that can be rebuilt (thumbnails).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes | bytearray | memoryview):
                fh.write(data)
            else:
                data(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        sync_dir(path.parent)
    return path


def sync_dir(folder: Path) -> None:
    """fsync a directory, so the renames and creations in it survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
