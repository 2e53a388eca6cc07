"""A search by a picture (uploaded, or a stored image's file), maybe a region of it: embed
it, rank by fused similarity, optionally look inside it (``engine.inside``), then verify the
best candidates as copies (``engine.verification``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from engine.inside import windows

if TYPE_CHECKING:
    from engine.defaults import SearchDefaults
    from engine.feedback import Marks
    from engine.query import Box, QueryEncoder
    from engine.results import SearchHit, SearchResult
    from engine.verification import Verification
    from store.base import Filter


class PictureSearch:
    def __init__(
        self,
        by_vectors: Callable[..., SearchResult],
        queries: QueryEncoder,
        verification: Verification | None,
        defaults: Callable[[], SearchDefaults],
        check_k: Callable[[int, int], int],
    ) -> None:
        self._by_vectors = by_vectors
        self._queries = queries
        self._verification = verification
        self._defaults = defaults
        self._check_k = check_k

    def run(
        self,
        data: bytes,
        *,
        name: str = "query",
        box: Box | None = None,
        k: int | None = None,
        weights: Mapping[str, float] | None = None,
        flt: Filter | None = None,
        marks: Marks | None = None,
        inside: bool = False,
    ) -> SearchResult:
        vectors, timings, picture = self._queries.image(data, name=name, box=box)
        verify = self._verification
        verifying = verify is not None and verify.enabled
        if not verifying and not inside:
            result = self._by_vectors(vectors, k=k, weights=weights, flt=flt, marks=marks)
            result.timings = {**timings, **result.timings}
            return result
        defaults = self._defaults()
        wanted = self._check_k(defaults.k if k is None else k, defaults.max_k)
        deeper = max(wanted, verify.candidates) if verify is not None and verifying else wanted
        options = {"k": deeper, "weights": weights, "flt": flt, "marks": marks}
        if inside:
            boxes = windows(*picture.size)  # 400 for a picture too small to look inside
            t0 = time.perf_counter()
            regions = self._queries.regions(picture, boxes)
            timings["inside_embed_ms"] = (time.perf_counter() - t0) * 1e3
            results = [self._by_vectors(v, **options) for v in (vectors, *regions)]
            result = results[0]
            result.hits = _best_of(r.hits for r in results)[:deeper]
            result.timings = {"search_ms": sum(r.timings["search_ms"] for r in results)}
        else:
            result = self._by_vectors(vectors, **options)
        if verifying and verify is not None:
            t0 = time.perf_counter()
            views = verify.query_views(picture.image, picture.size)
            result.hits, verify_ms = verify.rerank(views, result.hits, wanted, picture.offset)
            timings["keypoints_ms"] = (time.perf_counter() - t0) * 1e3 - verify_ms
            timings["verify_ms"] = verify_ms
        else:
            result.hits = result.hits[:wanted]
        result.timings = {**timings, **result.timings}
        return result


def _best_of(lists: object) -> list[SearchHit]:
    """Each image once, with its best score over the lists (combined by max), best first."""
    best: dict[str, SearchHit] = {}
    for hits in lists:  # type: ignore[attr-defined]
        for hit in hits:
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.id))
