"""Lookalike's store types and settings in qdrant_edge's terms (used by ``EdgeStore``).

Shard configuration: per named vector, int8 scalar quantization kept in RAM, originals
memory-mapped (``Memory.Cold``) and HNSW parameters, all from ``StoreConfig``. Binary
quantization is deliberately not offered: it keeps one bit per dimension (the sign), and
the CNN and HSV vectors are non-negative, so every one of their dimensions reads 1 and
recall collapses.

Edge builds HNSW graphs and quantized vectors only when its optimizers run
(``EdgeShard.optimize``), never on a write: configuring them costs the default setup,
which serves searches from the FAISS mirror, nothing at load or upsert time
(docs/scaling.md has the figures).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from store.base import Filter, Record, StoreError, VectorQuery
from store.config import DEFAULT_HNSW_EF, StoreConfig
from store.edge_dir import read_json
from store.filters import AnyOf, HasId, LacksVector, conditions
from store.fused import fused_of, is_fused, without_fused
from store.schema import rev_of

# Qdrant's default: segments below this many KiB of vectors are scanned, not graphed.
FULL_SCAN_THRESHOLD_KB = 10_000
OVERSAMPLING = 2.0
log = logging.getLogger(__name__)


def vector_params(dim: int, config: StoreConfig, *, dot: bool = False) -> qe.EdgeVectorParams:
    """A model's vector (cosine), or with ``dot`` the fused index's (store.fused)."""
    quantization = (
        qe.ScalarQuantizationConfig(qe.ScalarType.Int8, always_ram=True)
        if config.quantization == "int8"
        else None
    )
    hnsw = qe.HnswIndexConfig(
        m=config.hnsw_m,
        ef_construct=config.hnsw_ef_construct,
        full_scan_threshold=config.indexing_threshold_kb or FULL_SCAN_THRESHOLD_KB,
    )
    # Cold: memory-mapped, not read into RAM at load. The default setup searches the FAISS
    # mirror, which holds the vectors already (100k points loaded in 1.3 s with Cached,
    # 0.3 s with Cold); quantized search rescoring reads the few originals it needs.
    memory = qe.Memory.Cold if config.on_disk else qe.Memory.Cached
    return qe.EdgeVectorParams(
        size=dim,
        distance=qe.Distance.Dot if dot else qe.Distance.Cosine,
        memory=memory,
        quantization_config=quantization,
        hnsw_config=hnsw,
    )


def shard_config(dims: dict[str, int], config: StoreConfig) -> qe.EdgeConfig:
    optimizers = (
        qe.EdgeOptimizersConfig(indexing_threshold=config.indexing_threshold_kb)
        if config.indexing_threshold_kb is not None
        else None
    )
    vectors = {name: vector_params(dim, config, dot=is_fused(name)) for name, dim in dims.items()}
    return qe.EdgeConfig(vectors=vectors, optimizers=optimizers)


def wanted_vector_json(config: StoreConfig) -> dict[str, Any]:
    """How Edge persists (``edge_config.json``) the per-vector settings ``config`` asks for."""
    quantization = (
        {"scalar": {"type": "int8", "always_ram": True}} if config.quantization == "int8" else None
    )
    return {
        "memory": "cold" if config.on_disk else "cached",
        "quantization_config": quantization,
        "hnsw": {"m": config.hnsw_m, "ef_construct": config.hnsw_ef_construct},
    }


def vector_drift(persisted: dict[str, Any], config: StoreConfig) -> dict[str, list[str]]:
    """Named vectors of a persisted ``edge_config.json`` whose settings differ from
    ``config``, with the settings that differ ('quantization', 'on_disk', 'hnsw')."""
    wanted = wanted_vector_json(config)
    drift: dict[str, list[str]] = {}
    for name, params in persisted.get("vectors", {}).items():
        hnsw = params.get("hnsw_config") or {}
        differs = []
        if params.get("quantization_config") != wanted["quantization_config"]:
            differs.append("quantization")
        if params.get("memory", "cached") != wanted["memory"]:
            differs.append("on_disk")
        if {k: hnsw.get(k) for k in ("m", "ef_construct")} != wanted["hnsw"]:
            differs.append("hnsw")
        if differs:
            drift[name] = differs
    return drift


def search_params(exact: bool, config: StoreConfig, ef: int | None = None) -> qe.SearchParams:
    walk = config.hnsw_ef or ef or DEFAULT_HNSW_EF
    if config.quantization == "off":
        return qe.SearchParams(exact=exact, hnsw_ef=None if exact else walk)
    if exact:
        # Exact means the original vectors: quantized scores would be off by ~1e-3.
        return qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
    rescored = qe.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    return qe.SearchParams(exact=False, hnsw_ef=walk, quantization=rescored)


def query_request(
    q: VectorQuery, flt: Filter | None, config: StoreConfig, *, with_payload: bool = True
) -> qe.QueryRequest:
    vector = np.asarray(q.vector, dtype=np.float32).tolist()
    return qe.QueryRequest(
        limit=q.k,
        query=qe.Query.Nearest(vector, using=q.vector_name),
        filter=edge_filter(flt),
        with_payload=with_payload,
        params=search_params(q.exact, config, q.ef),
    )


def unapplied_detail(drift: dict[str, list[str]]) -> str:
    """The sentence recorded (and logged) when a shard keeps settings it was asked to drop."""
    kept = "; ".join(f"{name!r}: {', '.join(what)}" for name, what in sorted(drift.items()))
    return (
        f"the Edge shard keeps its own vector settings ({kept}): Qdrant Edge refused to "
        "change them in place, so LOOKALIKE_QDRANT_QUANTIZATION, LOOKALIKE_QDRANT_ON_DISK "
        "and LOOKALIKE_HNSW_* apply there only after re-indexing into a new data directory"
    )


@contextmanager
def edge_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        # The bindings raise bare Exception for every engine error; anything more specific
        # (TypeError from a wrong argument) is a bug here and should surface as it is.
        if type(exc) is not Exception:
            raise
        raise StoreError(f"Qdrant Edge: {exc}") from exc


def edge_filter(flt: Filter | None) -> qe.Filter | None:
    must: list[qe.ConditionType] = []
    must_not: list[qe.ConditionType] = []
    for cond in conditions(flt):
        if isinstance(cond, HasId):
            must.append(qe.HasIdCondition(set(cond.ids)))
        elif isinstance(cond, LacksVector):
            must_not.append(qe.HasVectorCondition(cond.name))
        elif isinstance(cond, AnyOf):
            must.append(qe.FieldCondition(cond.key, match=qe.MatchAny(list(cond.values))))
        else:
            span = qe.RangeFloat(gte=cond.gte, lte=cond.lte, gt=cond.gt)
            must.append(qe.FieldCondition(cond.key, range=span))
    return qe.Filter(must=must, must_not=must_not or None) if must or must_not else None


def selector(value: bool | list[str] | tuple[str, ...] | Any) -> bool | list[str]:
    return value if isinstance(value, bool) else [str(v) for v in value]


def vectors_out(vectors: dict[str, np.ndarray]) -> dict[str, qe.NamedVector]:
    return {name: np.asarray(v, dtype=np.float32).tolist() for name, v in vectors.items()}


def as_named(vector: qe.Vector | None) -> dict[str, qe.NamedVector]:
    return dict(vector) if isinstance(vector, dict) else {}


def to_record(point: qe.Record) -> Record:
    vectors = {
        name: np.asarray(v, dtype=np.float32)
        for name, v in as_named(point.vector).items()
        if not is_fused(name)  # the store's own index, not a model's vector
    }
    return Record(id=str(point.id), payload=dict(point.payload or {}), vectors=vectors)


def fused_out(
    vectors: dict[str, qe.NamedVector], index: tuple[str, list[tuple[str, int]]] | None
) -> dict[str, qe.NamedVector]:
    """The fused vector (store.fused) of a point with these vectors, to write beside them;
    nothing without an index or without any of its models' vectors."""
    if index is None:
        return {}
    name, blocks = index
    have = {m: np.asarray(vectors[m], np.float32) for m, _ in blocks if m in vectors}
    joined = fused_of(have, blocks)
    return {} if joined is None else {name: joined.tolist()}


def stored_dims(shard_path: Path) -> dict[str, int]:
    """Named vectors and sizes of a shard. The bindings expose no config getter;
    edge_config.json is where Edge documents that it persists the shard's configuration,
    named vectors added later included."""
    config = read_json(shard_path / "edge_config.json")
    return {name: int(p["size"]) for name, p in config.get("vectors", {}).items()}


def newest_rev(shard: qe.EdgeShard) -> int | None:
    """The highest rev stamped on any point (0: none), by the range index on rev; None
    when the shard has no such index."""
    newest = qe.ScrollRequest(
        limit=1, with_payload=["rev"], order_by=qe.OrderBy("rev", qe.Direction.Desc)
    )
    try:
        page, _ = shard.scroll(newest)
    except Exception:
        return None
    return max((rev_of(r.payload) for r in page), default=0)


def declare_ops(
    add: dict[str, int], *, dot: bool = False, drop: Sequence[str] = ()
) -> list[qe.UpdateOperation]:
    """Operations that drop named vectors and add others (created plain: the shard is
    reopened with its config after them)."""
    distance = qe.Distance.Dot if dot else qe.Distance.Cosine
    return [qe.UpdateOperation.delete_vector_name(n) for n in drop] + [
        qe.UpdateOperation.create_dense_vector(n, d, distance) for n, d in add.items()
    ]


def vector_selector(with_vectors: bool | Sequence[str], dims: dict[str, int]) -> bool | list[str]:
    """Which vectors a read returns: never the fused one (store.fused)."""
    return selector(without_fused(with_vectors, dims))


def merged_points(
    current: list[qe.Record],
    wanted: dict[str, dict[str, np.ndarray]],
    index: tuple[str, list[tuple[str, int]]] | None,
    rev: int,
) -> list[qe.Point]:
    """Stored points with some vectors replaced (and their fused vector after them),
    stamped with ``rev``."""
    points = []
    for cur in current:
        pid = str(cur.id)
        vectors = {**as_named(cur.vector), **vectors_out(wanted[pid])}
        vectors.update(fused_out(vectors, index))
        points.append(qe.Point(pid, vectors, {**(cur.payload or {}), "rev": rev}))
    return points


def reopened(shard: qe.EdgeShard, path: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    """``shard`` closed and loaded again with ``config``: Edge stores it and its optimizers
    converge the segments to it. If Edge refuses the config, loaded with its own."""
    with edge_errors():
        shard.flush()
        shard.close()
    try:
        with edge_errors():
            return qe.EdgeShard.load(str(path), config)
    except StoreError as exc:
        log.debug("Qdrant Edge refused the configured vector layout: %s", exc)
        with edge_errors():
            return qe.EdgeShard.load(str(path))
