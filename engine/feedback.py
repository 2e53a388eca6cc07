"""Relevance feedback: after marking hits as right (liked) or wrong (disliked), the next
search moves toward the liked images and away from the disliked ones.

The query is refined per model with Rocchio's rule in the form Qdrant's recommendation API
uses (``average_vector``), so the mirror and a Qdrant server rank alike:

    positives = the query, and each liked image;   negatives = each disliked image
    query'    = 2 * mean(positives) - mean(negatives)     (mean(positives) without negatives)

over unit vectors. The fused search then scores every image against query' as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import BadInput

MAX_MARKS = 50  # likes and dislikes together: a feedback round, not a second library

Vectors = Mapping[str, np.ndarray]


def check_marks(liked: Sequence[str], disliked: Sequence[str]) -> None:
    both = set(liked) & set(disliked)
    if both:
        raise BadInput(f"An image cannot be both liked and disliked: {sorted(both)[0]}.")
    if len(liked) + len(disliked) > MAX_MARKS:
        raise BadInput(
            f"At most {MAX_MARKS} images can be marked in one search; got "
            f"{len(liked) + len(disliked)}."
        )


@dataclass(frozen=True)
class Marks:
    """The vectors of the images marked on a result, by model name."""

    liked: Sequence[Vectors]
    disliked: Sequence[Vectors]

    def refine(self, query: Vectors) -> dict[str, np.ndarray]:
        return refine(query, self.liked, self.disliked)


def refine(
    query: Vectors, liked: Sequence[Vectors], disliked: Sequence[Vectors]
) -> dict[str, np.ndarray]:
    """The refined query vectors, by model name (the models of ``query``)."""
    out: dict[str, np.ndarray] = {}
    for name, vector in query.items():
        positives = [_unit(vector), *(_unit(v[name]) for v in liked if name in v)]
        negatives = [_unit(v[name]) for v in disliked if name in v]
        refined = np.mean(positives, axis=0)
        if negatives:
            refined = 2 * refined - np.mean(negatives, axis=0)
        # A query that cancels out exactly has no direction: keep the original one.
        out[name] = refined.astype(np.float32) if np.linalg.norm(refined) > 1e-9 else vector
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
