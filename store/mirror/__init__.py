"""The mirror: fused vectors of every point, searched in the serving process.

Derived from the store (the source of truth) and rebuilt from it at will. What each module
owns:

- ``index``: ``Mirror``, the searchable whole: reads, writes, locking, snapshot and sync
  entry points;
- ``fusion``: fused rows from records, weighted queries, exact hit scores (``MirrorHit``);
- ``rows``: the full float32 vectors by slot, memory-mapped from a snapshot;
- ``compact``: stage one of a search, int8 codes of the fused vectors scanned by faiss;
- ``lock``: the readers-writer lock (searches share it, writes take it alone);
- ``snapshot``: the files on disk and their crash-safe replacement;
- ``sync``: keeping in step with the store (catch-up, full comparison, rebuild);
- ``payloads``: ``PayloadCache``, what hits show while the store is down.
"""

from __future__ import annotations

from store.mirror.fusion import MirrorHit
from store.mirror.index import EXACT_BELOW, RERANK, Mirror
from store.mirror.payloads import PayloadCache

__all__ = ["EXACT_BELOW", "RERANK", "Mirror", "MirrorHit", "PayloadCache"]
