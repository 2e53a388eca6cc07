"""Reconcile: folder -> store (an index of the whole library), then store -> mirror (a full
id comparison, which finds deletions a catch-up cannot see), then the fused index (images
that lack it get it: engine.fused_index.repair), then store -> keypoints (the records copy
verification reads: missing or damaged ones rebuilt, those of deleted images dropped).
Safe to interrupt at any point and run again: every step converges from whatever state it
finds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine import fused_index
from engine.indexer import Progress
from engine.indexing import Indexing

if TYPE_CHECKING:
    from engine.verification import Verification
    from store.base import Store


class Reconcile:
    def __init__(
        self,
        indexing: Indexing,
        sync_mirror: Callable[..., int],
        store: Callable[[], Store] | None = None,
        verification: Verification | None = None,
    ) -> None:
        self._indexing = indexing
        self._sync_mirror = sync_mirror
        self._store = store
        self._verification = verification

    def run(self, *, progress: Progress | None = None) -> dict[str, Any]:
        report = self._indexing.index(progress=progress)
        changed = self._sync_mirror(full=True)
        out: dict[str, Any] = {"index": report.as_dict(), "mirror_changes": changed}
        verification, store = self._verification, self._store
        if store is not None:  # images some other process wrote without the fused index
            out["fused_index_repaired"] = fused_index.repair(store())
        if verification is not None and store is not None and verification.enabled:
            ids = {r.id for r in store().scroll(with_payload=False)}
            out["keypoints_rebuilt"] = verification.repair(sorted(ids))
            out["keypoints_dropped"] = verification.prune(ids)
        return out
