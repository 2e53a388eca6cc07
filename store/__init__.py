"""The vector store: one ``Store`` interface, two Qdrant backends chosen at construction.

``open_store`` picks the backend; the backend modules are imported only then, because
qdrant-client takes about half a second to import and an Edge-only process never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.base import (
    Filter,
    Hit,
    Record,
    RevClock,
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    VectorQuery,
    point_id_for_sha256,
)
from store.config import StoreConfig

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = [
    "Filter",
    "Hit",
    "Record",
    "RevClock",
    "Store",
    "StoreConfig",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "VectorQuery",
    "open_store",
    "point_id_for_sha256",
]


def open_store(config: StoreConfig, *, client: QdrantClient | None = None) -> Store:
    """A Qdrant server store when ``config.url`` is set or a client is given, else Edge:
    one shard, or ``config.edge_shards`` of them behind a ``ShardedStore``.

    Raises ``StoreUnavailable`` when the server cannot be reached or the Edge data
    directory is held by another process, ``StoreConfigError`` when the data directory was
    made with another number of Edge shards.
    """
    if client is not None or config.url:
        from store.server import ServerStore

        return ServerStore(config, client=client)
    from store.sharded import ShardedStore, check_layout

    if config.edge_shards > 1:
        return ShardedStore(config)
    check_layout(config.data_dir, 1)  # a data directory made with several shards stays so
    from store.edge import EdgeStore

    return EdgeStore(config)
