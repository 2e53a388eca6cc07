"""The store interface: one contract, two backends (Qdrant Edge embedded, Qdrant server).

Qdrant is the source of truth. One point per distinct image content; named vectors keyed
by model identity; payload for metadata and filters. Every write stamps ``payload['rev']``
with a number that grows on every write, which the FAISS mirror uses as its watermark.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

# Point ids are UUIDv5 of the content's SHA-256 in this namespace.
POINT_NAMESPACE = uuid.UUID("6f1c2a52-4a57-4c1b-9d8e-2f0b7a1c9e3d")


def point_id_for_sha256(sha256_hex: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, sha256_hex))


@dataclass(frozen=True)
class Filter:
    """What a user can filter on. Empty fields do not constrain."""

    folders: Sequence[str] = ()  # any of these folders (payload 'folder' is a list)
    tags_any: Sequence[str] = ()
    tags_all: Sequence[str] = ()
    formats: Sequence[str] = ()  # Pillow format names, upper case: 'JPEG', 'PNG', ...
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    rev_gt: int | None = None
    ids: Sequence[str] | None = None
    paths: Sequence[str] = ()  # points listing any of these library keys (payload 'paths')
    # Points without this named vector (the store's own upkeep: engine.fused_index.repair).
    # Not a payload condition: the FAISS mirror cannot apply it.
    lacks_vector: str | None = None

    def is_empty(self) -> bool:
        return self == Filter()


@dataclass
class Record:
    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class VectorQuery:
    """One nearest-neighbour query of a batch (``Store.search_batch``)."""

    vector_name: str
    vector: np.ndarray
    k: int
    # False: the index may answer (HNSW, quantized vectors rescored): fast, approximate.
    # True: every matching point is scored with its original vector.
    exact: bool = True
    ids: Sequence[str] | None = None  # only these points (on top of the batch's filter)
    # Approximate only: candidates to keep while walking the graph (Qdrant's hnsw_ef). None:
    # the store's setting (LOOKALIKE_HNSW_EF), else DEFAULT_HNSW_EF. A set
    # LOOKALIKE_HNSW_EF wins over this.
    ef: int | None = None


# Meta key: set when the configured vector layout could not be applied in place (a
# sentence saying which setting and what to do), None once it has been.
CONFIG_UNAPPLIED_META = "vector_config_unapplied"


class StoreError(Exception):
    """Base of store failures."""


class StoreConfigError(StoreError):
    """The settings do not fit the existing store (e.g. another Edge shard count) or the
    cluster; the message names the setting to change."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (server down) or opened (locked by another process)."""


def _with_ids(flt: Filter | None, ids: Sequence[str]) -> Filter:
    """``flt`` narrowed to ``ids`` (intersected with any ids it already names)."""
    from dataclasses import replace

    base = flt or Filter()
    if base.ids is not None:
        keep = set(base.ids)
        ids = [i for i in ids if i in keep]
    return replace(base, ids=tuple(ids))


class RevClock:
    """Monotonic revision numbers: microseconds since the epoch, strictly increasing here.

    Time-based so that revisions written by different processes (CLI and server against one
    Qdrant server) still interleave sensibly; readers catch up with an overlap margin.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last

    def observe(self, rev: int) -> None:
        with self._lock:
            self._last = max(self._last, rev)


class Store(ABC):
    """One collection of image points. Thread-safe for concurrent readers and writers."""

    backend: ClassVar[str]  # 'edge' | 'server'

    # --- schema -----------------------------------------------------------------------
    @abstractmethod
    def exists(self) -> bool:
        """True once the collection (server) or shard (edge) has been created."""

    @abstractmethod
    def create(self, vectors: dict[str, int]) -> None:
        """Create the collection with these named vectors (cosine) and payload indexes on
        tags, folder, format, width, height and rev. No-op if it exists with the same vectors."""

    @abstractmethod
    def vector_dims(self) -> dict[str, int]:
        """Named vectors declared on the collection and their dimensions."""

    # --- writes (each stamps payload['rev'] and returns the rev used) -------------------
    @abstractmethod
    def upsert(self, records: Sequence[Record]) -> int:
        """Insert or replace whole points (all vectors and payload)."""

    @abstractmethod
    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> int:
        """Merge these payload keys into existing points."""

    @abstractmethod
    def update_vectors(self, records: Sequence[Record]) -> int:
        """Add or replace some named vectors of existing points, keeping the others."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None: ...

    # --- reads --------------------------------------------------------------------------
    @abstractmethod
    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        """Existing points among ``ids`` (missing ones are left out)."""

    @abstractmethod
    def scroll(
        self,
        flt: Filter | None = None,
        *,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool | Sequence[str] = False,
        batch: int = 512,
    ) -> Iterator[Record]:
        """Every matching image point, in id order, in pages of ``batch``."""

    @abstractmethod
    def count(self, flt: Filter | None = None) -> int: ...

    def max_rev(self) -> int:
        """The highest rev stamped on any point (0 when there is none): changes whenever
        the points do."""
        return self._max_rev()

    def _max_rev(self) -> int:
        raise NotImplementedError

    @abstractmethod
    def search(
        self,
        vector_name: str,
        query: np.ndarray,
        k: int,
        flt: Filter | None = None,
        *,
        exact: bool = True,
    ) -> list[Hit]:
        """Top-k points by cosine on one named vector."""

    def search_batch(
        self, queries: Sequence[VectorQuery], flt: Filter | None = None
    ) -> list[list[Hit]]:
        """Several searches under one filter, without payloads (hits carry ``{}``), in one
        round trip where the backend can. One list of hits per query, in order."""
        out = []
        for q in queries:
            narrowed = flt if q.ids is None else _with_ids(flt, q.ids)
            hits = self.search(q.vector_name, q.vector, q.k, narrowed, exact=q.exact)
            out.append([Hit(h.id, h.score, {}) for h in hits])
        return out

    # --- per-vector layout (quantization, on-disk, HNSW) ---------------------------------
    def reconfigure(self) -> dict[str, list[str]]:
        """Bring every named vector's quantization, on-disk and HNSW settings to the
        store's config in place (never recreating the collection); idempotent. Returns the
        vectors changed, each with the settings that changed. Where a backend cannot change
        a setting in place it leaves it, and records why under ``CONFIG_UNAPPLIED_META``."""
        return {}

    # --- the fused index (store.fused) -------------------------------------------------
    def fused_index(self) -> tuple[str, list[tuple[str, int]]] | None:
        """The fused vector every write keeps (its name and block layout), if the collection
        has one that matches its model vectors."""
        return None

    def create_fused(self) -> str:
        """Declare the fused vector for the current model vectors (Dot distance, the
        configured layout) if it is missing; returns its name. Existing points get it only
        from ``engine.fused_index``'s build."""
        raise StoreError(f"the {self.backend} store cannot keep a fused index")

    def optimize(self) -> bool:
        """Build the HNSW graphs and quantized vectors now, where the backend only does so
        when asked (Edge); True if anything was rebuilt. A server optimizes on its own."""
        return False

    # --- small metadata documents (migration state, model fingerprints) -----------------
    @abstractmethod
    def get_meta(self, key: str) -> Any | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: Any) -> None:
        """Meta records never appear in scroll, count or search results."""

    # --- lifecycle ----------------------------------------------------------------------
    @abstractmethod
    def flush(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
