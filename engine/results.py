"""What a search answers: hits, best first, each with the reason it matched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KEYPOINTS = "keypoints"  # how a copy was recognised (Evidence.method)
THUMBNAIL = "thumbnail"


@dataclass(frozen=True)
class Evidence:
    """Why a hit is a copy (engine.verification): local features that agree under one
    geometric transform (``method`` "keypoints"), or, for a thumbnail query too small for
    them, the same layout at 32 x 32 pixels, clearly apart from every other candidate
    ("thumbnail": never more than "likely a copy")."""

    inliers: int  # matching points that fit the transform (0 for a thumbnail match)
    confidence: float  # 0..1
    query_polygon: list[tuple[float, float]]  # the matched region, in the query's pixels
    hit_polygon: list[tuple[float, float]]  # the same region, in the hit's pixels
    mirrored: bool = False  # the copy is left-right mirrored
    method: str = KEYPOINTS

    def sentence(self) -> str:
        """What the UI and the exports say: "312 matching points, same layout: a copy"."""
        if self.method == THUMBNAIL:
            return "Same picture at thumbnail size, too small to compare details: likely a copy"
        layout = "mirrored" if self.mirrored else "same layout"
        verdict = "a copy" if self.confidence >= 0.5 else "likely a copy"
        return f"{self.inliers} matching points, {layout}: {verdict}"


@dataclass
class SearchHit:
    id: str
    path: str  # first path of the image, as stored (library-relative key)
    # fused: sum(w_i * cos_i) / sum(w_i) for the models in use; for a verified copy,
    # fused + (1 - fused) * confidence (engine.verification)
    score: float
    scores: dict[str, float]  # role -> cosine
    payload: dict[str, Any]
    near_duplicate: bool = False  # by the calibrated fusion and threshold
    query_index: int | None = None  # which query image it matched best (several images)
    verified: Evidence | None = None  # None: not checked, or no geometric evidence
    fused: float | None = None  # the fused score before verification moved it


@dataclass
class SearchResult:
    hits: list[SearchHit]
    timings: dict[str, float] = field(default_factory=dict)  # decode_ms, embed_ms, search_ms
    models: dict[str, str] = field(default_factory=dict)  # role -> model name
    weights: dict[str, float] = field(default_factory=dict)  # role -> weight used
    degraded: bool = False
