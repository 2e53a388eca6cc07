"""Reconcile: folder -> store (an index of the whole library), then store -> mirror (a full
id comparison, which finds deletions a catch-up cannot see). Safe to interrupt at any point
and run again: both steps converge from whatever state they find."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.indexer import Progress
from engine.indexing import Indexing


class Reconcile:
    def __init__(self, indexing: Indexing, sync_mirror: Callable[..., int]) -> None:
        self._indexing = indexing
        self._sync_mirror = sync_mirror

    def run(self, *, progress: Progress | None = None) -> dict[str, Any]:
        report = self._indexing.index(progress=progress)
        changed = self._sync_mirror(full=True)
        return {"index": report.as_dict(), "mirror_changes": changed}
