"""Lookalike's store types and settings in qdrant-client's terms (used by ``ServerStore``).

Collections are made for a cluster: explicit shards (self-hosted Qdrant cannot reshard, so
the count is fixed at creation), replication and write consistency; per named vector,
int8 scalar quantization kept in RAM, originals on disk and HNSW parameters. Binary
quantization is deliberately not offered: it keeps one bit per dimension (the sign), and
the CNN and HSV vectors are non-negative, so every one of their dimensions reads 1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from store.base import (
    POINT_NAMESPACE,
    Filter,
    Record,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    VectorQuery,
)
from store.config import DEFAULT_HNSW_EF, StoreConfig
from store.filters import AnyOf, HasId, LacksVector, conditions
from store.fused import is_fused

OVERSAMPLING = 2.0
# Qdrant's own defaults, which a vector without an HNSW override of its own inherits.
DEFAULT_HNSW = (16, 100)


def vector_params(dim: int, config: StoreConfig, *, dot: bool = False) -> qm.VectorParams:
    """A model's vector (cosine), or with ``dot`` the fused index's (store.fused)."""
    return qm.VectorParams(
        size=dim,
        distance=qm.Distance.DOT if dot else qm.Distance.COSINE,
        on_disk=config.on_disk,
        quantization_config=_int8() if config.quantization == "int8" else None,
        hnsw_config=_hnsw(config),
    )


def vector_diffs(
    collection: qm.CollectionConfig, names: set[str], config: StoreConfig
) -> tuple[dict[str, qm.VectorParamsDiff], dict[str, list[str]]]:
    """``vector_diff`` for each of ``names`` the collection declares: the diffs to send,
    and what each changes."""
    declared = collection.params.vectors
    diffs: dict[str, qm.VectorParamsDiff] = {}
    changed: dict[str, list[str]] = {}
    if isinstance(declared, dict):
        for name in sorted(names & declared.keys()):
            diff, what = vector_diff(declared[name], collection, config)
            if diff is not None:
                diffs[name], changed[name] = diff, what
    return diffs, changed


def vector_diff(
    current: qm.VectorParams, collection: qm.CollectionConfig | None, config: StoreConfig
) -> tuple[qm.VectorParamsDiff | None, list[str]]:
    """What to send ``update_collection`` so one named vector gets the configured layout,
    and the settings that differ; (None, []) when it has it already. A vector without an
    override of its own inherits the collection's quantization and HNSW settings."""
    quantization = current.quantization_config or (collection and collection.quantization_config)
    hnsw = current.hnsw_config
    base_m, base_ef = DEFAULT_HNSW
    if collection is not None:
        base_m, base_ef = collection.hnsw_config.m, collection.hnsw_config.ef_construct
    m = hnsw.m if hnsw and hnsw.m is not None else base_m
    ef = hnsw.ef_construct if hnsw and hnsw.ef_construct is not None else base_ef
    diff: dict[str, Any] = {}
    if config.quantization == "int8" and not _is_int8_in_ram(quantization):
        diff["quantization_config"] = _int8()
    elif config.quantization == "off" and quantization is not None:
        diff["quantization_config"] = qm.Disabled.DISABLED
    if bool(current.on_disk) != config.on_disk:
        diff["on_disk"] = config.on_disk
    if (m, ef) != (config.hnsw_m, config.hnsw_ef_construct):
        diff["hnsw_config"] = qm.HnswConfigDiff(
            m=config.hnsw_m, ef_construct=config.hnsw_ef_construct
        )
    names = {"quantization_config": "quantization", "on_disk": "on_disk", "hnsw_config": "hnsw"}
    return (qm.VectorParamsDiff(**diff) if diff else None), [names[k] for k in diff]


def shard_layout(peers: int, config: StoreConfig) -> tuple[int, int]:
    """(shard_number, replication_factor) for a new collection on ``peers`` nodes: two
    shards per node leave room to grow to twice the nodes by moving shards, never by
    resharding; two replicas where there is a second node to hold one."""
    shards = config.shards if config.shards is not None else 2 * peers if peers > 1 else 1
    replication = config.replication if config.replication is not None else min(2, peers)
    if config.write_consistency > replication:
        raise StoreConfigError(
            f"LOOKALIKE_QDRANT_WRITE_CONSISTENCY={config.write_consistency} exceeds the "
            f"{replication} replica(s) a new collection gets on {peers} node(s); lower it or "
            "set LOOKALIKE_QDRANT_REPLICATION"
        )
    return shards, replication


def search_params(exact: bool, config: StoreConfig, ef: int | None = None) -> qm.SearchParams:
    walk = config.hnsw_ef or ef or DEFAULT_HNSW_EF
    if config.quantization == "off":
        return qm.SearchParams(exact=exact, hnsw_ef=None if exact else walk)
    if exact:
        # Exact means the original vectors: quantized scores would be off by ~1e-3.
        return qm.SearchParams(exact=True, quantization=qm.QuantizationSearchParams(ignore=True))
    rescored = qm.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    return qm.SearchParams(exact=False, hnsw_ef=walk, quantization=rescored)


def query_request(
    q: VectorQuery, flt: Filter | None, config: StoreConfig, *, local: bool
) -> qm.QueryRequest:
    return qm.QueryRequest(
        query=np.asarray(q.vector, dtype=np.float32).tolist(),
        using=q.vector_name,
        limit=q.k,
        filter=server_filter(flt),
        # qdrant-client's local mode ignores search params and warns on every call.
        params=None if local else search_params(q.exact, config, q.ef),
        with_payload=False,
    )


def _hnsw(config: StoreConfig) -> qm.HnswConfigDiff:
    return qm.HnswConfigDiff(m=config.hnsw_m, ef_construct=config.hnsw_ef_construct)


def _int8() -> qm.ScalarQuantization:
    return qm.ScalarQuantization(
        scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True)
    )


def _is_int8_in_ram(quantization: Any) -> bool:
    if not isinstance(quantization, qm.ScalarQuantization):
        return False
    scalar = quantization.scalar
    return scalar.type == qm.ScalarType.INT8 and bool(scalar.always_ram)


def server_filter(flt: Filter | None) -> qm.Filter | None:
    must: list[qm.Condition] = []
    must_not: list[qm.Condition] = []
    for cond in conditions(flt):
        if isinstance(cond, HasId):
            must.append(qm.HasIdCondition(has_id=list(cond.ids)))
        elif isinstance(cond, LacksVector):
            must_not.append(qm.HasVectorCondition(has_vector=cond.name))
        elif isinstance(cond, AnyOf):
            must.append(qm.FieldCondition(key=cond.key, match=qm.MatchAny(any=list(cond.values))))
        else:
            span = qm.Range(gte=cond.gte, lte=cond.lte, gt=cond.gt)
            must.append(qm.FieldCondition(key=cond.key, range=span))
    return qm.Filter(must=must, must_not=must_not or None) if must or must_not else None


def ids_filter(ids: Sequence[str]) -> qm.Filter:
    return qm.Filter(must=[qm.HasIdCondition(has_id=list(dict.fromkeys(str(i) for i in ids)))])


def meta_id(key: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"meta:{key}"))


def selector(value: bool | Sequence[str]) -> bool | list[str]:
    return value if isinstance(value, bool) else [str(v) for v in value]


def vectors_out(vectors: dict[str, np.ndarray]) -> dict[str, qm.Vector]:
    return {name: np.asarray(v, dtype=np.float32).tolist() for name, v in vectors.items()}


def to_record(point_id: qm.ExtendedPointId, payload: dict[str, Any] | None, vector: Any) -> Record:
    vectors = vector if isinstance(vector, dict) else {}
    return Record(
        id=str(point_id),
        payload=dict(payload or {}),
        vectors={
            name: np.asarray(v, dtype=np.float32)
            for name, v in vectors.items()
            if not is_fused(name)  # the store's own index, not a model's vector
        },
    )


@contextmanager
def server_errors(where: str, *, local: bool) -> Iterator[None]:
    """qdrant-client's failures as the store's: unreachable, refused key and 502-504 are
    ``StoreUnavailable`` (each a sentence naming the setting to check), the rest
    ``StoreError``."""
    try:
        yield
    except ResponseHandlingException as exc:
        raise StoreUnavailable(
            f"cannot reach the Qdrant server at {where} ({exc.source}); check "
            "LOOKALIKE_QDRANT_URL and that the server is running"
        ) from exc
    except UnexpectedResponse as exc:
        if exc.status_code in (401, 403):
            raise StoreUnavailable(
                f"the Qdrant server at {where} refused the API key; check LOOKALIKE_QDRANT_API_KEY"
            ) from exc
        if exc.status_code in (502, 503, 504):
            raise StoreUnavailable(
                f"the Qdrant server at {where} is unavailable "
                f"({exc.status_code}); check LOOKALIKE_QDRANT_URL"
            ) from exc
        raise StoreError(f"Qdrant server: {exc}") from exc
    except (ValueError, KeyError) as exc:
        # How the in-process stand-in reports what a server answers with a 4xx.
        if not local:
            raise
        raise StoreError(f"Qdrant (in-process): {exc}") from exc
