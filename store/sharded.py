"""ShardedStore: several Qdrant Edge shards in one process, behaving as one store.

It stands in for a multi-shard Qdrant collection (no server runs here) and lets one
machine spread a large embedded store over several shards (``LOOKALIKE_EDGE_SHARDS``).
Each shard is a whole ``EdgeStore`` under ``<data_dir>/qdrant-edge-shards/shard-<i>/``.

- Writes go to the shard a stable hash of the point id names (the UUID's value modulo the
  shard count), under one lock, all stamped with the one rev drawn for the write.
- Reads fan out and merge: searches keep the top k by score, then id; scrolls merge in id
  order; counts add up; retrieves are grouped by shard. Meta records live on shard 0.

The shard count is fixed when the data directory is first used: moving every point to a
new shard is a re-index, so a changed count fails at start-up instead (``check_layout``).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from store.base import (
    Filter,
    Hit,
    Record,
    RevClock,
    Store,
    StoreConfigError,
    StoreError,
    VectorQuery,
)
from store.config import StoreConfig
from store.edge import EdgeStore
from store.edge_dir import read_json, write_json_atomic
from store.schema import check_records

SHARDS_DIR = "qdrant-edge-shards"
T = TypeVar("T")


class _WriteClock(RevClock):
    """A clock the shards share: while a sharded write holds ``one_rev``, every shard it
    touches stamps the same rev, so one write is one revision wherever its points live."""

    def __init__(self) -> None:
        super().__init__()
        self._fixed: int | None = None

    @contextmanager
    def one_rev(self) -> Iterator[int]:
        self._fixed = super().next()
        try:
            yield self._fixed
        finally:
            self._fixed = None

    def next(self) -> int:
        return self._fixed if self._fixed is not None else super().next()


def shard_of(point_id: str, shards: int) -> int:
    try:
        value = uuid.UUID(str(point_id)).int
    except ValueError:  # not a point id; any fixed shard answers as EdgeStore would
        value = int.from_bytes(hashlib.blake2b(str(point_id).encode(), digest_size=8).digest())
    return value % shards


def check_layout(data_dir: Path, shards: int) -> None:
    """Refuse a shard count other than the one the data directory's store was made with."""
    root = Path(data_dir) / SHARDS_DIR
    made = sorted(p.parent.parent.name for p in root.glob("shard-*/shard/edge_config.json"))
    recorded = read_json(root / "layout.json").get("shards", len(made))
    single = (Path(data_dir) / "qdrant-edge" / "shard" / "edge_config.json").exists()
    fix = "points are never moved between shards; to change the count, re-index into a new "
    if shards == 1 and made:
        raise StoreConfigError(
            f"the data directory {data_dir} holds an embedded store split into {recorded} "
            f"Edge shards, but LOOKALIKE_EDGE_SHARDS is 1; set LOOKALIKE_EDGE_SHARDS="
            f"{recorded} ({fix}data directory)"
        )
    if shards > 1 and single:
        raise StoreConfigError(
            f"the data directory {data_dir} holds a one-shard embedded store, but "
            f"LOOKALIKE_EDGE_SHARDS is {shards}; unset it ({fix}data directory)"
        )
    if shards > 1 and made and recorded != shards:
        raise StoreConfigError(
            f"the data directory {data_dir} holds an embedded store split into {recorded} "
            f"Edge shards, but LOOKALIKE_EDGE_SHARDS is {shards}; set it back to {recorded} "
            f"({fix}data directory)"
        )


class ShardedStore(Store):
    backend = "edge"

    def __init__(self, config: StoreConfig) -> None:
        count = config.edge_shards
        check_layout(config.data_dir, count)
        root = Path(config.data_dir) / SHARDS_DIR
        self._clock = _WriteClock()
        self._write_lock = threading.Lock()
        self._shards: list[EdgeStore] = []
        try:
            for i in range(count):
                shard_root = root / f"shard-{i}"
                self._shards.append(EdgeStore(config, root=shard_root, clock=self._clock))
            if read_json(root / "layout.json").get("shards") != count:
                write_json_atomic(root / "layout.json", {"shards": count})
        except BaseException:
            self.close()
            raise

    # --- schema -----------------------------------------------------------------------
    def exists(self) -> bool:
        # All of them: a crash part-way through create() leaves it to be finished.
        return all(s.exists() for s in self._shards)

    def create(self, vectors: dict[str, int]) -> None:
        with self._write_lock:
            for shard in self._shards:
                shard.create(vectors)

    def vector_dims(self) -> dict[str, int]:
        return self._shards[0].vector_dims()

    def fused_index(self) -> tuple[str, list[tuple[str, int]]] | None:
        return self._shards[0].fused_index()

    def create_fused(self) -> str:
        with self._write_lock:
            names = {shard.create_fused() for shard in self._shards}
        (name,) = names  # every shard has the same model vectors
        return name

    # --- writes -----------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> int:
        # Checked whole before any shard writes, so a bad record refuses the whole batch.
        check_records(records, self._require_dims())
        groups = self._group(records, lambda r: r.id)
        return self._write(lambda shard, part: shard.upsert(part), groups)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> int:
        groups = self._group(ids, str)
        return self._write(lambda shard, part: shard.set_payload(part, payload), groups)

    def update_vectors(self, records: Sequence[Record]) -> int:
        check_records(records, self._require_dims())
        groups = self._group(records, lambda r: r.id)
        return self._write(lambda shard, part: shard.update_vectors(part), groups)

    def delete(self, ids: Sequence[str]) -> None:
        with self._write_lock:
            for i, part in self._group(ids, str).items():
                self._shards[i].delete(part)

    # --- reads ------------------------------------------------------------------------
    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        unique = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, Record] = {}
        for i, part in self._group(unique, str).items():
            found.update((r.id, r) for r in self._shards[i].retrieve(part, with_vectors))
        return [found[i] for i in unique if i in found]

    def scroll(
        self,
        flt: Filter | None = None,
        *,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool | Sequence[str] = False,
        batch: int = 512,
    ) -> Iterator[Record]:
        streams = [
            s.scroll(flt, with_payload=with_payload, with_vectors=with_vectors, batch=batch)
            for s in self._shards
        ]
        # The first page of every shard is read under the write lock, so it is one cut: a
        # reader following revs (the mirror) never sees a write's rev on one shard while an
        # earlier write to another shard is still missing, as a one-page scroll of one
        # shard guarantees. Later pages are no snapshot, as with one shard.
        with self._write_lock:
            heads = [list(itertools.islice(stream, batch)) for stream in streams]
        # Each shard scrolls in id order (point ids are canonical lower-case UUIDs, whose
        # text order is their numeric order), so a lazy merge keeps that order.
        merged = [itertools.chain(h, stream) for h, stream in zip(heads, streams, strict=True)]
        yield from heapq.merge(*merged, key=lambda r: r.id)

    def count(self, flt: Filter | None = None) -> int:
        return sum(s.count(flt) for s in self._shards)

    def _max_rev(self) -> int:
        return max(s._max_rev() for s in self._shards)

    def search(
        self,
        vector_name: str,
        query: np.ndarray,
        k: int,
        flt: Filter | None = None,
        *,
        exact: bool = True,
    ) -> list[Hit]:
        parts = [s.search(vector_name, query, k, flt, exact=exact) for s in self._shards]
        return _top(parts, k)

    def search_batch(
        self, queries: Sequence[VectorQuery], flt: Filter | None = None
    ) -> list[list[Hit]]:
        per_shard = [s.search_batch(queries, flt) for s in self._shards]
        return [_top([hits[q] for hits in per_shard], query.k) for q, query in enumerate(queries)]

    # --- vector layout ------------------------------------------------------------------
    def reconfigure(self) -> dict[str, list[str]]:
        changed: dict[str, list[str]] = {}
        for shard in self._shards:
            for name, what in shard.reconfigure().items():
                changed[name] = sorted({*changed.get(name, []), *what})
        return changed

    def optimize(self) -> bool:
        return any([s.optimize() for s in self._shards])  # a list: every shard optimizes

    # --- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any | None:
        return self._shards[0].get_meta(key)

    def set_meta(self, key: str, value: Any) -> None:
        self._shards[0].set_meta(key, value)

    # --- lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        for shard in self._shards:
            shard.flush()

    def close(self) -> None:
        errors = []
        for shard in self._shards:
            try:
                shard.close()
            except Exception as exc:  # close every shard, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    # --- internals ----------------------------------------------------------------------
    def _require_dims(self) -> dict[str, int]:
        if not self.exists():
            raise StoreError("the image collection does not exist yet; apply the migrations")
        return self.vector_dims()

    def _group(self, items: Sequence[T], key: Callable[[T], str]) -> dict[int, list[T]]:
        groups: dict[int, list[T]] = {}
        for item in items:
            groups.setdefault(shard_of(key(item), len(self._shards)), []).append(item)
        return groups

    def _write(self, write: Callable[[EdgeStore, list[T]], int], groups: dict[int, list[T]]) -> int:
        with self._write_lock, self._clock.one_rev() as rev:
            for i, part in sorted(groups.items()):
                write(self._shards[i], part)
            return rev


def _top(parts: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """The best k of several shards' hits: score descending, then id."""
    return heapq.nsmallest(max(k, 0), (h for hits in parts for h in hits), key=_rank)


def _rank(hit: Hit) -> tuple[float, str]:
    return (-hit.score, hit.id)
