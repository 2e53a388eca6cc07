"""Search use cases: query by image bytes, by a sentence, by stored image id, or by vectors.

The engine exposes them as methods (``Engine.search_image`` ...); they live here to keep
engine/core.py about opening and indexing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import outage
from engine.errors import BadInput, NotFound
from store.base import Filter, StoreUnavailable

if TYPE_CHECKING:
    from engine.core import Engine

MAX_K = 1000
DEFAULT_WEIGHTS = {"clip": 1.0, "cnn": 1.0, "hsv": 1.0}


@dataclass
class SearchHit:
    id: str
    path: str  # first path of the image, as stored (library-relative key)
    score: float  # fused: sum(w_i * cos_i) / sum(w_i), for the models in use
    scores: dict[str, float]  # role -> cosine
    payload: dict[str, Any]


@dataclass
class SearchResult:
    hits: list[SearchHit]
    timings: dict[str, float] = field(default_factory=dict)  # decode_ms, embed_ms, search_ms
    models: dict[str, str] = field(default_factory=dict)  # role -> model name
    weights: dict[str, float] = field(default_factory=dict)  # role -> weight used
    degraded: bool = False


def parse_weights(text: str | None) -> dict[str, float]:
    """'clip=1,cnn=0.5' -> {'clip': 1.0, 'cnn': 0.5}; roles left out keep weight 0."""
    if not text:
        return dict(DEFAULT_WEIGHTS)
    out: dict[str, float] = {}
    for part in text.split(","):
        role, sep, value = part.partition("=")
        role = role.strip()
        if not sep or role not in DEFAULT_WEIGHTS:
            raise BadInput(
                f"Weights must look like 'clip=1,cnn=1,hsv=1'; got {part!r}. "
                f"Known models: {', '.join(DEFAULT_WEIGHTS)}."
            )
        out[role] = _weight(role, value)
    return out


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise BadInput(
            f"Unknown model(s) in weights: {', '.join(sorted(unknown))}. "
            f"Known: {', '.join(DEFAULT_WEIGHTS)}."
        )
    return {role: _weight(role, w) for role, w in weights.items()}


def _weight(role: str, value: object) -> float:
    try:
        w = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput(f"The weight for {role} must be a number; got {value!r}.") from None
    if not np.isfinite(w) or w < 0:
        raise BadInput(f"The weight for {role} must be a finite number >= 0; got {value!r}.")
    return w


def check_k(k: int) -> int:
    if not isinstance(k, int) or k < 1 or k > MAX_K:
        raise BadInput(f"k must be an integer between 1 and {MAX_K}; got {k!r}.")
    return k


def filter_from(
    folders: list[str] | None = None,
    tags_any: list[str] | None = None,
    tags_all: list[str] | None = None,
    formats: list[str] | None = None,
    min_width: int | None = None,
    max_width: int | None = None,
    min_height: int | None = None,
    max_height: int | None = None,
) -> Filter:
    return Filter(
        folders=tuple(f.strip("/") for f in folders or ()),
        tags_any=tuple(tags_any or ()),
        tags_all=tuple(tags_all or ()),
        formats=tuple(f.upper() for f in formats or ()),
        min_width=min_width,
        max_width=max_width,
        min_height=min_height,
        max_height=max_height,
    )


def by_image(
    engine: Engine,
    data: bytes,
    *,
    name: str = "query",
    k: int = 10,
    weights: dict[str, float] | None = None,
    flt: Filter | None = None,
    box: tuple[int, int, int, int] | None = None,
) -> SearchResult:
    from embedder.decode import decode_image
    from embedder.errors import DecodeError
    from engine.errors import UndecodableImage

    t0 = time.perf_counter()
    # Announced before decoding, so that a batch about to leave waits for this query
    # (engine.batching); preprocessing runs here, in parallel per request.
    with engine.query_batcher.coming() as submit:
        try:
            # A region is cut from the full-resolution image: draft decoding could leave
            # a small box only a few dozen pixels to look at.
            decoded = decode_image(data, name, draft=box is None)
        except DecodeError as exc:
            raise UndecodableImage(str(exc)) from exc
        image = decoded.image
        if box is not None:
            image = _crop(image, box, (decoded.width, decoded.height))
        t1 = time.perf_counter()
        vectors = submit(engine.embedder.prepare(image))
    t2 = time.perf_counter()
    result = by_vectors(engine, vectors, k=k, weights=weights, flt=flt)
    result.timings = {
        "decode_ms": (t1 - t0) * 1e3,
        "embed_ms": (t2 - t1) * 1e3,
        "search_ms": result.timings["search_ms"],
    }
    return result


def by_text(
    engine: Engine,
    text: str,
    *,
    k: int = 10,
    weights: dict[str, float] | None = None,
    flt: Filter | None = None,
) -> SearchResult:
    """Images matching a sentence (CLIP's text encoder; ``ModelUnavailable`` without
    CLIP). Only the clip block shares the text's space, so ``weights`` are ignored."""
    from engine.text import TEXT_WEIGHTS, text_vectors

    t0 = time.perf_counter()
    vectors = text_vectors(engine, text)
    t1 = time.perf_counter()
    result = by_vectors(engine, vectors, k=k, weights=dict(TEXT_WEIGHTS), flt=flt)
    result.timings = {"embed_ms": (t1 - t0) * 1e3, **result.timings}
    return result


def by_id(engine: Engine, point_id: str, **kw: Any) -> SearchResult:
    if engine.health.should_try():
        try:
            records = engine.store.retrieve([point_id], with_vectors=True)
        except StoreUnavailable as exc:
            engine.health.failed(exc)
        else:
            if not records:
                raise NotFound(f"No image with id {point_id}.")
            return by_vectors(engine, records[0].vectors, **kw)
    try:  # the store is down: the mirror keeps every point's (normalised) vectors
        vectors = engine.mirror.vector(point_id)
    except KeyError:
        raise NotFound(f"No image with id {point_id}.") from None
    return by_vectors(engine, vectors, **kw)


def by_vectors(
    engine: Engine,
    vectors: dict[str, np.ndarray],
    *,
    k: int = 10,
    weights: dict[str, float] | None = None,
    flt: Filter | None = None,
) -> SearchResult:
    k = check_k(k)
    role_weights = check_weights(weights if weights is not None else engine.default_weights())
    models = {m["role"]: m["name"] for m in engine.active_models()}
    used = {r: w for r, w in role_weights.items() if r in models and models[r] in vectors}
    if not any(used.values()):
        raise BadInput(
            "Every weight is zero for the models in use "
            f"({', '.join(models) or 'none'}): give at least one a positive weight."
        )
    t0 = time.perf_counter()
    name_weights = {models[r]: w for r, w in used.items()}
    found, payloads, degraded = outage.mirror_search(engine, vectors, name_weights, k, flt)
    t1 = time.perf_counter()
    role_of = {name: role for role, name in models.items()}
    hits = [
        SearchHit(
            id=h.id,
            path=(payloads[h.id].get("paths") or [""])[0],
            score=float(h.score),
            scores={role_of[n]: float(s) for n, s in h.scores.items() if n in role_of},
            payload=payloads[h.id],
        )
        for h in found
        if h.id in payloads  # deleted since the mirror last caught up
    ]
    return SearchResult(
        hits=hits,
        timings={"search_ms": (t1 - t0) * 1e3},
        models=models,
        weights=used,
        degraded=degraded,
    )


def _crop(image: Any, box: tuple[int, int, int, int], size: tuple[int, int]) -> Any:
    """Crop by a box given in the original image's pixels, scaled to the decoded image in
    case it was decoded at a reduced size."""
    x, y, w, h = box
    width, height = size
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise BadInput(
            f"The box {list(box)} (x, y, width, height) must lie inside the {width}x{height} image."
        )
    sx, sy = image.width / width, image.height / height
    left, top = round(x * sx), round(y * sy)
    right = max(left + 1, round((x + w) * sx))
    bottom = max(top + 1, round((y + h) * sy))
    return image.crop((left, top, right, bottom))
