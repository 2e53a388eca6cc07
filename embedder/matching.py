"""Descriptor matching for copy verification: nearest two neighbours and Lowe's ratio test.

One matrix product scores a query against many candidates at once (a re-rank verifies ~50):
numpy's BLAS did 50 candidates x 240 keypoints against 1,000 query keypoints in ~70 ms on
the 2-core dev box, where OpenCV's BFMatcher took ~230 ms (and per-pair calls more, in
Python objects). Squared L2 distances come from ``|c|^2 + |q|^2 - 2 c.q``; ORB's Hamming
distance is the same product over +-1 bit vectors (``(256 - c.q) / 2``).
"""

from __future__ import annotations

import numpy as np

from embedder.keypoints import unpack_sift4

CHUNK_ROWS = 4096  # candidate keypoints per product: bounds the distance matrix to ~16 MB


def vectors(kind: str, descriptors: np.ndarray) -> np.ndarray:
    """float32 rows to compare by squared L2 distance."""
    if kind == "sift4":
        return unpack_sift4(descriptors)
    if kind == "orb":
        bits = np.unpackbits(np.asarray(descriptors, np.uint8), axis=1).astype(np.float32)
        return bits * 2.0 - 1.0  # squared L2 of +-1 vectors = 4 x Hamming distance
    return np.asarray(descriptors, np.float32)


def ratio_matches(
    cand: np.ndarray, query: np.ndarray, kind: str, ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate row: the index of its nearest query row, and whether it passes the
    ratio test (nearest distance < ``ratio`` x second nearest). ``query`` needs >= 2 rows."""
    nearest = np.zeros(len(cand), np.int64)
    good = np.zeros(len(cand), bool)
    q_sq = np.einsum("ij,ij->i", query, query)
    # Squared L2 compares squared distances, so the ratio is squared too; Hamming is linear.
    limit = ratio if kind == "orb" else ratio * ratio
    for start in range(0, len(cand), CHUNK_ROWS):
        c = cand[start : start + CHUNK_ROWS]
        d = c @ query.T
        d *= -2.0
        d += q_sq[None, :]
        # |c|^2 is the same along a row: added to the two nearest only (two passes fewer
        # over the matrix; the same values, added in the same order).
        rows = np.arange(len(c))
        first = d.argmin(axis=1)
        m1 = d[rows, first].copy()
        d[rows, first] = np.inf
        m2 = d.min(axis=1)
        c_sq = np.einsum("ij,ij->i", c, c)
        d1 = np.maximum(m1 + c_sq, 0.0)
        d2 = np.maximum(m2 + c_sq, 0.0)
        nearest[start : start + len(c)] = first
        good[start : start + len(c)] = d1 < limit * d2
    return nearest, good
