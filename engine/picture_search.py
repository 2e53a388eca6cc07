"""A search by a picture (uploaded, or a stored image's file), maybe a region of it: embed
it, rank by fused similarity, optionally look inside it (``engine.inside``), then verify the
best candidates as copies (``engine.verification``). A thumbnail query (too small for local
features) is searched exactly and compared by layout as well.

Verification and looking inside take longer than the vector search (on 2 cores, about 0.3
of a search's 0.5 s): a caller that passes ``first_look`` gets the whole picture's ranking
as soon as it is known, then the answer (``POST /api/v1/search/stream``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from embedder.layout import is_small, thumb
from engine.inside import AUTO, OFF, ON, check_mode, windows, worth_looking
from engine.results import SearchResult
from engine.verification import LAYOUT_CANDIDATES, Verification, rank_key

if TYPE_CHECKING:
    from engine.defaults import SearchDefaults
    from engine.feedback import Marks
    from engine.query import Box, QueryEncoder
    from engine.results import SearchHit
    from store.base import Filter

# Told the whole picture's ranking (before verification) as soon as it is known.
FirstLook = Callable[[SearchResult], None]


class PictureSearch:
    def __init__(
        self,
        by_vectors: Callable[..., SearchResult],
        queries: QueryEncoder,
        verification: Verification | None,
        defaults: Callable[[], SearchDefaults],
        check_k: Callable[[int, int], int],
        inside: str = AUTO,
    ) -> None:
        self._by_vectors = by_vectors
        self._queries = queries
        self._verification = verification
        self._defaults = defaults
        self._check_k = check_k
        self.inside = check_mode(inside)  # what a query that does not say gets
        self._lock = threading.Lock()
        self._running = 0  # picture searches under way in this process

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
        inside: bool | None = None,
        first_look: FirstLook | None = None,
    ) -> SearchResult:
        """``inside``: True looks inside the picture, False does not, None: the setting
        (``auto``: only when the whole picture proves no copy, engine.inside).
        ``first_look``: called (on this thread) with the whole picture's ranking before
        verification or looking inside, when either follows; it must not keep the hits."""
        with self._lock:
            self._running += 1
        try:
            return self._run(data, name, box, k, weights, flt, marks, inside, first_look)
        finally:
            with self._lock:
                self._running -= 1

    def _run(
        self,
        data: bytes,
        name: str,
        box: Box | None,
        k: int | None,
        weights: Mapping[str, float] | None,
        flt: Filter | None,
        marks: Marks | None,
        inside: bool | None,
        first_look: FirstLook | None,
    ) -> SearchResult:
        vectors, timings, picture = self._queries.image(data, name=name, box=box)
        mode = self.inside if inside is None else ON if inside else OFF
        verify = self._verification
        if verify is None or not verify.enabled:
            options = {"k": k, "weights": weights, "flt": flt, "marks": marks}
            inside_on = mode == ON
            return self._unverified(vectors, timings, picture, inside_on, options, first_look)
        defaults = self._defaults()
        wanted = self._check_k(defaults.k if k is None else k, defaults.max_k)
        small = is_small(*picture.size)
        deeper = max(wanted, verify.candidates, LAYOUT_CANDIDATES if small else 0)
        deeper = min(deeper, defaults.max_k)  # a lower configured ceiling still holds
        # A thumbnail: exact first stage, and deep enough for the layout check.
        options = {"k": deeper, "weights": weights, "flt": flt, "marks": marks, "exact": small}
        boxes = windows(*picture.size) if mode == ON else []  # 400: too small to look inside
        result = self._by_vectors(vectors, **options)
        whole = result.hits
        if first_look is not None:
            first_look(_first(result, whole[:wanted], timings))
        t0 = time.perf_counter()
        views = verify.query_views(picture.image, picture.size)
        timings["keypoints_ms"] = (time.perf_counter() - t0) * 1e3
        query_thumb = thumb(picture.image)
        layout = (query_thumb, picture.size) if small else None
        ranked, verify_ms = verify.rerank(views, whole, len(whole), picture.offset, layout=layout)
        if (
            mode == AUTO
            and worth_looking(*picture.size)
            and self._running <= 1  # under concurrent load, auto answers from the whole
            and not verify.is_whole_copy(ranked[: verify.candidates], query_thumb)
        ):
            boxes = windows(*picture.size)
        if boxes:
            # Windows only bring candidates to verification: the best of them not already
            # checked. A window hit moves up only once verified; unverified ones keep the
            # whole picture's order (window scores are not comparable with it: ranking by
            # them lost true hits that cannot be verified, bench/RESULTS_copy_detection.md).
            t0 = time.perf_counter()
            regions = self._queries.regions(picture, boxes, candidates=True)
            timings["inside_embed_ms"] = (time.perf_counter() - t0) * 1e3
            found = [self._by_vectors(v, **options) for v in regions]
            result.timings["search_ms"] += sum(r.timings["search_ms"] for r in found)
            checked = {h.id for h in whole[: verify.candidates]}
            extra = [h for h in _best_of(r.hits for r in found) if h.id not in checked]
            extra = extra[: verify.candidates]
            more, ms = verify.rerank(views, extra, len(extra), picture.offset, check=len(extra))
            verify_ms += ms
            ranked = _whole_order([*ranked, *more], whole)
        timings["verify_ms"] = verify_ms
        result.hits = ranked[:wanted]
        result.timings = {**timings, **result.timings}
        return result

    def _unverified(
        self,
        vectors: dict[str, Any],
        timings: dict[str, float],
        picture: Any,
        inside: bool,
        options: dict[str, Any],
        first_look: FirstLook | None,
    ) -> SearchResult:
        """Verification off: the vector search alone; looking inside (only when asked)
        ranks each image by its best window (combined by max): nothing else can."""
        if not inside:
            result = self._by_vectors(vectors, **options)
            result.timings = {**timings, **result.timings}
            return result
        boxes = windows(*picture.size)
        defaults = self._defaults()
        k = options["k"]
        wanted = self._check_k(defaults.k if k is None else k, defaults.max_k)
        options = {**options, "k": wanted}
        whole = self._by_vectors(vectors, **options)
        if first_look is not None:
            first_look(_first(whole, whole.hits, timings))
        t0 = time.perf_counter()
        regions = self._queries.regions(picture, boxes)
        timings["inside_embed_ms"] = (time.perf_counter() - t0) * 1e3
        results = [whole, *(self._by_vectors(v, **options) for v in regions)]
        result = results[0]
        result.hits = _best_of(r.hits for r in results)[:wanted]
        search_ms = sum(r.timings["search_ms"] for r in results)
        result.timings = {**timings, "search_ms": search_ms}
        return result


def _first(result: SearchResult, hits: list[SearchHit], timings: dict[str, float]) -> SearchResult:
    """The whole picture's ranking, told before verification (or the windows) changes it."""
    return SearchResult(
        hits=list(hits),
        timings={**timings, **result.timings},
        models=result.models,
        weights=result.weights,
        degraded=result.degraded,
    )


def above(hits: list[SearchHit], threshold: float) -> list[SearchHit]:
    return [h for h in hits if h.score >= threshold]


def thresholded(first_look: FirstLook | None, threshold: float | None) -> FirstLook | None:
    """``first_look`` told only the hits the answer could keep."""
    if first_look is None or threshold is None:
        return first_look

    def told(result: SearchResult) -> None:
        result.hits = above(result.hits, threshold)
        first_look(result)

    return told


def _whole_order(ranked: list[SearchHit], whole: list[SearchHit]) -> list[SearchHit]:
    """Hits with evidence (proven copies first, engine.verification), then the whole
    picture's other hits in its order, then other window hits it did not have."""
    evident: list[SearchHit] = []
    done: set[str] = set()
    for hit in sorted((h for h in ranked if h.verified is not None), key=rank_key):
        if hit.id not in done:  # one image found twice (whole and window): its best evidence
            evident.append(hit)
            done.add(hit.id)
    rest = [h for h in whole if h.id not in done]
    done.update(h.id for h in rest)
    return [*evident, *rest, *(h for h in ranked if h.id not in done)]


def _best_of(lists: object) -> list[SearchHit]:
    """Each image once, with its best score over the lists (combined by max), best first."""
    best: dict[str, SearchHit] = {}
    for hits in lists:  # type: ignore[attr-defined]
        for hit in hits:
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.id))
