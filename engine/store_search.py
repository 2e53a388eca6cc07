"""A fused search served by Qdrant itself: exact, and with no per-point state in this process.

**With the fused index** (store.fused: every model's vector side by side in one more named
vector, built by engine.fused_index), a query that weighs several models is one graph
search on it: its dot product with the weighted query is the fused score, so the graph
ranks by the score itself. Each model's cosine of the ``k`` found is then read exactly (the
reasons, and the score reported). No proof comes with it: like every graph search, its
recall is measured (bench/scale.py), not guaranteed. Without the index, or with one
weighted model, the two rounds below serve.

Qdrant's own fusion of several named vectors (a prefetch per vector, then RRF, DBSF or a
formula) is not the fused score Lookalike reports: measured against exact fusion it found
0.53-0.93 of the true top 10. So the fusion happens here, in two rounds:

1. Each weighted model's top ``n`` ids (one batch, approximate: HNSW over int8 vectors,
   rescored with the originals).
2. The union of those ids scored exactly by every model (``has_id`` on the union,
   ``exact``), and fused here: ``sum(w_i * cos_i) / sum(w_i)``. Round one's lists carry
   exact cosines already (rescored), so only the ones they lack are read.

**Why it is exact, and when it is not yet.** A point outside the union has, for each
model, a cosine no higher than that model's ``n``-th round-one score (or no vector at all,
cosine 0). So no point outside scores more than ``bound = sum(w_i * max(last_i, 0)) /
sum(w_i)``. When the ``k``-th fused score reaches ``bound``, no outsider can enter the top
``k``: the answer is exact. Otherwise round one runs again deeper (``next_depth``: where
each list's cosines, extrapolated in the log of the rank, say the proof will hold), and
round two scores only the newcomers. The start ``n`` grows with the collection, about 1.3x
per doubling; on grouped synthetic data about half the queries are proven at the start
depth and nearly all within two deepenings (bench/scale.py counts them). With a single
weighted model (a sentence, or one model's weight alone) the fused ranking is that model's
ranking, so round one asks for just ``k``: nothing outside its top ``k`` can beat its
``k``-th (at 1M points the proof's start depth was 212, twenty times what such a query needs).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from engine.fused_index import ready
from store.base import Filter, Hit, VectorQuery
from store.fused import query as fused_query
from store.mirror.fusion import SCORE_DIGITS, MirrorHit

if TYPE_CHECKING:
    from store.base import Store

log = logging.getLogger(__name__)

# Round one's depth: BASE_N at REFERENCE_SIZE points, times GROWTH per doubling beyond it
# (measured: exact top-10 at n = 50-500 for 20k-100k points; about 300-500 at 10M).
BASE_N = 48
REFERENCE_SIZE = 20_000
GROWTH = 1.3
MAX_N = 4096
# When the depth cannot prove the answer exact, round one goes deeper: to where each list's
# cosines, extrapolated (they fall about linearly in the log of the rank), bring the bound
# under the k-th fused score, with MARGIN to spare and at least twice as deep; DEEPEN times
# deeper when they cannot be extrapolated. At 1M points the extrapolation from a depth of
# 212 came within -20% and +70% of the depth each query needed (bench.scale's queries).
DEEPEN = 4
MARGIN = 1.25


# Candidates round one keeps while walking a graph (hnsw_ef): EF_BASE up to EF_REFERENCE
# points, EF_GROWTH times more per doubling beyond. Measured (bench/scale.py data, 32 / 256
# graphs): at 100k, 256 found the whole fused top 10 and 1,024 only doubled p50 (14 -> 28
# ms); at 1M, CLIP's round one needed 1,024 to find its whole top 10 (0.987 with 256).
EF_BASE = 256
EF_REFERENCE = 100_000
EF_GROWTH = 1.5
EF_MAX = 4096


# The fused index (store.fused) walks its graph with this many times round one's hnsw_ef:
# its one search is cheap, and a query weighted across models is where a graph misses most.
FUSED_EF_FACTOR = 2
FUSED_CHECK_S = 5.0
FusedIndex = tuple[str, list[tuple[str, int]]]


def hnsw_ef(points: int) -> int:
    """Round one's graph candidates for a collection of ``points``."""
    return int(min(EF_MAX, round(EF_BASE * EF_GROWTH ** _doublings(points, EF_REFERENCE))))


def _doublings(points: int, reference: int) -> float:
    """How many times the collection has doubled past ``reference`` points (0 below it)."""
    return max(0.0, math.log2(max(points, 1) / reference))


def prefetch_n(points: int, k: int) -> int:
    """Round one's depth for a collection of ``points`` and a top ``k``."""
    doublings = _doublings(points, REFERENCE_SIZE)
    return int(min(MAX_N, max(2 * k, math.ceil(BASE_N * GROWTH**doublings))))


class StoreFusedSearch:
    """``search`` answers like ``Mirror.search``, from the store alone."""

    def __init__(
        self, store: Callable[[], Store], points: Callable[[], int], *, fused: bool = True
    ) -> None:
        self._store = store
        self._points = points  # the collection's size (a cached count is fine)
        self._use_fused = fused  # False: never the fused index (benches compare the two)
        self.last_n = 0  # round one's depth in the last search; 0: the fused index served
        self._index: tuple[float, FusedIndex | None] = (-math.inf, None)

    def _fused(self, store: Store) -> FusedIndex | None:
        """The fused index while it holds every point (looked up at most every few
        seconds: with a server it costs a request)."""
        if not self._use_fused:
            return None
        checked, index = self._index
        if time.monotonic() - checked > FUSED_CHECK_S:
            index = ready(store)
            self._index = (time.monotonic(), index)
        return index

    def search(
        self,
        vectors: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        k: int,
        flt: Filter | None = None,
    ) -> list[MirrorHit]:
        store = self._store()
        dims = store.vector_dims()
        units = {n: _unit(v) for n, v in vectors.items() if n in dims}
        active = {n: float(w) for n, w in weights.items() if w > 0 and n in units}
        total = sum(active.values())
        if k <= 0 or total <= 0:
            return []
        points = self._points()
        ef = hnsw_ef(points)
        cosines: dict[str, dict[str, float]] = {name: {} for name in units}
        asked: dict[str, set[str]] = {name: set() for name in units}  # scored in round two
        index = self._fused(store) if len(active) > 1 else None
        if index is not None and active.keys() <= {name for name, _ in index[1]}:
            # The fused index ranks by the fused score itself: one graph search, then each
            # model's cosine of the k found (the reasons, and the score from them).
            q = fused_query(units, active, index[1])
            found = store.search_batch(
                [VectorQuery(index[0], q, k, exact=False, ef=FUSED_EF_FACTOR * ef)], flt
            )[0]
            ids = [h.id for h in found]
            _score(store, ids, units, cosines, asked, flt)
            fused = {i: _fuse(i, active, cosines, total) for i in ids}
            self.last_n = 0
            return [_hit(i, fused[i], cosines) for i in sorted(ids, key=lambda i: (-fused[i], i))]
        # One weighted model: its own top k is the answer, proven by construction (nothing
        # outside the list can beat its k-th). Several: the start depth for the proof.
        n = k if len(active) == 1 else prefetch_n(points, k)
        while True:
            first = store.search_batch(
                [VectorQuery(name, units[name], n, exact=False, ef=ef) for name in active], flt
            )
            for name, hits in zip(active, first, strict=True):
                # round one rescored its hits with the original vectors: exact cosines
                cosines[name].update((h.id, h.score) for h in hits)
            union = list(dict.fromkeys(h.id for hits in first for h in hits))
            _score(store, union, units, cosines, asked, flt)  # what round one left unknown
            fused = {i: _fuse(i, active, cosines, total) for i in union}
            top = sorted(union, key=lambda i: (-fused[i], i))[:k]
            bound = _outsider_bound(first, active, n, total)
            proven = (
                not top
                or len(active) == 1
                or (len(top) == k and fused[top[-1]] >= bound)
                or bound == -math.inf
            )
            if proven or n >= MAX_N:
                if not proven:
                    log.warning(
                        "qdrant search: round one at its limit (%d) cannot prove the top %d "
                        "exact; answered with the best found",
                        n,
                        k,
                    )
                self.last_n = n
                return [_hit(i, fused[i], cosines) for i in top]
            n = next_depth(first, active, n, total, fused[top[-1]] if len(top) == k else None)


def _fuse(
    point_id: str,
    active: Mapping[str, float],
    cosines: Mapping[str, dict[str, float]],
    total: float,
) -> float:
    return sum(w * cosines[name].get(point_id, 0.0) for name, w in active.items()) / total


def _score(
    store: Store,
    ids: list[str],
    units: Mapping[str, np.ndarray],
    cosines: dict[str, dict[str, float]],
    asked: dict[str, set[str]],
    flt: Filter | None,
) -> None:
    """Round two: the cosines of ``ids`` not yet known, exactly, in one batch request."""
    missing = {m: [i for i in ids if i not in cosines[m] and i not in asked[m]] for m in units}
    batch = [VectorQuery(m, units[m], len(todo), ids=todo) for m, todo in missing.items() if todo]
    if batch:
        for q, hits in zip(batch, store.search_batch(batch, flt), strict=True):
            cosines[q.vector_name].update((h.id, h.score) for h in hits)
            asked[q.vector_name].update(missing[q.vector_name])  # absent: no such vector


def next_depth(
    first: list[list[Hit]],
    active: Mapping[str, float],
    n: int,
    total: float,
    target: float | None,
) -> int:
    """Round one's next depth: where the outsider bound is expected to fall to ``target``,
    the k-th fused score found so far (a floor of the true one)."""
    fallback = min(MAX_N, DEEPEN * n)
    a = b = 0.0
    for (_, w), hits in zip(active.items(), first, strict=True):
        if len(hits) < n:
            continue  # a complete list: its models add nothing to the bound
        ranks = np.arange(1, n + 1)[n // 4 :]
        slope, level = np.polyfit(np.log(ranks), [h.score for h in hits[n // 4 :]], 1)
        a += w * level / total
        b -= w * slope / total
    if target is None or b <= 0 or not math.isfinite(a + b):
        return fallback
    depth = MARGIN * math.exp(min(50.0, (a - target) / b))
    return int(min(MAX_N, max(2 * n, math.ceil(depth))))


def _outsider_bound(
    first: list[list[Hit]], active: Mapping[str, float], n: int, total: float
) -> float:
    """The highest fused score a point outside round one's union could have; ``-inf`` when
    every model's list was complete (every matching point is in the union)."""
    if all(len(hits) < n for hits in first):
        return -math.inf
    edge = 0.0
    for (_, w), hits in zip(active.items(), first, strict=True):
        if len(hits) == n:  # a shorter list holds every point with this vector
            edge += w * max(hits[-1].score, 0.0)
    return edge / total


def _hit(point_id: str, score: float, cosines: Mapping[str, dict[str, float]]) -> MirrorHit:
    return MirrorHit(
        id=point_id,
        score=round(score, SCORE_DIGITS),
        scores={m: round(c[point_id], SCORE_DIGITS) for m, c in cosines.items() if point_id in c},
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
