"""The files EdgeStore keeps beside its shard: the directory lock and the meta records."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from common.atomic import atomic_write
from store.base import StoreUnavailable


class DirLock:
    """An exclusive flock on a file in the data directory, held while the store is open.

    Edge locks its WAL too, but fails with an opaque WouldBlock; this lock comes first so
    the user learns which process holds the directory and what to do instead.
    """

    def __init__(self, path: Path, data_dir: Path, *, probe: bool = False) -> None:
        """``probe``: only find out whether the lock is free; the owner's pid stays."""
        # "a+" so a refused opener never truncates the owner's pid before reading it.
        self._file: IO[str] | None = open(path, "a+")  # noqa: SIM115 - held open on purpose
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            owner = self._file.read().strip() or "unknown"
            self.release()
            if owner == str(os.getpid()):
                raise StoreUnavailable(
                    f"the data directory {data_dir} is already open in this process "
                    f"(pid {owner}); close that store first"
                ) from None
            raise StoreUnavailable(
                f"the data directory {data_dir} is in use by another Lookalike process "
                f"(pid {owner}); stop it or use a Qdrant server via LOOKALIKE_QDRANT_URL"
            ) from None
        if probe:
            return
        self._file.truncate(0)
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON: a crash leaves the old file or the new one,
    and the new one is on disk (data and directory entry) when this returns."""
    atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))


def check_free(data_dir: Path) -> None:
    """Raise ``StoreUnavailable`` (naming the holder) when another process holds the
    embedded store of ``data_dir``; nothing is opened or created. For a server about to
    start: refusing at once beats a server that listens but can only answer 503."""
    locks = [data_dir / "qdrant-edge" / "lookalike.lock"]
    locks += sorted(data_dir.glob("qdrant-edge-shards/shard-*/lookalike.lock"))
    for path in locks:
        if path.is_file():
            DirLock(path, data_dir, probe=True).release()
