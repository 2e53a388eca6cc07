"""0003: every named vector gets the configured layout: int8 scalar quantization in RAM,
original vectors on disk and the HNSW parameters (``LOOKALIKE_QDRANT_QUANTIZATION``,
``LOOKALIKE_QDRANT_ON_DISK``, ``LOOKALIKE_HNSW_M``, ``LOOKALIKE_HNSW_EF_CONSTRUCT``).

Collections made before this version have none of it. ``Store.reconfigure`` changes only
what differs, in place: a server gets one ``update_collection`` with per-vector diffs and
rebuilds the quantized copies and graphs in the background; an Edge shard is reopened with
the new config, which its optimizers converge to. It never recreates a collection, and it
never touches the shard count, which Qdrant fixes at creation. What Edge cannot change in
place is left as it is, logged, and recorded under the meta key
``store.base.CONFIG_UNAPPLIED_META`` for ``lookalike status``. Running it again changes
nothing. A store created since this version has the layout already.
"""

from __future__ import annotations

from store.base import Store


def apply(store: Store, vectors: dict[str, int]) -> None:
    store.reconfigure()
