"""What a search reads and writes (``POST /api/v1/search`` and its contact sheet): msgspec
Structs, apart from the rest of ``api.schemas`` so that each module stays one subject.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from api.errors import ErrorBody
from api.schemas import Image, Weights
from engine.defaults import DEFAULT_K, MAX_K
from engine.query import MAX_TEXT

# A length in pixels, within what any image (or request) can hold.
Pixels = Annotated[int, Meta(ge=0, le=2**31 - 1)]


class SearchFilters(Struct, kw_only=True, forbid_unknown_fields=True):
    """Restrict a search. Empty fields do not constrain."""

    folders: list[str] | None = None
    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    formats: list[str] | None = None
    min_width: Pixels | None = None
    max_width: Pixels | None = None
    min_height: Pixels | None = None
    max_height: Pixels | None = None
    # Images whose palette holds a colour within ``colour_tolerance`` (CIE76 delta E in
    # Lab, default 20: about "clearly the same hue") of this '#rrggbb'.
    colour: Annotated[str, Meta(pattern=r"^#?(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")] | None = None
    colour_tolerance: Annotated[float, Meta(ge=0, le=200)] | None = None


Box = tuple[
    Annotated[int, Meta(ge=0, le=2**31 - 1)],
    Annotated[int, Meta(ge=0, le=2**31 - 1)],
    Annotated[int, Meta(gt=0, le=2**31 - 1)],
    Annotated[int, Meta(gt=0, le=2**31 - 1)],
]


# A sentence: at most MAX_TEXT characters, not all blank. The blanks are spelt out, so
# that Python and JavaScript regular expressions (the document's readers) agree on them.
Text = Annotated[str, Meta(max_length=MAX_TEXT, pattern="[^\\s\\x1c-\\x1f\\x85\\ufeff]")]


class SearchQuery(Struct, kw_only=True, forbid_unknown_fields=True):
    """A search by a stored image, several stored images or a sentence (JSON), or by
    uploaded images (multipart: ``image``, or up to 8 ``images``): exactly one kind.

    ``weights`` maps a role (clip = meaning, cnn = shape, hsv = colour) to a weight >= 0;
    left out, the calibrated defaults apply (``default_weights`` in /api/v1/status).
    ``threshold`` drops hits scoring below it. ``box`` crops the query image first:
    [x, y, width, height] in pixels; ``boxes`` crops each of several query images (the
    uploaded ``images`` first, then ``image_ids``; null leaves one whole).
    ``combine``: ``any`` finds images like one of several query images, ``all`` images like
    all of them. ``liked`` / ``disliked``: image ids marked right or wrong on a result; the
    search moves toward the liked ones and away from the disliked ones. ``inside``: also
    look for library images inside the picture (a catalogue page, a screenshot): five
    windows (its quarters and centre) bring more candidates, and those verified as copies
    move up; true needs a picture of at least 128 px a side and takes longer (five more
    embeddings); false never looks inside; left out, the server's setting decides (by
    default: only when the whole picture proves no copy). ``exclude``: image ids never to
    show (Find similar leaves out the image it starts from); the answer still has k hits.
    """

    image_id: str | None = None
    text: Text | None = None  # search by a sentence (CLIP's text encoder)
    image_ids: list[str] | None = None  # several stored images in one query
    k: Annotated[int, Meta(ge=1, le=MAX_K)] = DEFAULT_K
    weights: Weights | None = None
    filters: SearchFilters | None = None
    threshold: Annotated[float, Meta(ge=0, le=1)] | None = None
    box: Box | None = None
    boxes: list[Box | None] | None = None
    combine: Literal["any", "all"] = "any"
    liked: list[str] | None = None
    disliked: list[str] | None = None
    inside: bool | None = None
    exclude: list[str] | None = None


class VerifiedMatch(Struct, kw_only=True):
    """Evidence that a hit is a copy of (part of) the query (engine/verification.py).
    method "keypoints": geometric proof, local features that agree under one transform.
    method "thumbnail": a query too small for local features has the hit's layout at 32 x
    32 pixels, clearly apart from every other candidate; a strong hint, not a proof
    (confidence below 0.5, inliers 0, polygons the whole pictures). Polygons are [x, y]
    points, the query's in the uploaded picture's pixels, the hit's in the library
    image's."""

    inliers: int
    confidence: float  # 0..1
    query_polygon: list[list[float]]
    hit_polygon: list[list[float]]
    mirrored: bool
    method: Literal["keypoints", "thumbnail"] = "keypoints"
    sentence: str  # "312 matching points, same layout: a copy"

    @classmethod
    def from_evidence(cls, proof: Any) -> VerifiedMatch:
        return cls(
            inliers=proof.inliers,
            confidence=proof.confidence,
            query_polygon=[[x, y] for x, y in proof.query_polygon],
            hit_polygon=[[x, y] for x, y in proof.hit_polygon],
            mirrored=proof.mirrored,
            method=proof.method,
            sentence=proof.sentence(),
        )


class SearchHit(Struct, kw_only=True):
    id: str
    filename: str
    paths: list[str]
    # Fused similarity, clamped to 0..1; for a verified copy, moved toward 1 by the
    # verification's confidence (fused + (1 - fused) * confidence).
    score: float
    scores: dict[str, float]  # role -> cosine of that model
    thumbnail_url: str
    file_url: str
    width: int | None = None
    height: int | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    folder: list[str] = msgspec.field(default_factory=list)
    palette: list[str] = msgspec.field(default_factory=list)  # dominant colours, largest first
    # A near duplicate by the calibrated fusion and threshold, whatever weights ranked it.
    near_duplicate: bool = False
    # Several query images: the index of the one this hit matched best.
    matched_query: int | None = None
    # A picture query's best candidates are checked for a copy: the proof, when found.
    verified: VerifiedMatch | None = None

    @classmethod
    def from_hit(cls, hit: Any) -> SearchHit:
        image = Image.from_payload({"id": hit.id, **hit.payload})
        return cls(
            id=hit.id,
            filename=image.filename,
            paths=image.paths,
            score=_unit(hit.score),
            scores={role: round(float(s), 6) for role, s in hit.scores.items()},
            thumbnail_url=image.thumbnail_url,
            file_url=image.file_url,
            width=image.width,
            height=image.height,
            tags=image.tags,
            folder=image.folder,
            palette=image.palette,
            near_duplicate=bool(hit.near_duplicate),
            matched_query=hit.query_index,
            verified=None if hit.verified is None else VerifiedMatch.from_evidence(hit.verified),
        )


def _unit(score: float) -> float:
    # The fused score is a weighted mean of cosines; cosines of these models are almost never
    # negative, and a person reads "0 % alike" for the rare one that is.
    return round(min(1.0, max(0.0, float(score))), 6)


class SearchResponse(Struct, kw_only=True):
    hits: list[SearchHit]
    timings: dict[str, float]  # decode_ms, embed_ms, search_ms
    models: dict[str, str]  # role -> model name
    weights: dict[str, float]  # role -> weight used
    k: int
    threshold: float | None = None
    # The store was unreachable: hits come from the mirror and its cached payloads, which
    # may miss the latest tag changes.
    degraded: bool = False
    combine: Literal["any", "all"] | None = None  # several query images: how they combined


class SearchStep(Struct, kw_only=True, omit_defaults=True):
    """One line of ``POST /api/v1/search/stream``: ``ranked`` (the ranking by the vectors,
    before verification; its hits carry no ``verified`` yet), ``final`` (the answer, as
    ``POST /api/v1/search`` gives it) or ``error`` (a failure after the first line)."""

    stage: Literal["ranked", "final", "error"]
    result: SearchResponse | None = None
    error: ErrorBody | None = None
