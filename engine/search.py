"""The search use case: by an uploaded picture (or a region of it), by a stored image, or by
a sentence. The CLI, the REST API and the seed-compatible ``/search`` all build a
``SearchRequest`` and call ``Search.run``, so one query gets one answer whichever way in.

Scores are the fused score ``sum(w_i * cos_i) / sum(w_i)`` over the active models, with the
weights the caller gave or, when none, the calibrated defaults (``engine.defaults``). Each
hit also carries every model's cosine (why it matched) and ``near_duplicate``, decided by
the calibrated fusion whatever weights ranked it: a badge must not follow the sliders.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder.roles import ROLES
from engine.defaults import MAX_WEIGHT, SearchDefaults
from engine.errors import BadInput, library_file
from engine.feedback import Marks, check_marks
from engine.multi_query import MultiImageSearch, Query, check_combine, check_count
from engine.picture_search import FirstLook, PictureSearch, above, thresholded
from engine.query import TEXT_WEIGHTS, Box
from engine.results import SearchHit, SearchResult
from engine.search_request import MAX_EXCLUDE, Filters, QueryImage, SearchRequest
from store.base import Filter

if TYPE_CHECKING:
    from engine.catalog import ModelCatalog
    from engine.colour import ColourFilter
    from engine.query import QueryEncoder
    from engine.read_policy import ReadPolicy
    from engine.verification import Verification


class Search:
    def __init__(
        self,
        reader: ReadPolicy,
        queries: QueryEncoder,
        catalog: ModelCatalog,
        colours: ColourFilter,
        file_of: Callable[[str], Path],
        verification: Verification | None = None,
        inside: str = "auto",
    ) -> None:
        self._reader = reader
        self._queries = queries
        self._catalog = catalog
        self._colours = colours
        self._file_of = file_of  # a stored image's file, to crop a region of it
        self._pictures = PictureSearch(
            self.by_vectors, queries, verification, catalog.defaults, check_k, inside
        )

    def defaults(self) -> SearchDefaults:
        return self._catalog.defaults()

    def run(self, request: SearchRequest, first_look: FirstLook | None = None) -> SearchResult:
        """The one dispatch every way in uses. ``first_look``: told a picture query's ranking
        before verification changes it (engine.picture_search); the threshold applies.
        ``request.exclude``: images never shown, and still k hits (k more are asked for)."""
        if not request.exclude:
            return self._run(request, first_look)
        defaults = self._catalog.defaults()
        k = check_k(defaults.k if request.k is None else request.k, defaults.max_k)
        leave = check_exclude(request.exclude)
        wider = replace(request, k=min(k + len(leave), defaults.max_k), exclude=())

        def told(result: SearchResult) -> None:
            if first_look is not None:
                first_look(left_out(result, leave, k))

        return left_out(self._run(wider, told if first_look else None), leave, k)

    def _run(self, request: SearchRequest, first_look: FirstLook | None) -> SearchResult:
        given = [x for x in (request.image, request.image_id, request.text) if x is not None]
        if len(given) + bool(request.queries) != 1:
            raise BadInput(
                "Search with exactly one of an image, an image id and a text; "
                f"got {len(given) + bool(request.queries) or 'none'}."
            )
        flt = self.filter(request.filters)
        marks = self._marks(request)
        options: dict[str, Any] = {"k": request.k, "flt": flt, "marks": marks}
        early = thresholded(first_look, request.threshold)
        if request.inside and (request.text is not None or len(request.queries) > 1):
            raise BadInput("'Look inside' searches one picture: not a text, not several images.")
        if request.queries:
            result = self._several(request, flt, marks, early)
        elif request.text is not None:
            result = self.by_text(request.text, **options)
        elif request.image is not None:
            result = self.by_image(
                request.image,
                name=request.image_name,
                box=request.box,
                weights=request.weights,
                inside=request.inside,
                first_look=early,
                **options,
            )
        else:
            image_id = check_id(str(request.image_id))
            if request.box is None and not request.inside:
                result = self.by_id(image_id, weights=request.weights, **options)
            else:  # a region of a stored image, or inside it: search its pixels
                path = self._file_of(image_id)
                with library_file(image_id):
                    result = self.by_image(
                        path.read_bytes(),
                        name=path.name,
                        box=request.box,
                        weights=request.weights,
                        inside=request.inside,
                        first_look=early,
                        **options,
                    )
        if request.threshold is not None:
            result.hits = above(result.hits, request.threshold)
        return result

    def _marks(self, request: SearchRequest) -> Marks | None:
        """The liked and disliked images' vectors (404 for an unknown one)."""
        if not request.liked and not request.disliked:
            return None
        check_marks(request.liked, request.disliked)
        vectors = self._reader.vectors
        return Marks(
            liked=[vectors(check_id(i)) for i in request.liked],
            disliked=[vectors(check_id(i)) for i in request.disliked],
        )

    def _several(
        self,
        request: SearchRequest,
        flt: Filter | None,
        marks: Marks | None,
        first_look: FirstLook | None,
    ) -> SearchResult:
        check_count(len(request.queries))
        check_combine(request.combine)
        if len(request.queries) == 1 and request.queries[0].image_id is None:
            (q,) = request.queries  # one uploaded picture the several-images way: a plain
            if q.data is not None:  # search, verification included
                return self.by_image(
                    q.data,
                    name=q.name,
                    box=q.box,
                    k=request.k,
                    weights=request.weights,
                    flt=flt,
                    marks=marks,
                    inside=request.inside,
                    first_look=first_look,
                )
        queries = [self._query(q) for q in request.queries]
        if marks is not None:  # each query image moves toward the liked ones
            queries = [Query(marks.refine(q.vectors), q.label, q.timings) for q in queries]
        if len(queries) == 1:  # one image given the several-images way: a plain search
            (one,) = queries
            result = self.by_vectors(one.vectors, k=request.k, weights=request.weights, flt=flt)
            result.timings = {**one.timings, **result.timings}
            return result
        multi = MultiImageSearch(
            self.by_vectors, self._reader.vectors, self._catalog.names, self._catalog.defaults
        )
        return multi.run(queries, request.combine, k=request.k, weights=request.weights, flt=flt)

    def _query(self, q: QueryImage) -> Query:
        """One query image's vectors: decoded and embedded, or a stored image's."""
        if q.image_id is not None and q.data is None:
            image_id = check_id(q.image_id)
            if q.box is None:
                return Query(self._reader.vectors(image_id), image_id, {})
            path = self._file_of(image_id)
            with library_file(image_id):
                found = self._queries.image(path.read_bytes(), name=path.name, box=q.box)
            return Query(found[0], image_id, found[1])
        if q.data is None or q.image_id is not None:
            raise BadInput("Each query image is an uploaded picture or an image id, not both.")
        vectors, timings, _ = self._queries.image(q.data, name=q.name, box=q.box)
        return Query(vectors, q.name, timings)

    def filter(self, filters: Filters | None) -> Filter | None:
        if filters is None:
            return None
        flt = filters.store_filter()
        if filters.colour:
            return self._colours.narrow(flt, filters.colour, filters.colour_tolerance)
        return flt

    def by_image(
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
        """Images like a picture (or a region of it); ``inside``: also look for images
        inside it (engine.inside; None: as the setting says). Picture queries' best
        candidates are verified."""
        options: dict[str, Any] = {"k": k, "weights": weights, "flt": flt, "marks": marks}
        options.update(inside=inside, first_look=first_look)
        return self._pictures.run(data, name=name, box=box, **options)

    def by_text(
        self,
        text: str,
        *,
        k: int | None = None,
        flt: Filter | None = None,
        marks: Marks | None = None,
    ) -> SearchResult:
        """Images matching a sentence. Only the clip block shares the text's space."""
        t0 = time.perf_counter()
        vectors = self._queries.text(text)
        t1 = time.perf_counter()
        result = self.by_vectors(vectors, k=k, weights=TEXT_WEIGHTS, flt=flt, marks=marks)
        result.timings = {"embed_ms": (t1 - t0) * 1e3, **result.timings}
        return result

    def by_id(
        self,
        point_id: str,
        *,
        k: int | None = None,
        weights: Mapping[str, float] | None = None,
        flt: Filter | None = None,
        marks: Marks | None = None,
    ) -> SearchResult:
        """Images like a stored one."""
        vectors = self._reader.vectors(check_id(point_id))
        return self.by_vectors(vectors, k=k, weights=weights, flt=flt, marks=marks)

    def by_vectors(
        self,
        vectors: dict[str, np.ndarray],
        *,
        k: int | None = None,
        weights: Mapping[str, float] | None = None,
        flt: Filter | None = None,
        marks: Marks | None = None,
        exact: bool = False,
    ) -> SearchResult:
        """``exact``: the mirror scans every full vector instead of its compact first stage
        (see store.mirror.index); Qdrant's fused search is exact anyway."""
        if marks is not None:
            vectors = marks.refine(vectors)
        defaults = self._catalog.defaults()
        k = check_k(defaults.k if k is None else k, defaults.max_k)
        role_weights = check_weights(defaults.weights if weights is None else weights)
        models = self._catalog.names()
        used = {r: w for r, w in role_weights.items() if r in models and models[r] in vectors}
        if not any(used.values()):
            off = [r for r, w in role_weights.items() if w > 0 and r not in models]
            why = f"; {', '.join(off)} is turned off on this server" if off else ""
            raise BadInput(
                "Every weight is zero for the models in use "
                f"({', '.join(models) or 'none'}){why}: give one of these a positive weight."
            )
        t0 = time.perf_counter()
        named = {models[r]: w for r, w in used.items()}
        found = self._reader.search(vectors, named, k, flt, exact=exact)
        t1 = time.perf_counter()
        role_of = {name: role for role, name in models.items()}
        hits = []
        for h in found.hits:
            payload = found.payloads.get(h.id)
            if payload is None:
                continue  # deleted since the mirror last caught up
            scores = {role_of[n]: float(s) for n, s in h.scores.items() if n in role_of}
            hits.append(
                SearchHit(
                    id=h.id,
                    path=(payload.get("paths") or [""])[0],
                    score=float(h.score),
                    scores=scores,
                    payload=payload,
                    near_duplicate=defaults.is_near_duplicate(scores),
                )
            )
        return SearchResult(
            hits=hits,
            timings={"search_ms": (t1 - t0) * 1e3},
            models=models,
            weights=used,
            degraded=found.degraded,
        )


def parse_weights(text: str | None) -> dict[str, float] | None:
    """'clip=1,cnn=0.5' -> {'clip': 1.0, 'cnn': 0.5} (roles left out weigh 0); None or ''
    -> None, which means the calibrated defaults."""
    if not text or not text.strip():
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        role, sep, value = part.partition("=")
        role = role.strip()
        if not sep or role not in ROLES:
            raise BadInput(
                f"Weights must look like 'clip=1,cnn=1,hsv=1'; got {part!r}. "
                f"Known models: {', '.join(ROLES)}."
            )
        out[role] = _weight(role, value)
    return out


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(ROLES)
    if unknown:
        raise BadInput(
            f"Unknown model(s) in weights: {', '.join(sorted(unknown))}. Known: {', '.join(ROLES)}."
        )
    return {role: _weight(role, w) for role, w in weights.items()}


def _weight(role: str, value: object) -> float:
    try:
        w = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput(f"The weight for {role} must be a number; got {value!r}.") from None
    if not np.isfinite(w) or not 0 <= w <= MAX_WEIGHT:
        raise BadInput(f"The weight for {role} must be a number from 0 to 1000; got {value!r}.")
    return w


def check_k(k: int, max_k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k > max_k:
        raise BadInput(f"k must be an integer between 1 and {max_k}; got {k!r}.")
    return k


def check_exclude(ids: Sequence[str]) -> frozenset[str]:
    if len(ids) > MAX_EXCLUDE:
        raise BadInput(f"At most {MAX_EXCLUDE} images can be left out; got {len(ids)}.")
    return frozenset(check_id(i) for i in ids)


def left_out(result: SearchResult, leave: frozenset[str], k: int) -> SearchResult:
    result.hits = [h for h in result.hits if h.id not in leave][:k]
    return result


def check_id(image_id: str) -> str:
    try:
        return str(uuid.UUID(image_id))
    except (ValueError, AttributeError, TypeError):
        raise BadInput(f"{image_id!r} is not an image id (a UUID).") from None
