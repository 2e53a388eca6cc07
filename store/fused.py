"""The fused index: one extra named vector that holds every model's vector side by side.

Lookalike's score is ``sum(w_i * cos_i) / sum(w_i)``. Each model's vector is unit length, so
with the blocks laid end to end (``x = [x_1, x_2, x_3]``) and the query built the same way
from the weighted query vectors (``q = [w_1 q_1, w_2 q_2, w_3 q_3] / sum(w)``), that score is
the dot product ``q . x``. One nearest-neighbour search on this vector (Qdrant's ``Dot``
distance, HNSW over int8 copies, rescored with the originals) therefore ranks by the fused
score itself, whatever the weights, where the per-model search has to read each model's
list deep enough to prove the answer (engine/store_search.py). At 1M synthetic points an
equal-weights query needed lists thousands deep (docs/scaling.md).

The vector's name carries its layout: ``lookalike-fused-<hash of the models and their
sizes, in name order>``. A model vector added later changes the layout, so the old fused
vector no longer matches and is neither written nor searched until it is built again. A
point without some model's vector has zeros in that block (cosine 0, as the per-model path
counts it). The store writes the fused vector on every upsert and vector update once it
exists; searches use it only when the build (``engine.fused_index``) has filled it for every
point, which it records under the meta key ``FUSED_META``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np

from store.base import Record

FUSED_PREFIX = "lookalike-fused-"
FUSED_META = "fused_index"  # meta: the fused vector's name once every point has it


def is_fused(name: str) -> bool:
    return name.startswith(FUSED_PREFIX)


def without_fused(
    with_vectors: bool | Sequence[str], dims: Mapping[str, int]
) -> bool | Sequence[str]:
    """A vector selector that never reads the fused vector (12 KB a point with the seed
    models): ``True`` means every model's."""
    if with_vectors is True and any(is_fused(n) for n in dims):
        return list(models_of(dims))
    return with_vectors


def models_of(dims: Mapping[str, int]) -> dict[str, int]:
    """The model vectors among a collection's named vectors."""
    return {name: dim for name, dim in dims.items() if not is_fused(name)}


def layout(dims: Mapping[str, int]) -> list[tuple[str, int]]:
    """The fused vector's blocks for these model vectors: name order."""
    return sorted(models_of(dims).items())


def fused_name(dims: Mapping[str, int]) -> str:
    """The fused vector's name for the model vectors in ``dims``."""
    text = json.dumps(layout(dims), separators=(",", ":"))
    return FUSED_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:12]


def current(dims: Mapping[str, int]) -> tuple[str, list[tuple[str, int]]] | None:
    """The fused vector that matches the model vectors, with its layout, if declared."""
    models = layout(dims)
    name = fused_name(dims)
    if not models or dims.get(name) != sum(d for _, d in models):
        return None
    return name, models


def concat(vectors: Mapping[str, np.ndarray], blocks: Sequence[tuple[str, int]]) -> np.ndarray:
    """The blocks end to end, each scaled to unit length (zeros where a model is missing)."""
    parts = []
    for name, dim in blocks:
        v = vectors.get(name)
        if v is None:
            parts.append(np.zeros(dim, np.float32))
            continue
        v = np.asarray(v, np.float32).reshape(-1)
        norm = float(np.linalg.norm(v))
        parts.append(v / norm if norm > 0 else v)
    return np.concatenate(parts)


def fused_of(
    vectors: Mapping[str, np.ndarray], blocks: Sequence[tuple[str, int]]
) -> np.ndarray | None:
    """The fused vector of a point with these model vectors; None when it has none of the
    layout's (an all-zero vector has no direction to search by)."""
    if not any(name in vectors for name, _ in blocks):
        return None
    return concat(vectors, blocks)


def with_fused(
    records: Sequence[Record], index: tuple[str, list[tuple[str, int]]] | None
) -> list[Record]:
    """``records`` with the fused vector added to each one that has a model vector of the
    layout (the others are written as they are)."""
    if index is None:
        return list(records)
    name, blocks = index
    out = []
    for r in records:
        vector = fused_of(r.vectors, blocks)
        out.append(r if vector is None else Record(r.id, r.payload, {**r.vectors, name: vector}))
    return out


def query(
    units: Mapping[str, np.ndarray], weights: Mapping[str, float], blocks: Sequence[tuple[str, int]]
) -> np.ndarray:
    """The fused query: each weighted model's unit vector times its share of the weight."""
    total = sum(weights.values())
    scaled = {name: units[name] * (w / total) for name, w in weights.items()}
    out = []
    for name, dim in blocks:
        out.append(scaled[name] if name in scaled else np.zeros(dim, np.float32))
    return np.concatenate(out).astype(np.float32)
