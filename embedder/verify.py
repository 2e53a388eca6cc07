"""Geometric verification: is the candidate (a stored image) a copy of the query, and where?

``verify(query, candidate)`` matches the candidate's descriptors to the query's (k = 2
nearest neighbours, Lowe's ratio test), fits a homography with RANSAC, rejects homographies
no copy produces (folded, collapsed, mirrored, absurd scale, inliers bunched on a spot) and
answers the inlier count, a 0..1 confidence and the matched region as a polygon in each
image's pixel space: the candidate's outline projected into the query (where the copy sits
in a bigger picture) and the query's outline projected back into the candidate (which part
of it a crop kept), each clipped to its image.

Mirrored copies: descriptors are not mirror-invariant, so the query is also described
mirrored (``keypoints.extract_query``: for SIFT by permuting the descriptor, for free) and
``verify_best`` keeps the better of the two. Mirroring the query costs one more matching
per candidate; mirroring every stored image would halve the keypoints a record holds.

RANSAC rather than USAC: on bench/verify_pick.py's crops, pastes, rotations and banners,
OpenCV's USAC_MAGSAC kept 29-88 % of the true copies where RANSAC and USAC_ACCURATE (equal
results) kept 82-94 %, with no more than 4 inliers on any non-copy either way.

Confidence (calibrated by bench/verify_pick.py, see ``confidence``) is a monotone function
of the inlier count and the inlier ratio; below ``MIN_INLIERS`` nothing is verified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from embedder.keypoints import Features
from embedder.matching import ratio_matches, vectors

RATIO = 0.8  # Lowe's ratio test
MIN_INLIERS = 8  # fewer: not verified (bench/verify_pick.py)
CONFIDENCE_K = 10.0  # inliers above MIN_INLIERS - 1 that give confidence 1 - 1/e
REPROJ = 0.006  # RANSAC threshold, as a fraction of each image's longer side (~4 px at 640)
MAX_SCALE = 40.0  # copies are at most this much larger or smaller, in pixel space
MIN_HULL = 0.002  # inliers must spread over this fraction of both images' areas


class KeypointSet(Protocol):
    """What verification reads from stored features (``store.keypoints`` records qualify)."""

    @property
    def kind(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def xy(self) -> np.ndarray: ...
    @property
    def descriptors(self) -> np.ndarray: ...


@dataclass(frozen=True)
class Verified:
    inliers: int
    confidence: float  # 0..1
    query_polygon: list[tuple[float, float]]  # in the query's pixel space
    hit_polygon: list[tuple[float, float]]  # in the candidate's pixel space
    mirrored: bool = False


def confidence(inliers: int, ratio: float) -> float:
    """``(1 - exp(-(inliers - MIN_INLIERS + 1) / K)) * min(1, 0.5 + ratio)``: grows with the
    inlier count and with the share of ratio-test matches that fit the homography (a copy
    has most of its matches agree, a chance fit few). 0 below ``MIN_INLIERS``."""
    if inliers < MIN_INLIERS:
        return 0.0
    by_count = 1.0 - math.exp(-(inliers - MIN_INLIERS + 1) / CONFIDENCE_K)
    return round(by_count * min(1.0, 0.5 + ratio), 4)


def verify_best(
    query: tuple[Features, Features], candidate: KeypointSet, **kw: Any
) -> Verified | None:
    """The better of the query as seen and mirrored (``keypoints.extract_query``)."""
    return verify_many(query, [candidate], **kw)[0]


def verify(query: Features, candidate: KeypointSet, **kw: Any) -> Verified | None:
    """The evidence that ``candidate`` is a copy of (part of) ``query``, or None."""
    return verify_many((query,), [candidate], **kw)[0]


def verify_many(
    views: tuple[Features, ...],
    candidates: Sequence[KeypointSet | None],
    *,
    ratio: float = RATIO,
    min_inliers: int = MIN_INLIERS,
) -> list[Verified | None]:
    """Verify each candidate against the query, keeping per candidate the best of the
    query's ``views`` (as seen, mirrored). Descriptors of all candidates are matched in one
    product per view (``embedder.matching``). A None or empty candidate, or one of another
    descriptor kind (a record from before a change of ``DEFAULT_KIND``: the caller rebuilds
    it), gives None: it keeps its fused score."""
    best: list[Verified | None] = [None] * len(candidates)
    unpacked: dict[str, tuple[list[tuple[int, KeypointSet]], np.ndarray]] = {}
    for view in views:
        if view.kind not in unpacked:  # every view is usually of one kind: unpack once
            usable = [
                (i, c)
                for i, c in enumerate(candidates)
                if c is not None and len(c.xy) >= 2 and c.kind == view.kind
            ]
            rows = [vectors(c.kind, c.descriptors) for _, c in usable]
            unpacked[view.kind] = (usable, np.concatenate(rows) if rows else np.zeros((0, 1)))
        usable, stacked = unpacked[view.kind]
        if len(view) < 2 or not usable:
            continue
        q_vec = vectors(view.kind, view.descriptors)
        nearest, good = ratio_matches(stacked, q_vec, view.kind, ratio)
        q_xy = np.asarray(view.xy, np.float32)
        start = 0
        for i, c in usable:
            end = start + len(c.xy)
            ok = good[start:end]
            src = np.asarray(c.xy, np.float32)[ok]
            dst = q_xy[nearest[start:end][ok]]
            start = end
            found = _fit(view, c, src, dst, min_inliers)
            current = best[i]
            if found and (current is None or found.inliers > current.inliers):
                best[i] = found
    return best


def _fit(
    query: Features, candidate: KeypointSet, src: np.ndarray, dst: np.ndarray, min_inliers: int
) -> Verified | None:
    """The homography from ``src`` (candidate) to ``dst`` (query) matches, checked."""
    if len(src) < max(4, min_inliers):
        return None
    import cv2

    # Normalise both point sets to their image's longer side: one threshold fits any size.
    s_c = float(max(candidate.width, candidate.height))
    s_q = float(max(query.width, query.height))
    h_norm, mask = cv2.findHomography(src / s_c, dst / s_q, cv2.RANSAC, REPROJ, None, 2000)
    if h_norm is None or mask is None:
        return None
    inlier = mask.ravel().astype(bool)
    n_in = int(inlier.sum())
    if n_in < min_inliers:
        return None
    h = np.diag([s_q, s_q, 1.0]) @ h_norm @ np.diag([1 / s_c, 1 / s_c, 1.0])
    cand_box = _outline(candidate.width, candidate.height)
    query_box = _outline(query.width, query.height)
    projected = _project(h, cand_box)
    if projected is None or not _plausible(h, projected):
        return None
    if min(_hull_share(src[inlier], cand_box), _hull_share(dst[inlier], query_box)) < MIN_HULL:
        return None  # inliers bunched on a line or a spot: a chance fit
    back = _project(np.linalg.inv(h), query_box)
    if back is None:
        return None
    query_poly = _clip(projected, query_box)
    hit_poly = _clip(back, cand_box) if _convex(back) else _hull(src[inlier])
    if query.mirrored:  # features came from the mirror: x runs from the right edge
        query_poly = [(query.width - x, y) for x, y in reversed(query_poly)]
    return Verified(
        inliers=n_in,
        confidence=confidence(n_in, n_in / len(src)),
        query_polygon=query_poly,
        hit_polygon=hit_poly,
        mirrored=query.mirrored,
    )


def _outline(width: int, height: int) -> np.ndarray:
    return np.asarray([[0, 0], [width, 0], [width, height], [0, height]], np.float64)


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray | None:
    homog = np.c_[pts, np.ones(len(pts))] @ h.T
    w = homog[:, 2]
    if not np.all(np.isfinite(homog)) or np.any(w <= 1e-9):
        return None  # a corner maps through the horizon: the outline would tear
    return homog[:, :2] / w[:, None]


def _convex(poly: np.ndarray) -> bool:
    """Strictly convex and counter-clockwise as the outline is (image y points down, so
    the outline's cross products are positive): a fold or a mirror breaks this."""
    d = np.roll(poly, -1, axis=0) - poly
    cross = d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]
    return bool(np.all(cross > 0))


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _plausible(h: np.ndarray, projected: np.ndarray) -> bool:
    """A copy is the original moved, scaled, rotated, perhaps seen at an angle: its outline
    stays a convex, same-handed quadrilateral of sane size."""
    if not _convex(projected):
        return False
    scale = abs(float(np.linalg.det(h[:2, :2]))) ** 0.5
    return 1 / MAX_SCALE < scale < MAX_SCALE and _area(projected) > 1.0


def _hull(pts: np.ndarray) -> list[tuple[float, float]]:
    import cv2

    hull = cv2.convexHull(np.asarray(pts, np.float32)).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in hull]


def _hull_share(pts: np.ndarray, box: np.ndarray) -> float:
    if len(pts) < 3:
        return 0.0
    return _area(np.asarray(_hull(pts))) / max(_area(box), 1.0)


def _clip(poly: np.ndarray, box: np.ndarray) -> list[tuple[float, float]]:
    """The part of a polygon inside the image (Sutherland-Hodgman against its 4 edges)."""
    width, height = float(box[2, 0]), float(box[2, 1])
    pts = [(float(x), float(y)) for x, y in poly]
    edges = (
        (lambda p: p[0] >= 0, lambda a, b: _cut(a, b, 0, 0.0)),
        (lambda p: p[0] <= width, lambda a, b: _cut(a, b, 0, width)),
        (lambda p: p[1] >= 0, lambda a, b: _cut(a, b, 1, 0.0)),
        (lambda p: p[1] <= height, lambda a, b: _cut(a, b, 1, height)),
    )
    for inside, cut in edges:
        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cut(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cut(prev, cur))
        pts = out
        if not pts:
            return []
    return [(round(x, 1), round(y, 1)) for x, y in _simplified(pts)]


def _simplified(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Without repeated vertices and vertices on a straight edge (clipping leaves both)."""
    out = list(pts)
    i = 0
    while len(out) > 3 and i < len(out):
        (ax, ay), (bx, by), (cx, cy) = out[i - 1], out[i], out[(i + 1) % len(out)]
        u, v = (bx - ax, by - ay), (cx - bx, cy - by)
        cross = u[0] * v[1] - u[1] * v[0]
        if abs(cross) <= 1e-3 * (abs(u[0]) + abs(u[1]) + 1e-9) * (abs(v[0]) + abs(v[1]) + 1e-9):
            del out[i]
            i = max(i - 1, 0)
        else:
            i += 1
    return out


def _cut(
    a: tuple[float, float], b: tuple[float, float], axis: int, at: float
) -> tuple[float, float]:
    t = (at - a[axis]) / (b[axis] - a[axis])
    return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
