"""EdgeStore: Qdrant Edge embedded in this process, the default backend.

Layout under ``<data_dir>/qdrant-edge/``: ``lookalike.lock`` (who holds the directory),
``meta.json`` (meta records) and ``shard/`` (the EdgeShard's own files).

Durability: Edge logs every update (write-ahead) before applying it, so a write that has
returned survives ``kill -9`` without a flush. Flushing only shortens the replay on load
(30k unflushed points: 0.7 s, 0.03 s once flushed) and costs ms, so writes flush at most
every ``FLUSH_INTERVAL_S``.

Concurrency: the bindings release the GIL and tolerate concurrent calls, so reads run
unlocked. Writes take one lock: revisions commit in the order drawn (a reader that saw rev N
never later finds a smaller new one), and ``update_vectors`` is a read-modify-write.

Vector layout (int8, HNSW, originals on disk) comes from ``StoreConfig`` via
``store.edge_params``; ``reconfigure`` applies a changed one by reopening the shard with it.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from store import fused
from store.base import (
    CONFIG_UNAPPLIED_META,
    Filter,
    Hit,
    Record,
    RevClock,
    Store,
    StoreError,
    VectorQuery,
    _with_ids,
)
from store.config import StoreConfig
from store.edge_dir import DirLock, read_json, write_json_atomic
from store.edge_params import (
    declare_ops,
    edge_errors,
    edge_filter,
    merged_points,
    newest_rev,
    query_request,
    reopened,
    selector,
    shard_config,
    stored_dims,
    to_record,
    unapplied_detail,
    vector_drift,
    vector_selector,
    vectors_out,
)
from store.schema import INDEXED_FIELDS, check_records, check_vector, rev_of, vectors_to_add

FLUSH_INTERVAL_S = 5.0
log = logging.getLogger(__name__)
_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer}


class EdgeStore(Store):
    backend = "edge"

    def __init__(
        self, config: StoreConfig, *, root: Path | None = None, clock: RevClock | None = None
    ) -> None:
        """``root`` (default ``<data_dir>/qdrant-edge``) and a ``clock`` shared with other
        shards are for ``ShardedStore``, which keeps several of these under one data dir."""
        self._config = config
        self._root = root or Path(config.data_dir) / "qdrant-edge"
        self._root.mkdir(parents=True, exist_ok=True)
        self._shard_path = self._root / "shard"
        self._dir_lock = DirLock(self._root / "lookalike.lock", Path(config.data_dir))
        self._write_lock = threading.Lock()
        self._clock = clock or RevClock()
        self._closed = False
        self._shard: qe.EdgeShard | None = None
        self._dims: dict[str, int] = {}
        self._last_flush = time.monotonic()
        try:
            self._meta: dict[str, Any] = read_json(self._root / "meta.json")
            if (self._shard_path / "edge_config.json").exists():
                with edge_errors():
                    self._shard = qe.EdgeShard.load(str(self._shard_path))
                self._dims = self._stored_dims()
                self._clock.observe(self._max_rev())
        except BaseException:
            if self._shard is not None:
                self._shard.close()
            self._dir_lock.release()
            raise

    # --- schema -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self._shard is not None

    def create(self, vectors: dict[str, int]) -> None:
        with self._write_lock:
            self._check_open()
            if self._shard is None:
                with edge_errors():
                    self._shard = qe.EdgeShard.create(
                        str(self._shard_path), shard_config(vectors, self._config)
                    )
            else:
                self._declare(declare_ops(vectors_to_add(self._stored_dims(), vectors)))
            shard = self._require()
            with edge_errors():
                indexed = set(shard.info().payload_schema)
            for field, kind in INDEXED_FIELDS.items():
                if field not in indexed:
                    self._update(qe.UpdateOperation.create_field_index(field, _SCHEMA[kind]))
            self._flush_now()
            self._dims = self._stored_dims()

    def vector_dims(self) -> dict[str, int]:
        return fused.models_of(self._dims)

    def fused_index(self) -> tuple[str, list[tuple[str, int]]] | None:
        return fused.current(self._dims)

    def create_fused(self) -> str:
        with self._write_lock:
            self._require()
            dims = self._stored_dims()
            name = fused.fused_name(dims)
            if fused.current(dims) is None:
                stale = [n for n in dims if fused.is_fused(n)]  # made for other model vectors
                size = sum(fused.models_of(dims).values())
                self._declare(declare_ops({name: size}, dot=True, drop=stale))
            return name

    def _declare(self, operations: list[qe.UpdateOperation]) -> None:
        """Add (or drop) named vectors, then give them the configured layout (under the
        write lock)."""
        for operation in operations:
            self._update(operation)
        if operations:
            self._reopen_with_config()
            self._flush_now()
            self._dims = self._stored_dims()

    # --- writes -----------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> int:
        self._require()
        check_records(records, self.vector_dims())

        def op(rev: int) -> qe.UpdateOperation | None:
            points = [
                qe.Point(r.id, vectors_out(r.vectors), {**r.payload, "rev": rev})
                for r in fused.with_fused(records, self.fused_index())
            ]
            return qe.UpdateOperation.upsert_points(points) if points else None

        return self._write(op)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> int:
        # By filter rather than by id list: ids that no longer exist are skipped instead of
        # failing the whole call (Edge rejects an id list naming a missing point).
        def op(rev: int) -> qe.UpdateOperation | None:
            if not ids:
                return None
            where = qe.Filter(must=[qe.HasIdCondition({str(i) for i in ids})])
            return qe.UpdateOperation.set_payload_by_filter(where, {**payload, "rev": rev})

        return self._write(op)

    def update_vectors(self, records: Sequence[Record]) -> int:
        self._require()
        check_records(records, self.vector_dims())
        index = self.fused_index()

        # One upsert of the merged points rather than update_vectors + set_payload: a single
        # WAL record, so a crash can never leave new vectors behind an old rev (the mirror
        # would not see them). The write lock makes the read-modify-write safe.
        def op(rev: int) -> qe.UpdateOperation | None:
            wanted: dict[str, dict[str, np.ndarray]] = {}
            for r in records:
                wanted.setdefault(str(r.id), {}).update(r.vectors)
            if not wanted:
                return None
            with edge_errors():
                current = self._require().retrieve(list(wanted), True, True)
            points = merged_points(current, wanted, index, rev)
            if not points:
                return None
            return qe.UpdateOperation.upsert_points(points, update_mode=qe.UpdateMode.UpdateOnly)

        return self._write(op)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with self._write_lock:
                self._update(qe.UpdateOperation.delete_points([str(i) for i in ids]))
                self._maybe_flush()

    # --- reads ------------------------------------------------------------------------
    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        unique = list(dict.fromkeys(str(i) for i in ids))
        if not unique:
            return []
        shard = self._require()
        with edge_errors():
            found = shard.retrieve([*unique], True, vector_selector(with_vectors, self._dims))
        by_id = {str(r.id): to_record(r) for r in found}
        return [by_id[i] for i in unique if i in by_id]

    def scroll(
        self,
        flt: Filter | None = None,
        *,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool | Sequence[str] = False,
        batch: int = 512,
    ) -> Iterator[Record]:
        where = edge_filter(flt)
        offset: qe.PointId | None = None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=batch,
                filter=where,
                with_payload=selector(with_payload),
                with_vector=vector_selector(with_vectors, self._dims),
            )
            shard = self._require()
            with edge_errors():
                page, offset = shard.scroll(request)
            yield from (to_record(r) for r in page)
            if offset is None:
                return

    def count(self, flt: Filter | None = None) -> int:
        shard = self._require()
        with edge_errors():
            return shard.count(qe.CountRequest(exact=True, filter=edge_filter(flt)))

    def search(
        self,
        vector_name: str,
        query: np.ndarray,
        k: int,
        flt: Filter | None = None,
        *,
        exact: bool = True,
    ) -> list[Hit]:
        shard = self._require()
        check_vector(vector_name, query, self._dims, what="the query")
        if k <= 0:
            return []
        request = query_request(VectorQuery(vector_name, query, k, exact), flt, self._config)
        with edge_errors():
            found = shard.query(request)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def search_batch(
        self, queries: Sequence[VectorQuery], flt: Filter | None = None
    ) -> list[list[Hit]]:
        shard = self._require()
        requests: list[qe.QueryRequest] = []
        asked: list[int] = []  # positions of the queries that can match anything
        for i, q in enumerate(queries):
            check_vector(q.vector_name, q.vector, self._dims, what="the query")
            if q.k <= 0 or (q.ids is not None and not q.ids):
                continue
            narrowed = flt if q.ids is None else _with_ids(flt, q.ids)
            requests.append(query_request(q, narrowed, self._config, with_payload=False))
            asked.append(i)
        out: list[list[Hit]] = [[] for _ in queries]
        if requests:
            with edge_errors():
                found = shard.query_batch(qe.QueryBatchRequest(requests))
            for i, points in zip(asked, found, strict=True):
                out[i] = [Hit(str(p.id), float(p.score), {}) for p in points]
        return out

    # --- vector layout ------------------------------------------------------------------
    def reconfigure(self) -> dict[str, list[str]]:
        with self._write_lock:
            drift = vector_drift(read_json(self._shard_path / "edge_config.json"), self._config)
            if drift and self._shard is not None:
                self._reopen_with_config()
                left = vector_drift(read_json(self._shard_path / "edge_config.json"), self._config)
            else:
                left = drift
        if left:
            detail = unapplied_detail(left)
            log.warning("%s", detail)
            self.set_meta(CONFIG_UNAPPLIED_META, detail)
        elif self._meta.get(CONFIG_UNAPPLIED_META) is not None:
            self.set_meta(CONFIG_UNAPPLIED_META, None)
        return {n: d for n, d in drift.items() if left.get(n) != d}

    def optimize(self) -> bool:
        with self._write_lock:
            shard = self._require()
            with edge_errors():
                changed = shard.optimize()
            self._flush_now()
            return bool(changed)

    # --- meta ---------------------------------------------------------------------------
    # Edge keeps points without vectors, but counts and scrolls them like images, so meta
    # in the shard would need a must_not on every read. The directory lock makes this
    # process the only writer, so a small JSON file beside the shard is enough.
    def get_meta(self, key: str) -> Any | None:
        return copy.deepcopy(self._meta.get(key))

    def set_meta(self, key: str, value: Any) -> None:
        with self._write_lock:
            self._check_open()
            updated = {**self._meta, key: value}
            write_json_atomic(self._root / "meta.json", updated)
            self._meta = updated

    # --- lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        with self._write_lock:
            if self._shard is not None:
                self._flush_now()

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            shard, self._shard = self._shard, None
            try:
                if shard is not None:
                    with edge_errors():
                        shard.flush()
                        shard.close()
            finally:
                self._dir_lock.release()

    # --- internals ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _require(self) -> qe.EdgeShard:
        self._check_open()
        shard = self._shard
        if shard is None:
            raise StoreError("the image collection does not exist yet; apply the migrations")
        return shard

    def _update(self, operation: qe.UpdateOperation) -> None:
        shard = self._require()
        with edge_errors():
            shard.update(operation)

    def _write(self, build: Callable[[int], qe.UpdateOperation | None]) -> int:
        with self._write_lock:
            self._require()
            rev = self._clock.next()
            operation = build(rev)
            if operation is not None:
                self._update(operation)
                self._maybe_flush()
            return rev

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self._flush_now()

    def _flush_now(self) -> None:
        with edge_errors():
            self._require().flush()
        self._last_flush = time.monotonic()

    def _reopen_with_config(self) -> None:
        """Reopen the shard with the configured layout (under the write lock). Edge stores
        the new config and its optimizers converge the segments to it. Readers are not
        locked out: this runs from migrations and ``create``, before serving starts."""
        config = shard_config(self._stored_dims(), self._config)
        shard, self._shard = self._require(), None
        self._shard = reopened(shard, self._shard_path, config)
        self._last_flush = time.monotonic()

    def _stored_dims(self) -> dict[str, int]:
        return stored_dims(self._shard_path)

    def _max_rev(self) -> int:
        newest = newest_rev(self._require())
        if newest is None:  # order_by needs the range index on rev; without it, a scan
            return max((rev_of(r.payload) for r in self.scroll(with_payload=["rev"])), default=0)
        return newest
