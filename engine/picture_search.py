"""A search by a picture (uploaded, or a stored image's file), maybe a region of it: embed
it, rank by fused similarity, optionally look inside it (``engine.inside``), then verify the
best candidates as copies (``engine.verification``). A thumbnail query (too small for local
features) is searched exactly and compared by layout as well."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from embedder.layout import is_small, thumb
from engine.inside import windows
from engine.verification import LAYOUT_CANDIDATES, Verification

if TYPE_CHECKING:
    from engine.defaults import SearchDefaults
    from engine.feedback import Marks
    from engine.query import Box, QueryEncoder
    from engine.results import SearchHit, SearchResult
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
        small = verifying and is_small(*picture.size)
        if small:  # a thumbnail: exact first stage, and deep enough for the layout check
            deeper = max(deeper, LAYOUT_CANDIDATES)
        options = {"k": deeper, "weights": weights, "flt": flt, "marks": marks, "exact": small}
        check: int | None = None
        whole: list[SearchHit] = []  # with inside: the whole picture's hits, in order
        if inside:
            boxes = windows(*picture.size)  # 400 for a picture too small to look inside
            t0 = time.perf_counter()
            regions = self._queries.regions(picture, boxes)
            timings["inside_embed_ms"] = (time.perf_counter() - t0) * 1e3
            result = self._by_vectors(vectors, **options)
            found = [self._by_vectors(v, **options) for v in regions]
            search_ms = sum(r.timings["search_ms"] for r in (result, *found))
            result.timings = {"search_ms": search_ms}
            if verifying and verify is not None:
                # Windows only bring candidates to verification: the best of them not
                # already among the whole picture's. A window hit moves up only once
                # verified; unverified ones keep the whole picture's order (window scores
                # are not comparable with it: ranking by them lost true hits that cannot be
                # verified, bench/RESULTS_copy_detection.md).
                whole = result.hits
                head = whole[: verify.candidates]
                seen = {h.id for h in head}
                extra = [h for h in _best_of(r.hits for r in found) if h.id not in seen]
                extra = extra[: verify.candidates]
                check = len(head) + len(extra)
                result.hits = [*head, *extra]
            else:
                result.hits = _best_of(r.hits for r in (result, *found))[:deeper]
        else:
            result = self._by_vectors(vectors, **options)
        if verifying and verify is not None:
            t0 = time.perf_counter()
            views = verify.query_views(picture.image, picture.size)
            layout = (thumb(picture.image), picture.size) if small else None
            depth = len(result.hits) if whole else wanted
            result.hits, verify_ms = verify.rerank(
                views, result.hits, depth, picture.offset, check=check, layout=layout
            )
            if whole:
                result.hits = _whole_order(result.hits, whole)[:wanted]
            timings["keypoints_ms"] = (time.perf_counter() - t0) * 1e3 - verify_ms
            timings["verify_ms"] = verify_ms
        else:
            result.hits = result.hits[:wanted]
        result.timings = {**timings, **result.timings}
        return result


def _whole_order(ranked: list[SearchHit], whole: list[SearchHit]) -> list[SearchHit]:
    """Verified hits (as ranked), then the whole picture's unverified hits in its order,
    then unverified window hits it did not have."""
    proven = [h for h in ranked if h.verified is not None]
    done = {h.id for h in proven}
    rest = [h for h in whole if h.id not in done]
    done.update(h.id for h in rest)
    return [*proven, *rest, *(h for h in ranked if h.id not in done)]


def _best_of(lists: object) -> list[SearchHit]:
    """Each image once, with its best score over the lists (combined by max), best first."""
    best: dict[str, SearchHit] = {}
    for hits in lists:  # type: ignore[attr-defined]
        for hit in hits:
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.id))
