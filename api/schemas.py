"""What the REST API reads and writes: msgspec Structs, which Litestar validates and documents.

Payload dicts from the engine become these Structs in one place (``Image.from_payload``,
``SearchHit.from_hit``), so every route shows an image the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar.datastructures import UploadFile
from msgspec import Meta, Struct

from engine.defaults import MAX_WEIGHT
from engine.library import MAX_TAG_LENGTH, MAX_TAGS
from engine.search import ROLES


def image_urls(image_id: str) -> tuple[str, str]:
    base = f"/api/v1/images/{image_id}"
    return f"{base}/thumbnail", f"{base}/file"


class Image(Struct, kw_only=True):
    """One distinct image content, with every path it was found at."""

    id: str
    filename: str
    paths: list[str]
    folder: list[str]
    tags: list[str]
    width: int | None = None
    height: int | None = None
    format: str | None = None
    bytes: int | None = None
    mtime: float | None = None
    added_at: str | None = None
    palette: list[str] = msgspec.field(default_factory=list)
    # Words found inside the file at index time (IPTC, XMP); the keywords are tags too.
    keywords: list[str] = msgspec.field(default_factory=list)
    title: str | None = None
    description: str | None = None
    thumbnail_url: str
    file_url: str

    @classmethod
    def from_payload(cls, item: dict[str, Any]) -> Image:
        thumb, file = image_urls(item["id"])
        paths = list(item.get("paths") or [])
        return cls(
            id=item["id"],
            filename=item.get("filename") or (paths[0].rsplit("/", 1)[-1] if paths else ""),
            paths=paths,
            folder=list(item.get("folder") or []),
            tags=list(item.get("tags") or []),
            width=item.get("width"),
            height=item.get("height"),
            format=item.get("format"),
            bytes=item.get("bytes"),
            mtime=item.get("mtime"),
            added_at=_str_or_none(item.get("added_at")),
            palette=[str(c) for c in item.get("palette") or []],
            keywords=[str(k) for k in item.get("keywords") or []],
            title=_str_or_none(item.get("title")),
            description=_str_or_none(item.get("description")),
            thumbnail_url=thumb,
            file_url=file,
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class ImagePage(Struct, kw_only=True):
    items: list[Image]
    total: int
    offset: int
    limit: int


# A tag is 1 to 64 characters with no comma or line break (``engine.library`` checks the
# same); stated here too so the OpenAPI document tells clients before they are refused.
Tag = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TAG_LENGTH,
        pattern=r"^[^,\x00-\x1f\x7f]*[^\s,\x00-\x1f\x7f][^,\x00-\x1f\x7f]*$",
        description="1 to 64 characters; no comma, line break or other control character.",
    ),
]
TagList = Annotated[str, Meta(pattern=r"^(?:[^,\x00-\x1f\x7f]{0,64},)*[^,\x00-\x1f\x7f]{0,64}$")]
Tags = Annotated[list[Tag], Meta(max_length=MAX_TAGS)]


# The formats an image can be stored as, as payloads spell them (embedder.decode reads
# these; a JPEG with extra pictures is 'MPO').
Format = Literal["JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
# A folder of the library, as image payloads list it: a relative path, no control character.
Folder = Annotated[str, Meta(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")]


class ImageCreate(Struct, kw_only=True):
    """Multipart upload: one or more ``files`` fields (at most 100, each at most
    LOOKALIKE_MAX_UPLOAD_MB) and an optional comma-separated ``tags``."""

    files: list[UploadFile]
    tags: TagList | None = None


class ImageUpdate(Struct, kw_only=True):
    """Replace an image's tags."""

    tags: Tags


UploadStatus = Literal["added", "exists", "rejected"]


class UploadedFile(Struct, kw_only=True):
    """What became of one uploaded file. ``added``: stored and indexed. ``exists``: the same
    content is already in the library (``id`` and ``paths`` are that image's). ``rejected``:
    not stored; ``detail`` says why."""

    filename: str
    status: UploadStatus
    id: str | None = None
    paths: list[str] = msgspec.field(default_factory=list)
    detail: str | None = None

    @classmethod
    def from_outcome(cls, outcome: Any) -> UploadedFile:
        return cls(
            filename=outcome.filename,
            status=outcome.status,
            id=outcome.id,
            paths=outcome.paths,
            detail=outcome.detail,
        )


class UploadResult(Struct, kw_only=True):
    """One entry per file, in the order sent; ``images`` lists the stored images (added or
    already there), once each."""

    results: list[UploadedFile]
    images: list[Image]


# A role's weight is relative to the others; the cap keeps their sum finite.
Weight = Annotated[float, Meta(ge=0, le=MAX_WEIGHT)]


class Weights(Struct, kw_only=True, forbid_unknown_fields=True):
    """Role -> weight: clip = meaning, cnn = shape and texture, hsv = colour. A role left out
    weighs 0, and at least one role whose model this server runs must weigh more than 0."""

    clip: Weight = 0.0
    cnn: Weight = 0.0
    hsv: Weight = 0.0

    def as_dict(self) -> dict[str, float]:
        return {role: float(getattr(self, role)) for role in ROLES}


# "At least one above 0", which field constraints cannot say: added to the document's
# Weights schema (api.openapi), so a client generated from it knows.
WEIGHTS_ANY_POSITIVE: dict[str, Any] = {
    "anyOf": [
        {"required": [role], "properties": {role: {"type": "number", "exclusiveMinimum": 0}}}
        for role in ROLES
    ]
}


class UploadRefused(Struct, kw_only=True):
    """Every file was rejected: the standard error body, plus each file's reason."""

    status: int
    error: str
    detail: str
    results: list[UploadedFile] = msgspec.field(default_factory=list)


JobState = Literal["queued", "running", "done", "failed"]


class Job(Struct, kw_only=True):
    """A background reindex or reconcile; poll ``GET /api/v1/jobs/{id}`` for progress."""

    id: str
    kind: Literal["reindex", "reconcile"]
    state: JobState
    stage: str = ""
    done: int = 0
    total: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    detail: str | None = None  # why it failed, as a sentence
    result: dict[str, Any] | None = None


class ReindexRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Optionally restrict the reindex to a folder inside the library, and tag its images
    (as ``lookalike index --tags`` does). A folder name with a control character is
    malformed (400); one the library does not have is a 404."""

    folder: Folder | None = None
    tags: Tags | None = None


class ModelInfo(Struct, kw_only=True):
    role: str
    name: str
    dim: int
    weights: str
    fallback: bool = False
    reason: str | None = None


class InferenceInfo(Struct, kw_only=True):
    """How one neural model runs now: it is compiled (and may go int8) while serving."""

    device: str
    precision: str  # of the layers int8 leaves alone, when int8 is on
    compiled: bool
    int8: bool
    int8_note: str | None = None  # why not int8, where it was asked for


class RoleInfo(Struct, kw_only=True):
    """Every role, including one that is off after a weight fallback (name None)."""

    role: str
    name: str | None = None
    weights: str | None = None
    fallback: bool = False
    reason: str | None = None


class MirrorInfo(Struct, kw_only=True):
    points: int
    watermark: int


class SearchModeInfo(Struct, kw_only=True):
    """Who serves searches now (engine/search_mode.py): ``mode`` 'mirror' (the FAISS mirror
    in the API process) or 'qdrant' (Qdrant itself, exact two-round fusion); ``setting`` is
    LOOKALIKE_SEARCH (mirror, qdrant or auto); ``reason`` says why, in a sentence."""

    mode: Literal["mirror", "qdrant"]
    setting: Literal["mirror", "qdrant", "auto"]
    reason: str


class SearchDefaultsInfo(Struct, kw_only=True):
    """The one set of search defaults every way in uses (engine/defaults.py): weights and
    near-duplicate threshold from the calibration file named in ``source``, and k."""

    weights: dict[str, float]
    near_duplicate_threshold: float | None = None
    duplicates_threshold: float
    k: int
    max_k: int
    k_choices: list[int]
    source: str


class Status(Struct, kw_only=True):
    points: int
    backend: str
    data_dir: str
    library_dir: str
    models: list[ModelInfo]
    roles: list[RoleInfo] = []
    # Chosen on the quality benchmark for these models (bench/QUALITY.md); the threshold is
    # None when this model set is uncalibrated, and the UI then shows no badge.
    default_weights: dict[str, float] = {}
    near_duplicate_threshold: float | None = None
    defaults: SearchDefaultsInfo
    models_loaded: bool
    inference: dict[str, InferenceInfo] = {}  # neural model name -> how it runs now
    search_mode: SearchModeInfo
    # The fused index in the store (docs/scaling.md): 'ready' when searches that weigh
    # several models go through it in qdrant mode, 'not built' or 'none'.
    fused_index: Literal["ready", "not built", "none"] = "none"
    # None when this process keeps no mirror (Qdrant serves searches).
    mirror: MirrorInfo | None
    mirror_lag: int | None
    job: Job | None = None


class Health(Struct, kw_only=True):
    status: Literal["ok"] = "ok"


class Readiness(Struct, kw_only=True, omit_defaults=True):
    """200 when store, mirror and models are ready; else 503 with ``error`` and ``detail``.
    ``degraded``: the store is unreachable (with a mirror, searches are answered from it;
    without one, ``detail`` says nothing can be searched). ``search_mode``: who serves
    searches and why, once ready."""

    status: int
    ready: bool
    checks: dict[str, bool]
    search_mode: SearchModeInfo | None = None
    degraded: bool = False
    error: str | None = None
    detail: str | None = None
