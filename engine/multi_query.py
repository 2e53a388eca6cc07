"""A query of several images: up to ``MAX_QUERY_IMAGES`` pictures, crops or stored images of
one design (a trademark search takes up to 7 views of one mark), in one search.

Two ways to combine them:

- ``any``: an image close to one of the query images ranks high. Its score is the best of
  its fused scores against each query image. Exact: each query's own top k is searched, and
  an image in the top k by best score is in the top k of the query it scores best against.
- ``all``: one query, the mean of the query images' fused vectors, so an image must look like
  all of them. The mean of each model's unit vectors is searched with that model's weight
  scaled by the mean's length, which gives ``sum(w_i * (mean_i . x_i)) / sum(w_i)``: the
  score of the mean fused vector, exactly.

Each hit says which query image it matched best (``query_index``), and its per-model
cosines and near-duplicate verdict are against that image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from engine.errors import BadInput

if TYPE_CHECKING:
    from engine.defaults import SearchDefaults
    from engine.results import SearchHit, SearchResult
    from store.base import Filter

MAX_QUERY_IMAGES = 8
Combine = Literal["any", "all"]
COMBINES: tuple[str, ...] = ("any", "all")

Vectors = dict[str, np.ndarray]


@dataclass(frozen=True)
class Query:
    """One query image's vectors, by model name, and how it was given."""

    vectors: Vectors
    label: str
    timings: Mapping[str, float]


def check_count(n: int) -> None:
    if n > MAX_QUERY_IMAGES:
        raise BadInput(
            f"At most {MAX_QUERY_IMAGES} images go into one search; got {n}. Pick the views "
            "that show the design best."
        )


def check_combine(combine: str) -> str:
    if combine not in COMBINES:
        raise BadInput(f"combine must be 'any' or 'all'; got {combine!r}.")
    return combine


class MultiImageSearch:
    """``Search.by_vectors`` over several queries; the stored vectors of a hit come from
    ``vectors_of`` (the read policy), to tell which query image it matched best."""

    def __init__(
        self,
        by_vectors: Callable[..., SearchResult],
        vectors_of: Callable[[str], Vectors],
        names: Callable[[], dict[str, str]],
        defaults: Callable[[], SearchDefaults],
    ) -> None:
        self._by_vectors = by_vectors
        self._vectors_of = vectors_of
        self._names = names
        self._defaults = defaults

    def run(
        self,
        queries: Sequence[Query],
        combine: str,
        *,
        k: int | None,
        weights: Mapping[str, float] | None,
        flt: Filter | None,
    ) -> SearchResult:
        check_count(len(queries))
        if check_combine(combine) == "any":
            result = self._any(queries, k=k, weights=weights, flt=flt)
        else:
            result = self._all(queries, k=k, weights=weights, flt=flt)
        for q in queries:
            for name, ms in q.timings.items():
                result.timings[name] = result.timings.get(name, 0.0) + ms
        return result

    def _any(
        self,
        queries: Sequence[Query],
        *,
        k: int | None,
        weights: Mapping[str, float] | None,
        flt: Filter | None,
    ) -> SearchResult:
        results = [self._by_vectors(q.vectors, k=k, weights=weights, flt=flt) for q in queries]
        best: dict[str, SearchHit] = {}
        for index, result in enumerate(results):
            for hit in result.hits:
                hit.query_index = index
                if hit.id not in best or hit.score > best[hit.id].score:
                    best[hit.id] = hit
        merged = results[0]
        merged.hits = sorted(best.values(), key=lambda h: (-h.score, h.id))[: _k_of(results)]
        merged.degraded = any(r.degraded for r in results)
        merged.timings = {
            "search_ms": sum(r.timings.get("search_ms", 0.0) for r in results),
        }
        return merged

    def _all(
        self,
        queries: Sequence[Query],
        *,
        k: int | None,
        weights: Mapping[str, float] | None,
        flt: Filter | None,
    ) -> SearchResult:
        names = self._names()
        role_of = {name: role for role, name in names.items()}
        asked = dict(self._defaults().weights if weights is None else weights)
        mean: Vectors = {}
        for name in names.values():
            units = [_unit(q.vectors[name]) for q in queries if name in q.vectors]
            if units:
                mean[name] = np.mean(units, axis=0)
        lengths = {role_of[n]: float(np.linalg.norm(v)) for n, v in mean.items()}
        scaled = {r: float(w) * lengths.get(r, 0.0) for r, w in asked.items()}
        result = self._by_vectors(mean, k=k, weights=scaled, flt=flt)
        used = {r: float(asked[r]) for r in result.weights}
        # by_vectors divided by sum(scaled weights); the mean fused vector's score divides
        # by the weights asked for.
        factor = sum(result.weights.values()) / sum(used.values())
        for hit in result.hits:
            hit.score *= factor
        result.weights = used
        self._attribute(result.hits, queries, used, names)
        return result

    def _attribute(
        self,
        hits: list[SearchHit],
        queries: Sequence[Query],
        weights: Mapping[str, float],
        names: Mapping[str, str],
    ) -> None:
        """Which query image each hit matched best, with its cosines to that image."""
        defaults = self._defaults()
        total = sum(weights.values())
        for hit in hits:
            stored = self._vectors_of(hit.id)
            per_query = []
            for q in queries:
                cosines = {
                    role: float(_unit(q.vectors[name]) @ _unit(stored[name]))
                    for role, name in names.items()
                    if name in q.vectors and name in stored
                }
                fused = sum(w * cosines.get(r, 0.0) for r, w in weights.items()) / total
                per_query.append((fused, cosines))
            index = int(np.argmax([fused for fused, _ in per_query]))
            hit.query_index = index
            hit.scores = per_query[index][1]
            hit.near_duplicate = defaults.is_near_duplicate(hit.scores)


def _k_of(results: Sequence[SearchResult]) -> int:
    return max((len(r.hits) for r in results), default=0)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
