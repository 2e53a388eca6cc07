"""ServerStore: a Qdrant server through qdrant-client (``LOOKALIKE_QDRANT_URL``).

Tests pass ``QdrantClient(":memory:")``, qdrant-client's in-process stand-in for a server.
That local mode is not thread-safe and ignores payload indexes and search params (warning
each time), so with it every call is serialised and those two are skipped.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from store import fused
from store.base import (
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
from store.schema import INDEXED_FIELDS, check_records, check_vector, rev_of, vectors_to_add
from store.server_params import (
    ids_filter,
    meta_id,
    query_request,
    search_params,
    selector,
    server_errors,
    server_filter,
    shard_layout,
    to_record,
    vector_diffs,
    vector_params,
    vectors_out,
)

TIMEOUT_S = 5
_SCHEMA = {"keyword": qm.PayloadSchemaType.KEYWORD, "integer": qm.PayloadSchemaType.INTEGER}


class ServerStore(Store):
    backend = "server"

    def __init__(self, config: StoreConfig, client: QdrantClient | None = None) -> None:
        self._owns_client = client is None
        if client is None:
            if not config.url:
                raise StoreError("a Qdrant server store needs LOOKALIKE_QDRANT_URL")
            # The compatibility check would add a request and only warn on failure; the
            # probe below fails loudly instead.
            client = QdrantClient(
                url=config.url, api_key=config.api_key, timeout=TIMEOUT_S, check_compatibility=False
            )
        self._client = client
        self._config = config
        self._where = config.url or "(in-process qdrant-client)"
        self._name = config.collection
        # Meta lives in a sibling collection: the server keeps points without vectors but
        # counts and scrolls them like images, so meta in the image collection would need a
        # must_not on every read and make count() a scan.
        self._meta_name = f"{config.collection}__meta"
        options = client.init_options
        self._local = options.get("location") == ":memory:" or bool(options.get("path"))
        self._local_lock = threading.RLock()
        # Revisions must commit in the order they are drawn (see EdgeStore).
        self._write_lock = threading.Lock()
        self._clock = RevClock()
        self._dims: dict[str, int] = {}
        try:
            if self.exists():
                self._clock.observe(self._max_rev())
        except BaseException:
            self.close()
            raise

    # --- schema -----------------------------------------------------------------------
    def exists(self) -> bool:
        with self._call():
            return self._client.collection_exists(self._name)

    def create(self, vectors: dict[str, int]) -> None:
        with self._write_lock:
            if not self.exists():
                params = {n: vector_params(d, self._config) for n, d in vectors.items()}
                shards, replication = shard_layout(self._peers(), self._config)
                try:
                    with self._call():
                        self._client.create_collection(
                            self._name,
                            vectors_config=params,
                            shard_number=shards,
                            replication_factor=replication,
                            write_consistency_factor=self._config.write_consistency,
                        )
                except StoreError:
                    if not self.exists():  # another process may have won the race
                        raise
            self._declare(vectors_to_add(self.vector_dims(), vectors), qm.Distance.COSINE)
            if self._local:
                return
            with self._call():
                indexed = set(self._client.get_collection(self._name).payload_schema)
            for field, kind in INDEXED_FIELDS.items():
                if field not in indexed:
                    with self._call():
                        self._client.create_payload_index(self._name, field, _SCHEMA[kind])

    def vector_dims(self) -> dict[str, int]:
        with self._call():
            if not self._client.collection_exists(self._name):
                return {}
            declared = self._client.get_collection(self._name).config.params.vectors
        if isinstance(declared, qm.VectorParams):
            self._dims = {"": declared.size}
        else:
            self._dims = {name: p.size for name, p in (declared or {}).items()}
        return fused.models_of(self._dims)

    def fused_index(self) -> tuple[str, list[tuple[str, int]]] | None:
        self.vector_dims()  # another process may have declared it
        return fused.current(self._dims)

    def create_fused(self) -> str:
        with self._write_lock:
            dims = self.vector_dims()
            name = fused.fused_name(dims)
            if fused.current(self._dims) is None:
                for stale in [n for n in self._dims if fused.is_fused(n)]:  # other models'
                    with self._call():
                        self._client.delete_vector_name(self._name, stale)
                self._declare({name: sum(dims.values())}, qm.Distance.DOT)
                self.vector_dims()
            return name

    def _declare(self, vectors: dict[str, int], distance: qm.Distance) -> None:
        """Add named vectors with the configured layout (under the write lock)."""
        for name, dim in vectors.items():
            config = qm.DenseVectorNameConfig(
                dense=qm.DenseVectorConfig(size=dim, distance=distance)
            )
            with self._call():
                self._client.create_vector_name(self._name, name, config)
        if vectors and not self._local:
            self._reconfigure(set(vectors))

    # --- writes -----------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> int:
        known = self._known_dims({n for r in records for n in r.vectors})
        check_records(records, fused.models_of(known))
        index = fused.current(known)
        with self._write_lock:
            rev = self._clock.next()
            points = [
                qm.PointStruct(
                    id=str(r.id), vector=vectors_out(r.vectors), payload={**r.payload, "rev": rev}
                )
                for r in fused.with_fused(records, index)
            ]
            if points:
                with self._call():
                    self._client.upsert(self._name, points=points, wait=True)
            return rev

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> int:
        with self._write_lock:
            rev = self._clock.next()
            if ids:
                # By filter so that ids which no longer exist are skipped, as on Edge.
                with self._call():
                    self._client.set_payload(
                        self._name, {**payload, "rev": rev}, points=ids_filter(ids), wait=True
                    )
            return rev

    def update_vectors(self, records: Sequence[Record]) -> int:
        known = self._known_dims({n for r in records for n in r.vectors})
        check_records(records, fused.models_of(known))
        index = fused.current(known)
        with self._write_lock:
            rev = self._clock.next()
            wanted: dict[str, dict[str, np.ndarray]] = {}
            for r in records:
                wanted.setdefault(str(r.id), {}).update(r.vectors)
            blocks = [m for m, _ in index[1]] if index is not None else False
            with self._call():
                found = self._client.retrieve(
                    self._name, list(wanted), with_payload=False, with_vectors=blocks
                )
            existing = [str(p.id) for p in found]
            if not existing:
                return rev
            if index is not None:  # the fused vector follows its blocks
                for p in found:
                    stored = p.vector if isinstance(p.vector, dict) else {}
                    have = {k: np.asarray(v, np.float32) for k, v in stored.items()}
                    joined = fused.fused_of({**have, **wanted[str(p.id)]}, index[1])
                    if joined is not None:
                        wanted[str(p.id)][index[0]] = joined
            # Vectors first, then the rev, in one request: a reader between the two sees new
            # vectors under the old rev and picks them up with the rev, never the reverse.
            vectors = [
                qm.PointVectors(id=i, vector=vectors_out(wanted[i])) for i in existing if wanted[i]
            ]
            operations: list[qm.UpdateOperation] = [
                qm.SetPayloadOperation(
                    set_payload=qm.SetPayload(payload={"rev": rev}, points=[*existing])
                ),
            ]
            if vectors:
                update = qm.UpdateVectorsOperation(update_vectors=qm.UpdateVectors(points=vectors))
                operations.insert(0, update)
            with self._call():
                self._client.batch_update_points(self._name, operations, wait=True)
            return rev

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            selector = qm.PointIdsList(points=[str(i) for i in ids])
            with self._write_lock, self._call():
                self._client.delete(self._name, points_selector=selector, wait=True)

    # --- reads ------------------------------------------------------------------------
    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        unique = list(dict.fromkeys(str(i) for i in ids))
        if not unique:
            return []
        with self._call():
            found = self._client.retrieve(
                self._name,
                unique,
                with_payload=True,
                with_vectors=selector(fused.without_fused(with_vectors, self._dims)),
            )
        by_id = {str(p.id): to_record(p.id, p.payload, p.vector) for p in found}
        return [by_id[i] for i in unique if i in by_id]

    def scroll(
        self,
        flt: Filter | None = None,
        *,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool | Sequence[str] = False,
        batch: int = 512,
    ) -> Iterator[Record]:
        where = server_filter(flt)
        offset: qm.ExtendedPointId | None = None
        while True:
            with self._call():
                page, offset = self._client.scroll(
                    self._name,
                    scroll_filter=where,
                    limit=batch,
                    offset=offset,
                    with_payload=selector(with_payload),
                    with_vectors=selector(fused.without_fused(with_vectors, self._dims)),
                )
            yield from (to_record(p.id, p.payload, p.vector) for p in page)
            if offset is None:
                return

    def count(self, flt: Filter | None = None) -> int:
        with self._call():
            return self._client.count(self._name, count_filter=server_filter(flt), exact=True).count

    def search(
        self,
        vector_name: str,
        query: np.ndarray,
        k: int,
        flt: Filter | None = None,
        *,
        exact: bool = True,
    ) -> list[Hit]:
        check_vector(vector_name, query, self._known_dims({vector_name}), what="the query")
        if k <= 0:
            return []
        with self._call():
            found = self._client.query_points(
                self._name,
                query=np.asarray(query, dtype=np.float32).tolist(),
                using=vector_name,
                limit=k,
                query_filter=server_filter(flt),
                search_params=None if self._local else search_params(exact, self._config),
                with_payload=True,
            ).points
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def search_batch(
        self, queries: Sequence[VectorQuery], flt: Filter | None = None
    ) -> list[list[Hit]]:
        dims = self._known_dims({q.vector_name for q in queries})
        requests, asked = [], []
        for i, q in enumerate(queries):
            check_vector(q.vector_name, q.vector, dims, what="the query")
            if q.k > 0 and (q.ids is None or q.ids):
                narrowed = flt if q.ids is None else _with_ids(flt, q.ids)
                requests.append(query_request(q, narrowed, self._config, local=self._local))
                asked.append(i)
        out: list[list[Hit]] = [[] for _ in queries]
        if requests:
            with self._call():
                found = self._client.query_batch_points(self._name, requests)
            for i, response in zip(asked, found, strict=True):
                out[i] = [Hit(str(p.id), float(p.score), {}) for p in response.points]
        return out

    # --- vector layout ------------------------------------------------------------------
    def reconfigure(self) -> dict[str, list[str]]:
        # The in-process stand-in keeps what a collection was created with and ignores
        # update_collection, so there is nothing to compare or change.
        if self._local or not self.exists():
            return {}
        with self._write_lock:
            self.vector_dims()
            return self._reconfigure(set(self._dims))

    def _reconfigure(self, names: set[str]) -> dict[str, list[str]]:
        """One update_collection with the per-vector differences (under the write lock).
        Qdrant applies it in place: quantized copies and HNSW graphs are rebuilt by its
        optimizers in the background while searches go on."""
        with self._call():
            collection = self._client.get_collection(self._name).config
        diffs, changed = vector_diffs(collection, names, self._config)
        if diffs:
            with self._call():
                self._client.update_collection(self._name, vectors_config=diffs)
        return changed

    def _peers(self) -> int:
        if self._local:
            return 1
        with self._call():
            status = self._client.cluster_status()
        return len(status.peers) if isinstance(status, qm.ClusterStatusOneOf1) else 1

    # --- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any | None:
        with self._call():
            if not self._client.collection_exists(self._meta_name):
                return None
            found = self._client.retrieve(self._meta_name, [meta_id(key)], with_payload=True)
        return (found[0].payload or {}).get("value") if found else None

    def set_meta(self, key: str, value: Any) -> None:
        point = qm.PointStruct(id=meta_id(key), vector={}, payload={"key": key, "value": value})
        with self._write_lock, self._call():
            if not self._client.collection_exists(self._meta_name):
                self._client.create_collection(self._meta_name, vectors_config={})
            self._client.upsert(self._meta_name, points=[point], wait=True)

    # --- lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        """Nothing to do: every write waits for the server to apply it (wait=True)."""

    def close(self) -> None:
        # A client handed in belongs to the caller, who may open another store on it.
        if self._owns_client:
            self._client.close()

    # --- internals ----------------------------------------------------------------------
    @contextmanager
    def _call(self) -> Iterator[None]:
        with (
            server_errors(self._where, local=self._local),
            self._local_lock if self._local else contextlib.nullcontext(),
        ):
            yield

    def _known_dims(self, names: set[str]) -> dict[str, int]:
        # Cached, but another process may have added a model's vector since: ask again
        # before refusing a name.
        if not names <= self._dims.keys():
            self.vector_dims()
        return self._dims

    def _max_rev(self) -> int:
        newest = qm.OrderBy(key="rev", direction=qm.Direction.DESC)
        try:
            with self._call():
                page, _ = self._client.scroll(
                    self._name, limit=1, with_payload=["rev"], order_by=newest
                )
            return max((rev_of(p.payload) for p in page), default=0)
        except StoreError:
            # order_by needs the range index on rev; a collection made without it is scanned.
            return max((rev_of(r.payload) for r in self.scroll(with_payload=["rev"])), default=0)
