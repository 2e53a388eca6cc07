"""The mirror's fusion maths: fused rows from records, weighted queries, exact hit scores.

Each point's fused vector is the concatenation of its models' L2-normalised vectors (a
missing vector is a zero block). A query scales each of its blocks by ``w_i / sum(w)``, so
one inner product gives ``sum(w_i * cos_i) / sum(w_i)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from store.base import Record

# Scores are float32 sums: more digits than this are noise.
SCORE_DIGITS = 6


@dataclass(frozen=True)
class MirrorHit:
    id: str
    score: float  # sum(w_i * cos_i) / sum(w_i)
    scores: dict[str, float]  # model name -> cosine, for models both sides have


def normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A zero row stays zero: it stands for "no vector", cosine 0 with everything.
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def fuse(
    recs: Sequence[Record], blocks: Sequence[tuple[str, int]], slices: Mapping[str, slice]
) -> np.ndarray:
    """Records -> (n, D) fused rows; raises ValueError for a wrong size or non-finite value."""
    fused = np.zeros((len(recs), sum(d for _, d in blocks)), dtype=np.float32)
    for name, dim in blocks:
        rows = [i for i, r in enumerate(recs) if r.vectors.get(name) is not None]
        if not rows:
            continue
        vecs = [np.asarray(recs[i].vectors[name], dtype=np.float32).reshape(-1) for i in rows]
        for i, v in zip(rows, vecs, strict=True):
            if v.size != dim:
                raise ValueError(
                    f"point {recs[i].id}: {name!r} vector has {v.size} values, want {dim}"
                )
        block = np.stack(vecs)
        if not np.isfinite(block).all():
            raise ValueError(f"non-finite values in {name!r} vectors")
        fused[rows, slices[name]] = normalise_rows(block)
    return fused


def query_blocks(
    slices: Mapping[str, slice], query: Mapping[str, np.ndarray], weights: Mapping[str, float]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Unit query vector per model, and each model's share of the total weight."""
    unknown = sorted({name for name, w in weights.items() if w} - set(slices))
    if unknown:
        raise ValueError(f"unknown models {unknown}; the mirror holds {list(slices)}")
    units: dict[str, np.ndarray] = {}
    for name, vec in query.items():
        if name not in slices:
            continue  # a model the mirror lacks (yet), queried with no weight
        v = np.asarray(vec, dtype=np.float64).reshape(-1)
        dim = slices[name].stop - slices[name].start
        if v.shape != (dim,):
            raise ValueError(f"query vector for {name!r} has {v.size} values, want {dim}")
        norm = float(np.linalg.norm(v))
        if norm > 0 and np.isfinite(norm):
            units[name] = v / norm
    used: dict[str, float] = {}
    for name, w in weights.items():
        w = float(w)
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"weight for {name!r} must be a finite number >= 0, got {w}")
        if w > 0 and name in units:
            used[name] = w
    total = sum(used.values())
    if total <= 0:
        raise ValueError("every weight is 0 (or its model has no query vector)")
    return units, {name: w / total for name, w in used.items()}


def hits(
    slices: Mapping[str, slice],
    point_ids: list[str],
    stored: np.ndarray,
    units: dict[str, np.ndarray],
    fractions: dict[str, float],
    k: int,
) -> list[MirrorHit]:
    """The top ``k`` of these candidates, scored exactly.

    Recomputed in float64 from the stored blocks so that each hit's score is exactly the
    weighted mean of the cosines it reports; the earlier stages only chose the candidates.
    einsum, not BLAS: for a few hundred rows OpenBLAS's threads cost more than they give,
    and on busy cores waking them stalled searches for 4-8 ms."""
    cosines: dict[str, np.ndarray] = {}
    for name, unit in units.items():
        cosines[name] = np.einsum("ij,j->i", stored[:, slices[name]], unit)
    fused = sum(
        (frac * cosines[name] for name, frac in fractions.items()),
        start=np.zeros(len(point_ids)),
    )
    order = np.argsort(-fused, kind="stable")[:k]
    return [
        MirrorHit(
            id=point_ids[row],
            score=round(float(fused[row]), SCORE_DIGITS),
            scores={
                name: round(float(cos[row]), SCORE_DIGITS)
                for name, cos in cosines.items()
                if stored[row, slices[name]].any()
            },
        )
        for row in order.tolist()
    ]
