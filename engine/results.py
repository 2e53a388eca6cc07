"""What a search answers: hits, best first, each with the reason it matched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SearchHit:
    id: str
    path: str  # first path of the image, as stored (library-relative key)
    score: float  # fused: sum(w_i * cos_i) / sum(w_i), for the models in use
    scores: dict[str, float]  # role -> cosine
    payload: dict[str, Any]
    near_duplicate: bool = False  # by the calibrated fusion and threshold
    query_index: int | None = None  # which query image it matched best (several images)


@dataclass
class SearchResult:
    hits: list[SearchHit]
    timings: dict[str, float] = field(default_factory=dict)  # decode_ms, embed_ms, search_ms
    models: dict[str, str] = field(default_factory=dict)  # role -> model name
    weights: dict[str, float] = field(default_factory=dict)  # role -> weight used
    degraded: bool = False
