"""Search use cases: query by image bytes, by stored image id, or by vectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import BadInput
from store.base import Filter

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
