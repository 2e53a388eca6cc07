"""Configuration of the vector store, built by ``engine.settings``.

The collection-layout fields (shards, replication, quantization, on-disk, HNSW) are read
when a collection is created; migration 0003 brings an existing collection's per-vector
quantization, on-disk and HNSW settings to them, but never its shard count, which
self-hosted Qdrant fixes at creation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# An approximate search's candidates when neither the setting nor the searcher chose.
DEFAULT_HNSW_EF = 256


@dataclass(frozen=True)
class StoreConfig:
    data_dir: Path
    url: str | None = None  # set -> ServerStore (qdrant-client); unset -> EdgeStore
    api_key: str | None = field(default=None, repr=False)  # a secret: kept out of reprs
    collection: str = "lookalike"
    # Server collections: None = derived from the cluster at creation (2 x peers shards,
    # min(2, peers) replicas; 1 and 1 on a single node).
    shards: int | None = None
    replication: int | None = None
    write_consistency: int = 1
    # Per named vector, both backends: int8 scalar quantization kept in RAM ('off': none),
    # original vectors on disk (memory-mapped), HNSW graph parameters (docs/scaling.md: at 1M
    # points, searched with hnsw_ef 1024, Qdrant's own 16 / 100 graph found 0.985 of CLIP's
    # true top 10, and 32 / 256 all of it).
    quantization: Literal["int8", "off"] = "int8"
    on_disk: bool = True
    hnsw_m: int = 32
    hnsw_ef_construct: int = 256
    # Candidates an approximate search keeps while walking a graph (Qdrant's hnsw_ef; it uses
    # at least the limit). Read per search, not part of the layout. None: the searcher's
    # choice (engine.store_search grows it with the collection), else DEFAULT_HNSW_EF.
    hnsw_ef: int | None = None
    # Embedded: several Edge shards in one process (> 1: store.sharded.ShardedStore).
    edge_shards: int = 1
    # Edge segments larger than this (KiB of vectors) get an HNSW graph and quantized vectors
    # when optimized, and are searched through them; smaller ones are scanned. None keeps
    # Qdrant's default (10,000 KiB). Tests lower it to put small sets through the graph.
    indexing_threshold_kb: int | None = None

    def __post_init__(self) -> None:
        # engine.settings validates first, naming the variables; this guards direct callers.
        if self.edge_shards < 1:
            raise ValueError(f"edge_shards must be at least 1, not {self.edge_shards}")
        if self.quantization not in ("int8", "off"):
            raise ValueError(f"quantization must be 'int8' or 'off', not {self.quantization!r}")
